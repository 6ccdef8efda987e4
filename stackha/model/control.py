"""Pure: the operator's requests kept in the store (switchover, maintenance) and the
decisions taken from them.

- A switchover request names a group's preferred holder. It is sticky, as in Patroni: the
  target stays MASTER after the move (the request stays in the store as the group's
  preferred holder) until ``stackha switchover GROUP --clear`` or the next switchover. While
  it stands, the target's agent raises its own priority in that group (a track file) above
  every other member's, but only while its own checks pass and it is not in maintenance, so
  a preferred holder that fails loses the VIP like any other master.
- Maintenance takes a node out: its agent hands its VIPs over (FAULT through yield.track),
  MyCat goes offline, directors give it weight 0 (no new connections; established ones
  stay), and it is no canary. It is kept in the store so it survives agent restarts.

Both are parsed tolerantly (a malformed znode reads as no request, named in the log by the
caller) and are small JSON documents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stackha.model.cluster import ClusterView
from stackha.model.spec import LvsService, StackSpec, VrrpGroup

MAX_REASON = 200


@dataclass(frozen=True)
class SwitchoverRequest:
    group: str
    to: str
    requested_at: str
    id: str

    def to_json(self) -> bytes:
        return json.dumps({"to": self.to, "requested_at": self.requested_at, "id": self.id},
                          sort_keys=True).encode()


@dataclass(frozen=True)
class Maintenance:
    node: str
    reason: str = ""
    since: str = ""
    # How long the node's agent waits for its connections to drain before it reports done.
    drain_timeout: float = 30.0

    def to_json(self) -> bytes:
        return json.dumps({"reason": self.reason, "since": self.since,
                           "drain_timeout": self.drain_timeout}, sort_keys=True).encode()


def _object(data: bytes | None) -> dict[str, Any] | None:
    if not data:
        return None
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return raw if isinstance(raw, dict) else None


def parse_switchover(group: str, data: bytes | None) -> SwitchoverRequest | None:
    raw = _object(data)
    if raw is None or not isinstance(raw.get("to"), str) or not raw["to"]:
        return None
    return SwitchoverRequest(group, raw["to"], str(raw.get("requested_at") or ""),
                             str(raw.get("id") or ""))


def parse_maintenance(node: str, data: bytes | None) -> Maintenance | None:
    """None: no maintenance. A znode that exists but does not parse still means maintenance
    (the operator asked for it; a damaged reason must not bring the node back)."""
    if data is None:
        return None
    raw = _object(data) or {}
    timeout = raw.get("drain_timeout")
    drain = float(timeout) if isinstance(timeout, int | float) and not isinstance(
        timeout, bool) and 0 <= timeout <= 86_400 else Maintenance.drain_timeout
    return Maintenance(node, str(raw.get("reason") or "")[:MAX_REASON],
                       str(raw.get("since") or ""), drain)


class Refused(ValueError):
    """A switchover or maintenance request that would not do what was asked; says why."""


def why_not_eligible(view: ClusterView, node: str, maintenance: Mapping[str, Maintenance]
                     ) -> str | None:
    """Why ``node`` cannot take a VIP now (from its report and the maintenance list)."""
    if node in maintenance:
        reason = maintenance[node].reason
        return f"{node} is in maintenance" + (f" ({reason})" if reason else "")
    row = next((r for r in view.rows() if r.node == node), None)
    if row is None or row.status is None:
        return f"{node} is not reporting"
    if row.stale:
        return f"{node}: {row.why_stale()}"
    bad = sorted(f"{check}: {state}" for check, state in row.status.health.items()
                 if state != "ok")
    if bad:
        return f"{node} is not healthy ({'; '.join(bad)})"
    return None


def choose_switchover_target(spec: StackSpec, view: ClusterView, group: str, to: str | None,
                             maintenance: Mapping[str, Maintenance]) -> str:
    """The node a switchover of ``group`` moves the VIP to, or Refused with the reason.

    Without ``to``: the eligible member that is not MASTER now, by priority (then name)."""
    found = next((g for g in spec.vrrp_groups if g.name == group), None)
    if found is None:
        raise Refused(f"no VRRP group {group!r} in the spec (groups: "
                      f"{', '.join(g.name for g in spec.vrrp_groups) or 'none'})")
    members = [m.node for m in found.members]
    masters = view.masters().get(group, ())
    if to is not None:
        if to not in members:
            raise Refused(f"{to} is not a member of group {group} (members: "
                          f"{', '.join(members)})")
        reason = why_not_eligible(view, to, maintenance)
        if reason is not None:
            raise Refused(f"cannot move group {group} to {reason}")
        row = next(r for r in view.rows() if r.node == to)
        assert row.status is not None
        if group not in row.status.vrrp:
            raise Refused(f"cannot move group {group} to {to}: it reports no VRRP state for "
                          "the group (keepalived not running?)")
        return to
    candidates = sorted((m for m in found.members if m.node not in masters
                         and why_not_eligible(view, m.node, maintenance) is None),
                        key=lambda m: (-m.priority, m.node))
    if not candidates:
        why = "; ".join(r for m in found.members if m.node not in masters
                        and (r := why_not_eligible(view, m.node, maintenance)))
        raise Refused(f"no member of group {group} can take it over" + (
            f": {why}" if why else ""))
    return candidates[0].node


def maintenance_refusal(spec: StackSpec, view: ClusterView, node: str,
                        maintenance: Mapping[str, Maintenance]) -> str | None:
    """Why putting ``node`` in maintenance would leave a group it holds without a holder."""
    if spec.node(node) is None:
        return f"node {node} is not in the spec"
    masters = view.masters()
    for group in spec.groups_of(node):
        if node not in masters.get(group.name, ()):
            continue
        others = [m.node for m in group.members if m.node != node
                  and why_not_eligible(view, m.node, maintenance) is None]
        if not others:
            return (f"{node} is MASTER of group {group.name} and no other member could take "
                    "it over (use --force to take it out all the same)")
    return None


def switchover_weight(group: VrrpGroup) -> int:
    """How far the preferred holder's priority rises: above every other member's."""
    priorities = [m.priority for m in group.members]
    return min(max(priorities) - min(priorities) + 1, 253)


def switchover_track(group: str) -> str:
    return f"switchover_{group}.track"


def preferred_value(request: SwitchoverRequest | None, node: str, healthy: bool,
                    in_maintenance: bool) -> int:
    """switchover_<group>.track on ``node``: 1 raises its priority (it is the group's
    preferred holder and may serve), 0 leaves it."""
    return 1 if request is not None and request.to == node and healthy \
        and not in_maintenance else 0


def drained(service: LvsService, maintenance: Mapping[str, Maintenance] | set[str]
            ) -> LvsService:
    """``service`` with weight 0 for its realservers in maintenance (no new connections;
    established ones stay on them)."""
    if not any(name in maintenance for name in service.realservers):
        return service
    weights = tuple(0 if name in maintenance else service.weight(name)
                    for name in service.realservers)
    return replace(service, weights=weights)


def drained_spec(spec: StackSpec, maintenance: Mapping[str, Maintenance] | set[str]
                 ) -> StackSpec:
    """The spec a director forwards with: nodes in maintenance at weight 0."""
    if not maintenance:
        return spec
    return replace(spec, lvs_services=tuple(drained(s, maintenance)
                                            for s in spec.lvs_services))
