"""Which director engine serves a virtual service: keepalived + IPVS, or nftables."""

from __future__ import annotations

import subprocess
from pathlib import Path

from stackha.model.spec import LvsService, StackSpec

IPVS_PROC = Path("/proc/net/ip_vs")


def ipvs_available(proc: Path = IPVS_PROC) -> bool:
    """IPVS is there, or its module could be loaded (``modprobe --dry-run`` loads nothing)."""
    if proc.exists():
        return True
    try:
        done = subprocess.run(["modprobe", "--dry-run", "--quiet", "ip_vs"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def choose_engine(requested: str, ipvs_ok: bool) -> str:
    """``auto`` means ipvs where the kernel has it, nftables elsewhere."""
    if requested == "auto":
        return "ipvs" if ipvs_ok else "nftables"
    return requested


def directed_services(spec: StackSpec, node: str) -> tuple[LvsService, ...]:
    """The services this node forwards: it is a director in a VRRP group holding the VIP."""
    found = spec.node(node)
    if found is None or "director" not in found.roles:
        return ()
    vips = {v.ip for g in spec.groups_of(node) for v in g.vips}
    return tuple(s for s in spec.lvs_services if s.vip in vips)


def realserver_services(spec: StackSpec, node: str) -> tuple[LvsService, ...]:
    return tuple(s for s in spec.lvs_services if node in s.realservers)


def services_by_engine(spec: StackSpec, node: str, engine: str,
                       ipvs_ok: bool) -> tuple[LvsService, ...]:
    return tuple(s for s in directed_services(spec, node)
                 if choose_engine(s.engine, ipvs_ok) == engine)
