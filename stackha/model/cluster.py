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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stackha.model.spec import StackSpec
from stackha.model.status import NodeStatus

MASTER = "MASTER"


@dataclass(frozen=True)
class NodeRow:
    node: str
    roles: tuple[str, ...]
    status: NodeStatus | None
    current: int | None

    @property
    def drift(self) -> bool:
        return self.status is None or self.status.applied_version != self.current

    def as_dict(self) -> dict[str, object]:
        s = self.status
        return {
            "node": self.node, "roles": list(self.roles), "reporting": s is not None,
            "applied_version": s.applied_version if s else None, "current_version": self.current,
            "drift": self.drift, "vrrp": dict(s.vrrp) if s else {},
            "health": dict(s.health) if s else {}, "last_error": s.last_error if s else "",
            "heartbeat": s.heartbeat if s else "",
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


@dataclass(frozen=True)
class ClusterView:
    """What the cluster looks like: expected nodes and groups, and what each node reported."""

    current: int | None
    statuses: Mapping[str, NodeStatus] = field(default_factory=lambda: _frozen({}))
    # The nodes expected to report, in the spec's order, with their roles.
    nodes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # Each VRRP group's members.
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _frozen({}))

    @classmethod
    def of(cls, spec: StackSpec | None, current: int | None,
           statuses: Mapping[str, NodeStatus | None]) -> ClusterView:
        reported = {n: s for n, s in statuses.items() if s is not None}
        if spec is None:
            return cls(current, _frozen(reported))
        return cls(current, _frozen(reported),
                   tuple((n.name, n.roles) for n in spec.nodes),
                   _frozen({g.name: tuple(m.node for m in g.members) for g in spec.vrrp_groups}))

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
                statuses[name] = NodeStatus(
                    node=name, roles=roles,
                    applied_version=applied if isinstance(applied, int) else None,
                    last_error=str(entry.get("last_error") or ""),
                    vrrp=_frozen({str(k): str(v) for k, v in (entry.get("vrrp") or {}).items()}),
                    health=_frozen({str(k): str(v)
                                    for k, v in (entry.get("health") or {}).items()}),
                    heartbeat=str(entry.get("heartbeat") or ""))
        groups = {str(g): tuple(str(m) for m in members)
                  for g, members in (doc.get("vrrp_groups") or {}).items()}
        return cls(doc.get("current_version"), _frozen(statuses), tuple(nodes), _frozen(groups))

    # per node ------------------------------------------------------------------------------
    def rows(self) -> list[NodeRow]:
        """Expected nodes first, in order; then nodes that report but are not expected."""
        rows = [NodeRow(name, roles, self.statuses.get(name), self.current)
                for name, roles in self.nodes]
        known = {name for name, _ in self.nodes}
        rows += [NodeRow(name, s.roles, s, self.current)
                 for name, s in sorted(self.statuses.items()) if name not in known]
        return rows

    def drifting(self) -> list[str]:
        return [row.node for row in self.rows() if row.drift]

    # per group -----------------------------------------------------------------------------
    def masters(self) -> dict[str, tuple[str, ...]]:
        """Every group known (from the groups or from any report) -> who claims MASTER."""
        claims: dict[str, list[str]] = {g: [] for g in self.groups}
        for row in self.rows():
            for group, state in (row.status.vrrp.items() if row.status else ()):
                claims.setdefault(group, [])
                if state == MASTER:
                    claims[group].append(row.node)
        return {g: tuple(sorted(nodes)) for g, nodes in claims.items()}

    def split_brain(self) -> dict[str, list[str]]:
        """Groups that more than one node claims to be MASTER of."""
        return {g: list(nodes) for g, nodes in self.masters().items() if len(nodes) > 1}

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
            if s.applied_version != self.current:
                problems.append(f"{row.node}: applied {s.applied_version}, "
                                f"current {self.current}")
            for role, state in sorted(s.health.items()):
                if state != "ok":
                    problems.append(f"{row.node}: {role} unhealthy: {state}")
            if s.last_error:
                problems.append(f"{row.node}: {s.last_error}")
        for group, members in sorted(self.groups.items()):
            for member in members:
                status = self.statuses.get(member)
                if status is not None and group not in status.vrrp:
                    problems.append(f"{member}: no VRRP state for group {group} "
                                    "(keepalived not running?)")
        for group, nodes in sorted(self.masters().items()):
            if not nodes:
                problems.append(f"group {group}: no MASTER")
            elif len(nodes) > 1:
                problems.append(f"group {group}: split brain, MASTER on {', '.join(nodes)}")
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
        for name, _roles in self.nodes:
            status = self.statuses.get(name)
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
        return {"current_version": self.current, "nodes": [r.as_dict() for r in self.rows()],
                "split_brain": self.split_brain(),
                "vrrp_groups": {g: list(m) for g, m in self.groups.items()}}

    def table(self) -> str:
        header = ("NODE", "ROLES", "APPLIED", "CURRENT", "VRRP", "HEALTH", "LAST ERROR")
        lines = [header]
        for row in self.rows():
            s = row.status
            if s is None:
                lines.append((row.node, ",".join(row.roles), "missing",
                              str(row.current or "-"), "-", "-", "no status reported"))
                continue
            applied = str(s.applied_version or "-") + (" (drift)" if row.drift else "")
            vrrp = ",".join(f"{g}={st}" for g, st in sorted(s.vrrp.items())) or "-"
            health = ",".join(f"{r}={'ok' if v == 'ok' else 'FAIL'}"
                              for r, v in sorted(s.health.items())) or "-"
            lines.append((row.node, ",".join(s.roles or row.roles), applied,
                          str(row.current or "-"), vrrp, health, s.last_error or "-"))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
        out = []
        for line in lines:
            cells = [cell.ljust(widths[i]) for i, cell in enumerate(line[:-1])]
            out.append("  ".join([*cells, line[-1]]).rstrip())
        for group, nodes in self.split_brain().items():
            out.append(f"SPLIT BRAIN: group {group} has several masters: {', '.join(nodes)}")
        return "\n".join(out) + "\n"


def _not_ready(status: NodeStatus | None, current: int | None) -> str | None:
    if status is None:
        return "not reporting"
    if status.applied_version != current:
        return f"applied {status.applied_version or 'nothing'}, current {current}"
    bad = [f"{role}: {why}" for role, why in sorted(status.health.items()) if why != "ok"]
    return "unhealthy: " + "; ".join(bad) if bad else None
