"""The system side of a realserver's VIP (and of the VIPs a dead keepalived left behind):
IPv4 addresses on one interface, through iproute2's `ip` (its JSON output).

This was pyroute2; it costs about 12 MiB resident in every agent that touched an address
(issue 16: at most 30 MiB per agent), for calls made a few times per version or per
keepalived restart. `ip` is in every image the agent runs in (iproute2).
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from stackha.model.environment import child_environment

_TIMEOUT = 10.0


def _ip(*args: str) -> str:
    try:
        done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=_TIMEOUT,
                              check=False, env=child_environment(os.environ))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OSError(f"ip {' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise OSError(f"ip {' '.join(args)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout


def ip_json(*args: str) -> list[dict[str, Any]]:
    text = _ip("-j", *args).strip()
    found = json.loads(text) if text else []
    return found if isinstance(found, list) else []


class NetlinkLoopback:
    """IPv4 addresses on one interface (``lo`` unless told), as (address, prefix) pairs."""

    def __init__(self, device: str = "lo"):
        self.device = device

    def list(self) -> list[tuple[str, int]]:
        links = ip_json("-4", "addr", "show", "dev", self.device)
        return [(str(a["local"]), int(a["prefixlen"])) for link in links
                for a in link.get("addr_info", []) if a.get("family") == "inet"]

    def add(self, vip: str) -> None:
        _ip("addr", "add", f"{vip}/32", "dev", self.device)

    def remove(self, vip: str, prefixlen: int) -> None:
        _ip("addr", "del", f"{vip}/{prefixlen}", "dev", self.device)


def route_interface(address: str) -> str | None:
    """The interface the kernel would send to ``address`` through, or None."""
    try:
        routes = ip_json("route", "get", address)
    except (OSError, ValueError):  # "no route" and friends
        return None
    for route in routes:
        if route.get("dev"):
            return str(route["dev"])
    return None
