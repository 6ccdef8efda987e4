"""Pure: one view of the cluster from what its agents reported, and the only place that says
who is MASTER of each group, whether there is split brain, which nodes drift, whether the
lab is ready and whether everything is green.

``stackha status`` (table and JSON), the agent's split-brain watch, ``stackha up``'s progress
and the drill's green test all ask a ``ClusterView``; none decides on its own.

Green: a version is published; every expected node reports, has applied the current version,
is healthy with no error; every VRRP group has exactly one MASTER (none: nobody holds its VIPs;
several: split brain) and each reporting member of a group reports a state for it. Ready (what
``stackha up`` waits for) is the same without the per-member VRRP state and the error line,
and a node whose last error names the current version has *failed*: waiting will not help.

Stale: a status znode is ephemeral, so a hard-killed node's last report stays until its
ZooKeeper session expires (session_timeout later) and would still say MASTER and healthy. Each
report's age is taken against ``now`` (given by the caller: nothing here reads a clock); one
older than ``stale_after`` its own heartbeat interval is STALE: not believed. Its MASTER claims
count for nobody, so split brain is claimed only from fresh reports; a stale MASTER claim next
to a fresh one is only *suspected* split brain. A view without ``now`` (the agent's own watch)
judges no age, as before.

Overtaken: a report still fresh can be older than a peer's takeover. Each agent reports when
each group's state last changed (``vrrp_since``); a MASTER claim whose heartbeat is older than
another claimant's becoming MASTER said MASTER only before that takeover (a peer takes over
when it stops hearing the master), so it counts as a stale claim: suspected, not split brain.
Two masters that each reported after the other's takeover are split brain. Of two claims at
least one always stands (each ``since`` precedes its own heartbeat on one clock), whatever
the skew between the two hosts' clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any

from stackha.model.spec import StackSpec
from stackha.model.status import NodeStatus, interval_or_none

MASTER = "MASTER"
STALE = "STALE"
OVERTAKEN = "OVERTAKEN"  # shown for a MASTER claim older than a peer's takeover
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # what agents write in ``heartbeat``
# The `stackha status --json` document (README, "status --json"). Readers may rely on every
# key below; adding a key keeps the version, renaming, removing or retyping one raises it.
STATUS_SCHEMA_VERSION = 1
DOCUMENT_KEYS = ("schema_version", "current_version", "nodes", "split_brain",
                 "split_brain_suspected", "vrrp_groups", "read_at")
NODE_KEYS = ("node", "roles", "reporting", "applied_version", "current_version", "drift",
             "vrrp", "health", "last_error", "heartbeat", "reported_vrrp",
             "heartbeat_interval", "report_age_s", "stale", "stale_after_s", "maintenance",
             "maintenance_reason", "vrrp_since")
# An agent too old to report its interval ran with the agent's default (--heartbeat 5).
DEFAULT_HEARTBEAT_S = 5.0
# A live agent's writes can be late by a slow health probe or a ZooKeeper hiccup: three
# missed beats plus a little grace before a report is not believed.
STALE_BEATS = 3
STALE_GRACE_S = 2.0


def stale_after(status: NodeStatus) -> float:
    """Seconds after its heartbeat at which this report is stale."""
    interval = status.heartbeat_interval or DEFAULT_HEARTBEAT_S
    return STALE_BEATS * interval + STALE_GRACE_S


def parse_time(text: str) -> datetime | None:
    """A heartbeat or ``read_at`` as an aware UTC time; None when it does not parse."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def report_age(status: NodeStatus, now: datetime) -> float | None:
    """Seconds since the report's heartbeat (0.1 s steps); None when it has none readable."""
    beat = parse_time(status.heartbeat)
    if beat is None:
        return None
    if now.tzinfo is None:  # a naive now is taken as UTC, like a naive heartbeat
        now = now.replace(tzinfo=UTC)
    # A node's clock ahead of the reader's would give a negative age: say fresh, not nonsense.
    return round(max(0.0, (now - beat).total_seconds()), 1)


