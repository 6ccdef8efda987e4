"""Pure: the `stackha status --json` document, and what keeps it from being all green.

All green: a version is published; every node reports, has applied the current version and
is healthy with no error; every VRRP group has exactly one MASTER (none: nobody holds its
VIPs; several: split brain) and each reporting member of a group reports a state for it.
A node whose report is stale (older than its heartbeat interval allows) is not green either:
a hard-killed node's last report outlives it until its ZooKeeper session expires.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stackha.lab.drill.analysis import StatusSample
from stackha.model.cluster import ClusterView
from stackha.model.spec import StackSpec
from stackha.model.status import NodeStatus


def status_document(spec: StackSpec, current: int | None,
                    statuses: Mapping[str, NodeStatus],
                    now: datetime | None = None) -> dict[str, Any]:
    """What `stackha status --json` prints for these store contents read at ``now`` (with the
    spec's VRRP groups and their members, so that a group nobody reports is seen)."""
    return ClusterView.of(spec, current, statuses, now).document()


def status_problems(doc: Mapping[str, Any]) -> list[str]:
    """One line per reason the document is not all green (ClusterView decides)."""
    return ClusterView.from_document(doc).problems()


def sample_of(t: float, doc: Mapping[str, Any]) -> StatusSample:
    """A reading of the document at ``t``."""
    view = ClusterView.from_document(doc)
    nodes = doc.get("nodes", [])
    return StatusSample(
        t=t, reachable=True, problems=tuple(view.problems()),
        current=view.current,
        applied={n: s.applied_version for n, s in view.statuses.items()},
        missing=tuple(n["node"] for n in nodes if not n.get("reporting")),
        masters={g: m for g, m in view.masters().items() if m},
        split_brain={g: tuple(v) for g, v in view.split_brain().items()},
        suspected={g: tuple(v) for g, v in view.split_brain_suspected().items()},
        errors={n: s.last_error for n, s in view.statuses.items() if s.last_error})


def unreachable(t: float, reason: str) -> StatusSample:
    return StatusSample(t=t, reachable=False, problems=(f"status unreadable: {reason}",))
