"""Staged rollout: one canary node per role applies a version before the others do.

A version can pass every static check (the coordinator's, each node's ``nginx -t``) and still
fail its health check once loaded. Applied everywhere at once, every node serves it until it
rolls back. So the coordinator names one canary per file role in the version, preferring a
healthy node that holds no VIP, and the other nodes of that role wait until the canary
reports the version applied (then follow) or rejected (then refuse it too, unapplied).

Two pure decisions live here: which canaries the coordinator names, and what a waiting node
does with what its canary reports. The agent and the coordinator do the I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from stackha.model.bundle import ROLE_PREFIXES
from stackha.model.spec import StackSpec
from stackha.model.status import NodeStatus

STAGED_ROLES = tuple(ROLE_PREFIXES)  # roles whose files the agents write: nginx, mycat


def _holds_a_vip(status: NodeStatus) -> bool:
    return any(state == "MASTER" for state in status.vrrp.values())


def _healthy_for(status: NodeStatus, role: str) -> bool:
    # A role without a configured health check reports nothing: count it as healthy.
    return status.health.get(role, "ok") == "ok"


def _unchecked(status: NodeStatus, role: str) -> bool:
    # Such a node can only catch what fails validation or reload, not the health check.
    return role not in status.health


def choose_canaries(spec: StackSpec, statuses: Mapping[str, NodeStatus]) -> dict[str, str]:
    """Role -> canary node, for each role with at least two live nodes.

    Only live (reporting) agents that know how to be a canary and whose role is healthy
    qualify: a canary that was sick before the push would reject a good version and the others
    would follow it. Among those, a node that is no VRRP master goes first, so clients behind
    the VIP never see the trial; then one that health-checks the role.
    """
    canaries: dict[str, str] = {}
    for role in STAGED_ROLES:
        live = [n.name for n in spec.nodes if role in n.roles and n.name in statuses]
        if len(live) < 2:
            continue
        # A node in maintenance is out on purpose: no trial there.
        qualified = [name for name in live if statuses[name].canary_capable
                     and not statuses[name].maintenance
                     and _healthy_for(statuses[name], role)]
        if qualified:
            canaries[role] = min(qualified, key=lambda name: (
                _holds_a_vip(statuses[name]), _unchecked(statuses[name], role), name))
    return canaries


@dataclass(frozen=True)
class Gate:
    """What a node does now with a version: ``apply``, ``wait`` or ``reject``."""

    decision: str
    reason: str = ""


def gate(number: int, canaries: Mapping[str, str], node: str, changed_roles: Collection[str],
         canary_status: Callable[[str], NodeStatus | None], waited: float,
         limit: float) -> Gate:
    """Decide for ``node`` about version ``number``, given its canaries' reports.

    Only roles whose files change on this node wait: a version that leaves them alone has
    nothing a canary could have caught. A node that is itself the canary of one of those roles
    applies at once: it is on trial anyway, and two canaries of different roles waiting on each
    other would stage nothing. A canary that is gone (no status: its session ended) or silent
    past ``limit`` seconds no longer holds the rollout up: the version is what the operator
    published, and the node's own checks and health rollback still apply.
    """
    if any(canaries.get(role) == node for role in changed_roles):
        return Gate("apply")
    waiting: list[str] = []
    notes: list[str] = []
    for role in sorted(changed_roles):
        canary = canaries.get(role)
        if canary is None:
            continue
        status = canary_status(canary)
        if status is None:
            if waited < limit:
                waiting.append(f"{canary} ({role}, not reporting)")
            else:
                notes.append(f"canary {canary} ({role}) gone for {waited:.0f} s")
            continue
        if status.rejected_version == number:
            return Gate("reject", f"canary {canary} ({role}) refused it: "
                                  f"{status.last_error or 'no reason given'}")
        if status.applied_version is not None and status.applied_version >= number:
            continue
        waiting.append(f"{canary} ({role})")
    if waiting and waited < limit:
        return Gate("wait", f"waiting for canary {', '.join(waiting)}")
    if waiting:
        notes.append(f"canary {', '.join(waiting)} silent for {waited:.0f} s")
    return Gate("apply", "; ".join(notes))
