"""Pure: how far the lab's agents are, from what they report in ZooKeeper.

Ready means: the node reports, has applied the current version, every health check is ok, and
every VRRP group has exactly one MASTER. A node whose last error names the current version has
refused it: waiting longer will not help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..agent.status import NodeStatus
from ..spec import StackSpec


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


def _node_reason(status: NodeStatus | None, current: int | None) -> str | None:
    if status is None:
        return "not reporting"
    if status.applied_version != current:
        return f"applied {status.applied_version or 'nothing'}, current {current}"
    bad = [f"{role}: {why}" for role, why in sorted(status.health.items()) if why != "ok"]
    return "unhealthy: " + "; ".join(bad) if bad else None


def assess(spec: StackSpec, statuses: Mapping[str, NodeStatus | None],
           current: int | None) -> Progress:
    ready, waiting, failed = [], [], []
    for node in spec.nodes:
        status = statuses.get(node.name)
        if (status is not None and current is not None and status.last_error
                and status.applied_version != current
                and status.last_error.startswith(f"version {current} ")):
            failed.append((node.name, status.last_error))
            continue
        reason = _node_reason(status, current)
        if reason is None:
            ready.append(node.name)
        else:
            waiting.append((node.name, reason))
    for group in spec.vrrp_groups:
        masters = [m.node for m in group.members
                   if (s := statuses.get(m.node)) and s.vrrp.get(group.name) == "MASTER"]
        if len(masters) != 1:
            why = "no MASTER yet" if not masters else f"several MASTERs: {', '.join(masters)}"
            waiting.append((f"vrrp group {group.name}", why))
    return Progress(current, tuple(ready), tuple(waiting), tuple(failed), len(spec.nodes))


def describe(progress: Progress) -> str:
    """One line for people: ``4/7 nodes ready at version 2; waiting: nginx1 (...)``."""
    line = f"{len(progress.ready)}/{progress.total} nodes ready at version {progress.current}"
    if progress.failed:
        line += "; failed: " + ", ".join(f"{n} ({why})" for n, why in progress.failed)
    if progress.waiting:
        line += "; waiting: " + ", ".join(f"{n} ({why})" for n, why in progress.waiting)
    return line
