"""Is the lab's bridge there? Without it, packets for lab addresses leave the machine.

The lab's addresses (10.77.0.0/24 in the example) exist only on the bridge docker makes for
the lab network. When the lab is down the bridge is gone, and a packet for 10.77.0.5 follows
the host's default route out to its gateway. Host-side lab commands (status, the drill, the
e2e tests through them) therefore look first and say the lab is down instead of sending.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path

import yaml

SYS_NET = Path("/sys/class/net")


def lab_bridge(compose_file: Path) -> tuple[ipaddress.IPv4Network, str] | None:
    """(subnet, bridge name) of the lab network the compose file declares, if any."""
    try:
        document = yaml.safe_load(compose_file.read_text())
        for network in (document.get("networks") or {}).values():
            bridge = (network.get("driver_opts") or {}).get("com.docker.network.bridge.name")
            subnet = network["ipam"]["config"][0]["subnet"]
            if bridge:
                return ipaddress.IPv4Network(subnet), str(bridge)
    except (OSError, yaml.YAMLError, AttributeError, KeyError, IndexError, TypeError,
            ValueError):
        return None
    return None


def zookeeper_addresses(hosts: str) -> list[ipaddress.IPv4Address]:
    found = []
    for entry in hosts.split(","):
        host = entry.strip().rpartition(":")[0] or entry.strip()
        host = host.split("/", 1)[0]
        try:
            found.append(ipaddress.IPv4Address(host))
        except ValueError:
            continue
    return found


def lab_down_reason(targets: Iterable[ipaddress.IPv4Address], compose_file: Path,
                    sys_net: Path = SYS_NET) -> str | None:
    """None when nothing stops sending to ``targets``; otherwise why the lab counts as down:
    a target lies in the lab network of ``compose_file`` and its bridge does not exist."""
    lab = lab_bridge(compose_file)
    if lab is None:
        return None
    subnet, bridge = lab
    inside = sorted({str(t) for t in targets if t in subnet})
    if not inside or (sys_net / bridge).exists():
        return None
    return (f"the lab is down: its bridge {bridge} does not exist, so packets for "
            f"{', '.join(inside)} ({subnet}) would leave this machine by its default route; "
            "none sent (`stackha up` starts the lab)")
