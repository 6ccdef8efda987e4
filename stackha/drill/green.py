"""Pure: the `stackha status --json` document, and what keeps it from being all green.

All green: a version is published; every node reports, has applied the current version and
is healthy with no error; every VRRP group has exactly one MASTER (none: nobody holds its
VIPs; several: split brain) and each reporting member of a group reports a state for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..agent.status import parse_status
from ..spec import StackSpec
from ..statusview import build_rows, split_brain
from .analysis import StatusSample


def status_document(spec: StackSpec, current: int | None,
                    raw: Mapping[str, bytes]) -> dict[str, Any]:
    """What `stackha status --json` prints for these store contents, plus the spec's VRRP
    groups and their members (``vrrp_groups``), so that a group nobody reports is seen."""
    rows = build_rows(spec, {n: parse_status(n, d) for n, d in raw.items()}, current)
    return {"current_version": current, "nodes": [r.as_dict() for r in rows],
            "split_brain": split_brain(rows),
            "vrrp_groups": {g.name: [m.node for m in g.members] for g in spec.vrrp_groups}}


def status_problems(doc: Mapping[str, Any]) -> list[str]:
    """One line per reason the document is not all green; empty when it is."""
    problems: list[str] = []
    current = doc.get("current_version")
    if current is None:
        problems.append("no version published")
    masters: dict[str, list[str]] = {}
    for node in doc.get("nodes", []):
        name = node.get("node", "?")
        if not node.get("reporting"):
            problems.append(f"{name}: not reporting")
            continue
        if node.get("applied_version") != current:
            problems.append(f"{name}: applied {node.get('applied_version')}, "
                            f"current {current}")
        for role, state in sorted((node.get("health") or {}).items()):
            if state != "ok":
                problems.append(f"{name}: {role} unhealthy: {state}")
        if node.get("last_error"):
            problems.append(f"{name}: {node['last_error']}")
        for group, state in (node.get("vrrp") or {}).items():
            masters.setdefault(group, [])
            if state == "MASTER":
                masters[group].append(name)
    reporting = {n.get("node") for n in doc.get("nodes", []) if n.get("reporting")}
    for group, members in sorted((doc.get("vrrp_groups") or {}).items()):
        masters.setdefault(group, [])
        for member in members:
            states = next((n.get("vrrp") or {} for n in doc.get("nodes", [])
                           if n.get("node") == member), {})
            if member in reporting and group not in states:
                problems.append(f"{member}: no VRRP state for group {group} "
                                "(keepalived not running?)")
    for group, nodes in sorted(masters.items()):
        if not nodes:
            problems.append(f"group {group}: no MASTER")
        elif len(nodes) > 1:
            problems.append(f"group {group}: split brain, MASTER on {', '.join(sorted(nodes))}")
    return problems


def sample_of(t: float, doc: Mapping[str, Any]) -> StatusSample:
    """A reading of the document at ``t``."""
    nodes = doc.get("nodes", [])
    masters: dict[str, list[str]] = {}
    for node in nodes:
        for group, state in (node.get("vrrp") or {}).items():
            if state == "MASTER":
                masters.setdefault(group, []).append(node["node"])
    return StatusSample(
        t=t, reachable=True, problems=tuple(status_problems(doc)),
        current=doc.get("current_version"),
        applied={n["node"]: n.get("applied_version") for n in nodes if n.get("reporting")},
        missing=tuple(n["node"] for n in nodes if not n.get("reporting")),
        masters={g: tuple(sorted(v)) for g, v in masters.items()},
        split_brain={g: tuple(sorted(v)) for g, v in (doc.get("split_brain") or {}).items()},
        errors={n["node"]: n["last_error"] for n in nodes if n.get("last_error")})


def unreachable(t: float, reason: str) -> StatusSample:
    return StatusSample(t=t, reachable=False, problems=(f"status unreadable: {reason}",))
