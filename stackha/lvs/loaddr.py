"""The system side of a realserver's VIP: addresses on ``lo`` through netlink (pyroute2).

pyroute2 0.9's synchronous IPRoute must not run inside an asyncio loop; stackha calls it from
plain threads only, and opens one socket per call so it is always closed where it was used.
"""

from __future__ import annotations

from pyroute2 import IPRoute


class NetlinkLoopback:
    """IPv4 addresses on one interface (``lo`` unless told), as (address, prefix) pairs."""

    def __init__(self, device: str = "lo"):
        self.device = device

    def _index(self, ipr: IPRoute) -> int:
        found = ipr.link_lookup(ifname=self.device)
        if not found:
            raise OSError(f"interface {self.device} not found")
        return found[0]

    def list(self) -> list[tuple[str, int]]:
        with IPRoute() as ipr:
            index = self._index(ipr)
            return [(str(m.get("address")), int(m["prefixlen"]))
                    for m in ipr.addr("dump", index=index) if m["family"] == 2]

    def add(self, vip: str) -> None:
        with IPRoute() as ipr:
            ipr.addr("add", index=self._index(ipr), address=vip, prefixlen=32)

    def remove(self, vip: str, prefixlen: int) -> None:
        with IPRoute() as ipr:
            ipr.addr("del", index=self._index(ipr), address=vip, prefixlen=prefixlen)


def route_interface(address: str) -> str | None:
    """The interface the kernel would send to ``address`` through, or None."""
    with IPRoute() as ipr:
        try:
            routes = ipr.route("get", dst=address)
        except Exception:  # pyroute2 raises NetlinkError and friends: "no route" here
            return None
        for route in routes:
            oif = route.get("RTA_OIF")
            if oif is not None:
                links = ipr.link("get", index=oif)
                return str(links[0].get("ifname")) if links else None
    return None
