"""Pure: what the lab commands show people: the container table and the endpoints."""

from __future__ import annotations

from collections.abc import Sequence

from stackha.lab.compose.engine import ContainerState
from stackha.model.spec import StackSpec


def render_containers(rows: Sequence[ContainerState]) -> str:
    if not rows:
        return "no lab containers (stackha up starts them)\n"
    lines = [("SERVICE", "NODE", "STATE", "ADDRESS", "STATUS")]
    lines += [(c.service, c.node or "-", c.state, c.address or "-", c.status) for c in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(4)]
    return "".join("  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)),
                              line[4]]).rstrip() + "\n" for line in lines)


def endpoints(spec: StackSpec, sql_user: str | None, schema: str | None) -> list[str]:
    """Lines naming the VIPs and a command to try each."""
    lines = []
    for group in spec.vrrp_groups:
        roles = {r for m in group.members if (n := spec.node(m.node)) for r in n.roles}
        for vip in group.vips:
            if "nginx" in roles:
                lines.append(f"web VIP    http://{vip.ip}/      try: curl http://{vip.ip}/")
    user = sql_user or "USER"
    for service in spec.lvs_services:
        lines.append(f"MySQL VIP  {service.vip}:{service.port}  try: mysql -h {service.vip} "
                     f"-P {service.port} -u {user} -p {schema or ''}".rstrip()
                     + "   (password: configs/mycat/server.xml)")
    return lines
