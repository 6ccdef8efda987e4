"""Pure: turn what agents reported into the `stackha status` table or JSON."""

from __future__ import annotations

from dataclasses import dataclass

from .agent.status import NodeStatus
from .spec import StackSpec


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


def split_brain(rows: list[NodeRow]) -> dict[str, list[str]]:
    """Groups that more than one node claims to be MASTER of."""
    masters: dict[str, list[str]] = {}
    for row in rows:
        for group, state in (row.status.vrrp.items() if row.status else ()):
            if state == "MASTER":
                masters.setdefault(group, []).append(row.node)
    return {g: nodes for g, nodes in masters.items() if len(nodes) > 1}


def build_rows(spec: StackSpec, statuses: dict[str, NodeStatus | None],
               current: int | None) -> list[NodeRow]:
    rows = [NodeRow(n.name, n.roles, statuses.get(n.name), current) for n in spec.nodes]
    known = {n.name for n in spec.nodes}
    rows += [NodeRow(name, s.roles if s else (), s, current)
             for name, s in sorted(statuses.items()) if name not in known]
    return rows


def render_table(rows: list[NodeRow]) -> str:
    header = ("NODE", "ROLES", "APPLIED", "CURRENT", "VRRP", "HEALTH", "LAST ERROR")
    lines = [header]
    for row in rows:
        s = row.status
        if s is None:
            lines.append((row.node, ",".join(row.roles), "missing", str(row.current or "-"),
                          "-", "-", "no status reported"))
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
    for group, nodes in split_brain(rows).items():
        out.append(f"SPLIT BRAIN: group {group} has several masters: {', '.join(nodes)}")
    return "\n".join(out) + "\n"