@dataclass(frozen=True)
class NodeRow:
    node: str
    roles: tuple[str, ...]
    status: NodeStatus | None
    current: int | None
    # Seconds since its heartbeat, None when not known (no now given, no readable heartbeat).
    age: float | None = None
    stale: bool = False
    stale_after_s: float | None = None  # the age from which this report is stale
    # Groups whose MASTER claim here is older than another member's takeover.
    overtaken: frozenset[str] = frozenset()

    @property
    def drift(self) -> bool:
        return self.status is None or self.status.applied_version != self.current

    def vrrp(self) -> dict[str, str]:
        """The VRRP states to show: a stale report's claims are not believed, so not shown,
        nor a MASTER claim a peer's takeover overtook."""
        if self.status is None:
            return {}
        return {g: STALE if self.stale else OVERTAKEN if g in self.overtaken else st
                for g, st in self.status.vrrp.items()}

    def why_stale(self) -> str:
        return f"report stale ({self.age:.1f} s old)"

    def as_dict(self) -> dict[str, object]:
        s = self.status
        return {
            "node": self.node, "roles": list(self.roles), "reporting": s is not None,
            "applied_version": s.applied_version if s else None, "current_version": self.current,
            "drift": self.drift, "vrrp": self.vrrp(),
            "health": dict(s.health) if s else {}, "last_error": s.last_error if s else "",
            "heartbeat": s.heartbeat if s else "",
            # What the node said, for a stale one too (``vrrp`` says STALE instead).
            "reported_vrrp": dict(s.vrrp) if s else {},
            "heartbeat_interval": s.heartbeat_interval if s else None,
            "report_age_s": self.age, "stale": self.stale, "stale_after_s": self.stale_after_s,
            # "" when not in maintenance, else the agent's progress with it; and the reason.
            "maintenance": s.maintenance if s else "",
            "maintenance_reason": s.maintenance_reason if s else "",
            # When it saw each group's state last change (a takeover's time, for MASTER).
            "vrrp_since": dict(s.vrrp_since) if s else {},
        }


@dataclass(frozen=True)
class Progress:
    current: int | None
    ready: tuple[str, ...]
    waiting: tuple[tuple[str, str], ...]  # (node or group, why)
    failed: tuple[tuple[str, str], ...]  # (node, its last error)
    total: int

    @property
    def done(self) -> bool:
        return not self.waiting and not self.failed

    def describe(self) -> str:
        """One line for people: ``4/7 nodes ready at version 2; waiting: nginx1 (...)``."""
        line = f"{len(self.ready)}/{self.total} nodes ready at version {self.current}"
        if self.failed:
            line += "; failed: " + ", ".join(f"{n} ({why})" for n, why in self.failed)
        if self.waiting:
            line += "; waiting: " + ", ".join(f"{n} ({why})" for n, why in self.waiting)
        return line


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


def _with_overtaken(row: NodeRow, rows: list[NodeRow]) -> NodeRow:
    """``row`` with the groups whose MASTER claim in it predates another fresh claimant's
    takeover (see the module's doc)."""
    status = row.status
    if status is None or row.stale:
        return row
    beat = parse_time(status.heartbeat) if status.heartbeat else None
    if beat is None:
        return row
    overtaken = set()
    for group, state in status.vrrp.items():
        if state != MASTER:
            continue
        for other in rows:
            theirs = other.status
            if other is row or theirs is None or other.stale or theirs.vrrp.get(group) != MASTER:
                continue
            since = theirs.vrrp_since.get(group)
            took_over = parse_time(since) if since else None
            if took_over is not None and took_over > beat:
                overtaken.add(group)
    return replace(row, overtaken=frozenset(overtaken)) if overtaken else row


