"""How many client connections a node in maintenance still serves.

Counted from the kernel's socket tables (/proc/net/tcp and tcp6): ESTABLISHED sockets whose
local port is one the node serves, from anywhere but loopback (the agent's own health probes
connect over loopback every 0.1 s and would never let the count reach 0). Reading the tables
costs far less than running ss, and needs no library.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Iterable
from pathlib import Path

from stackha.model.spec import StackSpec

ESTABLISHED = "01"
TABLES = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))


def _address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw[::-1])  # one little-endian 32-bit word
    # four 32-bit words, each in host (little-endian) order
    return ipaddress.IPv6Address(b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))


def _is_loopback(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def count_established(lines: Iterable[str], ports: Collection[int]) -> int:
    """Pure: ESTABLISHED connections to ``ports`` from non-loopback peers in a /proc table."""
    count = 0
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[3] != ESTABLISHED or ":" not in fields[1]:
            continue
        try:
            port = int(fields[1].rsplit(":", 1)[1], 16)
            remote = _address(fields[2].rsplit(":", 1)[0])
        except ValueError:
            continue
        if port in ports and not _is_loopback(remote):
            count += 1
    return count


def served_ports(spec: StackSpec, node: str) -> set[int]:
    """The ports clients reach this node on: its LVS services, nginx's and MyCat's."""
    me = spec.node(node)
    if me is None:
        return set()
    ports = {s.port for s in spec.lvs_services if node in s.realservers}
    if "nginx" in me.roles:
        from urllib.parse import urlsplit

        url = urlsplit(spec.health_check("nginx").url)
        ports.add(url.port or (443 if url.scheme == "https" else 80))
    if "mycat" in me.roles:
        ports.add(spec.health_check("mycat").port)
    return ports


def open_connections(ports: Collection[int], tables: Iterable[Path] = TABLES) -> int:
    total = 0
    for table in tables:
        try:
            with open(table) as handle:
                next(handle, None)  # the header
                total += count_established(handle, ports)
        except OSError:
            continue  # no IPv6 on this host, say
    return total