@dataclass(frozen=True)
class ClusterView:
    """What the cluster looks like: expected nodes and groups, and what each node reported."""

    current: int | None
    statuses: Mapping[str, NodeStatus] = field(default_factory=lambda: _frozen({}))
    # The nodes expected to report, in the spec's order, with their roles.
    nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Each VRRP group's members.
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))
    # When the statuses were read (aware). None: no report's age is judged, none is stale.
    now: datetime | None = None

    @classmethod
    def of(cls, spec: StackSpec | None, current: int | None,
           statuses: Mapping[str, NodeStatus | None],
           now: datetime | None = None) -> ClusterView:
        reported = {n: s for n, s in statuses.items() if s is not None}
        if spec is None:
            return cls(current, _frozen(reported), now=now)
        return cls(current, _frozen(reported),
                   tuple((n.name, n.roles) for n in spec.nodes),
                   _frozen({g.name: tuple(m.node for m in g.members) for g in spec.vrrp_groups}),
                   now)

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> ClusterView:
        """The view behind a ``stackha status --json`` document (as the drill reads it)."""
        statuses: dict[str, NodeStatus] = {}
        nodes: list[tuple[str, tuple[str, ...]]] = []
        for entry in doc.get("nodes") or []:
            name = str(entry.get("node", "?"))
            roles = tuple(str(r) for r in entry.get("roles") or ())
            nodes.append((name, roles))
            if entry.get("reporting"):
                applied = entry.get("applied_version")
                # ``reported_vrrp`` is what the node said; ``vrrp`` hides a stale one's claims.
                vrrp = entry.get("reported_vrrp", entry.get("vrrp")) or {}
                statuses[name] = NodeStatus(
                    node=name, roles=roles,
                    applied_version=applied if isinstance(applied, int) else None,
                    last_error=str(entry.get("last_error") or ""),
                    vrrp=_frozen({str(k): str(v) for k, v in vrrp.items()}),
                    vrrp_since=_frozen({str(k): str(v) for k, v
                                        in (entry.get("vrrp_since") or {}).items()}),
                    health=_frozen({str(k): str(v)
                                    for k, v in (entry.get("health") or {}).items()}),
                    heartbeat=str(entry.get("heartbeat") or ""),
                    heartbeat_interval=interval_or_none(entry.get("heartbeat_interval")),
                    maintenance=str(entry.get("maintenance") or ""),
                    maintenance_reason=str(entry.get("maintenance_reason") or ""))
        groups = {str(g): tuple(str(m) for m in members)
                  for g, members in (doc.get("vrrp_groups") or {}).items()}
        # The ages are judged again at the time the document was read, not at reading it back.
        read_at = doc.get("read_at")
        now = parse_time(read_at) if isinstance(read_at, str) else None
        return cls(doc.get("current_version"), _frozen(statuses), tuple(nodes), _frozen(groups),
                   now)

    # per node ------------------------------------------------------------------------------
    def rows(self) -> list[NodeRow]:
        """Expected nodes first, in order; then nodes that report but are not expected."""
        return list(self._rows)

    @cached_property
    def _rows(self) -> tuple[NodeRow, ...]:
        # Every verdict asks for the rows, several times each: made once per view.
        known = {name for name, _ in self.nodes}
        named = [(name, roles, self.statuses.get(name)) for name, roles in self.nodes]
        named += [(name, s.roles, s) for name, s in sorted(self.statuses.items())
                  if name not in known]
        rows = [self._row(name, roles, s) for name, roles, s in named]
        return tuple(_with_overtaken(row, rows) for row in rows)

    def _row(self, name: str, roles: tuple[str, ...], status: NodeStatus | None) -> NodeRow:
        if status is None or self.now is None:
            return NodeRow(name, roles, status, self.current)
        age, limit = report_age(status, self.now), stale_after(status)
        # No readable heartbeat: its age is unknown, not proven old (as before this check).
        stale = age is not None and age > limit
        return NodeRow(name, roles, status, self.current, age, stale, limit)

    def stale(self) -> list[NodeRow]:
        return [row for row in self.rows() if row.stale]

    def drifting(self) -> list[str]:
        return [row.node for row in self.rows() if row.drift]

    # per group -----------------------------------------------------------------------------
    def _claims(self, stale: bool) -> dict[str, tuple[str, ...]]:
        """Believed MASTER claims (``stale`` False) or disbelieved ones: from a stale report,
        or overtaken by a peer's takeover."""
        claims: dict[str, list[str]] = {g: [] for g in self.groups}
        for row in self.rows():
            for group, state in (row.status.vrrp.items() if row.status else ()):
                claims.setdefault(group, [])
                if state == MASTER and (row.stale or group in row.overtaken) == stale:
                    claims[group].append(row.node)
        return {g: tuple(sorted(nodes)) for g, nodes in claims.items()}

    def masters(self) -> dict[str, tuple[str, ...]]:
        """Every group known (from the groups or from any report) -> who claims MASTER in a
        fresh report (a stale report's claim is no MASTER: see ``stale_claims``)."""
        return self._claims(stale=False)

    def stale_claims(self) -> dict[str, tuple[str, ...]]:
        """Groups -> nodes whose stale or overtaken report still claims MASTER (only groups
        with some)."""
        return {g: nodes for g, nodes in self._claims(stale=True).items() if nodes}

    def _overtaken_nodes(self) -> set[str]:
        return {row.node for row in self.rows() if row.overtaken}

    @staticmethod
    def _doubts(master: str, doubted: tuple[str, ...], overtaken: set[str]) -> str:
        """``stale report from X still claims MASTER`` (or ``report from X older than M's
        takeover``, for an overtaken claim)."""
        why = ", ".join(f"report from {n} older than {master}'s takeover" if n in overtaken
                        else f"stale report from {n}" for n in doubted)
        return f"{why} still {'claim' if len(doubted) > 1 else 'claims'} MASTER"

    def split_brain(self) -> dict[str, list[str]]:
        """Groups that more than one node claims to be MASTER of, in fresh reports."""
        return {g: list(nodes) for g, nodes in self.masters().items() if len(nodes) > 1}

    def split_brain_suspected(self) -> dict[str, list[str]]:
        """Groups with one fresh MASTER and a stale report claiming MASTER too: most likely a
        dead node's leftover, but it may be alive and cut off. All claimants, sorted."""
        masters = self.masters()
        return {g: sorted([*masters.get(g, ()), *stale])
                for g, stale in self.stale_claims().items() if len(masters.get(g, ())) == 1}

    # the verdicts --------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """One line per reason the cluster is not all green; empty when it is."""
        problems: list[str] = []
        if self.current is None:
            problems.append("no version published")
        for row in self.rows():
            s = row.status
            if s is None:
                problems.append(f"{row.node}: not reporting")
                continue
            if row.stale:  # what else it says is not current: one line for it
                problems.append(f"{row.node}: {row.why_stale()}")
                continue
            if s.applied_version != self.current:
                problems.append(f"{row.node}: applied {s.applied_version}, "
                                f"current {self.current}")
            for role, state in sorted(s.health.items()):
                if state != "ok":
                    problems.append(f"{row.node}: {role} unhealthy: {state}")
            if s.last_error:
                problems.append(f"{row.node}: {s.last_error}")
        stale = {row.node for row in self.stale()}
        for group, members in sorted(self.groups.items()):
            for member in members:
                status = self.statuses.get(member)
                if status is not None and member not in stale and group not in status.vrrp:
                    problems.append(f"{member}: no VRRP state for group {group} "
                                    "(keepalived not running?)")
        stale_claims = self.stale_claims()
        overtaken = self._overtaken_nodes()
        for group, nodes in sorted(self.masters().items()):
            claimed = ", ".join(stale_claims.get(group, ()))
            if not nodes:
                problems.append(f"group {group}: no MASTER" + (
                    f" (stale report from {claimed} claims it)" if claimed else ""))
            elif len(nodes) > 1:
                problems.append(f"group {group}: split brain, MASTER on {', '.join(nodes)}")
            elif claimed:
                problems.append(f"group {group}: split brain suspected: MASTER on {nodes[0]}, "
                                + self._doubts(nodes[0], stale_claims[group], overtaken))
        return problems

    @property
    def green(self) -> bool:
        return not self.problems()

    def progress(self) -> Progress:
        """How far the nodes are towards ready at the current version."""
        current = self.current
        ready: list[str] = []
        waiting: list[tuple[str, str]] = []
        failed: list[tuple[str, str]] = []
        rows = {row.node: row for row in self.rows()}
        for name, _roles in self.nodes:
            status = self.statuses.get(name)
            if rows[name].stale:  # neither ready nor failed: nothing it says can be believed
                waiting.append((name, rows[name].why_stale()))
                continue
            if (status is not None and current is not None and status.last_error
                    and status.applied_version != current
                    and status.last_error.startswith(f"version {current} ")):
                failed.append((name, status.last_error))
                continue
            reason = _not_ready(status, current)
            if reason is None:
                ready.append(name)
            else:
                waiting.append((name, reason))
        masters = self.masters()
        for group in self.groups:
            claimed = masters.get(group, ())
            if len(claimed) != 1:
                why = ("no MASTER yet" if not claimed
                       else f"several MASTERs: {', '.join(claimed)}")
                waiting.append((f"vrrp group {group}", why))
        return Progress(current, tuple(ready), tuple(waiting), tuple(failed), len(self.nodes))

    # for people and programs ----------------------------------------------------------------
    def document(self) -> dict[str, Any]:
        """The ``stackha status --json`` document, with the groups and their members."""
        return {"schema_version": STATUS_SCHEMA_VERSION,
                "current_version": self.current, "nodes": [r.as_dict() for r in self.rows()],
                "split_brain": self.split_brain(),
                "split_brain_suspected": self.split_brain_suspected(),
                "vrrp_groups": {g: list(m) for g, m in self.groups.items()},
                # The time the ages are taken against, so that a reader of this document
                # judges them as it was printed.
                "read_at": self.now.astimezone(UTC).strftime(TIME_FORMAT) if self.now else None}

    def table(self) -> str:
        header = ("NODE", "ROLES", "APPLIED", "CURRENT", "VRRP", "HEALTH", "AGE", "LAST ERROR")
        lines = [header]
        for row in self.rows():
            s = row.status
            if s is None:
                lines.append((row.node, ",".join(row.roles), "missing",
                              str(row.current or "-"), "-", "-", "-", "no status reported"))
                continue
            applied = str(s.applied_version or "-") + (" (drift)" if row.drift else "")
            vrrp = ",".join(f"{g}={st}" for g, st in sorted(row.vrrp().items())) or "-"
            # A stale report's "ok" is not current: not shown as healthy.
            health = "stale" if row.stale else ",".join(
                f"{r}={'ok' if v == 'ok' else 'FAIL'}" for r, v in sorted(s.health.items())) or "-"
            age = "?" if row.age is None else f"{row.age:.1f}s" + (" (stale)" if row.stale else "")
            lines.append((row.node, ",".join(s.roles or row.roles), applied,
                          str(row.current or "-"), vrrp, health, age, s.last_error or "-"))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        out = []
        for line in lines:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
            out.append("  ".join([*cells, line[-1]]).rstrip())
        for group, nodes in self.split_brain().items():
            out.append(f"SPLIT BRAIN: group {group} has several masters: {', '.join(nodes)}")
        masters, stale_claims = self.masters(), self.stale_claims()
        overtaken = self._overtaken_nodes()
        for group in self.split_brain_suspected():
            master = masters[group][0]
            out.append(f"SPLIT BRAIN SUSPECTED: group {group}: MASTER on {master}; "
                       + self._doubts(master, stale_claims[group], overtaken))
        for row in self.rows():
            if row.status is not None and row.status.maintenance:
                reason = row.status.maintenance_reason
                out.append(f"MAINTENANCE: {row.node}: {row.status.maintenance}"
                           + (f": {reason}" if reason else ""))
        for row in self.stale():
            out.append(f"STALE: {row.node}: {row.why_stale()}, stale after "
                       f"{row.stale_after_s:g} s: its VRRP state and health are not believed")
        return "\n".join(out) + "\n"


def _not_ready(status: NodeStatus | None, current: int | None) -> str | None:
    if status is None:
        return "not reporting"
    if status.applied_version != current:
        return f"applied {status.applied_version or 'nothing'}, current {current}"
    bad = [f"{role}: {why}" for role, why in sorted(status.health.items()) if why != "ok"]
    return "unhealthy: " + "; ".join(bad) if bad else None
