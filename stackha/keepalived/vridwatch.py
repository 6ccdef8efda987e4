"""Listen to VRRP adverts on the wire and spot routers the spec does not know.

Two routers sharing a VRID on one segment fight over one virtual MAC; keepalived only logs
"bogus VRRP packet". Seeing an advert for one of our VRIDs from an address that is no member
of the group is reported as a VRID conflict.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)
IPPROTO_VRRP = 112


@dataclass(frozen=True)
class Advert:
    source: ipaddress.IPv4Address
    vrid: int
    priority: int
    version: int


def parse_advert(packet: bytes) -> Advert | None:
    """A raw IPv4 packet carrying VRRP, or None if it is not one."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_VRRP:
        return None
    header_length = (packet[0] & 0x0F) * 4
    vrrp = packet[header_length:header_length + 8]
    if len(vrrp) < 4 or vrrp[0] & 0x0F != 1:  # type 1: advertisement
        return None
    return Advert(ipaddress.IPv4Address(packet[12:16]), vrrp[1], vrrp[2], vrrp[0] >> 4)


def conflict(advert: Advert, members_by_vrid: dict[int, set[ipaddress.IPv4Address]]) -> bool:
    members = members_by_vrid.get(advert.vrid)
    return members is not None and advert.source not in members


class VridWatch:
    def __init__(self, members_by_vrid: Callable[[], dict[int, set[ipaddress.IPv4Address]]],
                 on_conflict: Callable[[Advert], None]):
        self.members_by_vrid = members_by_vrid
        self.on_conflict = on_conflict
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_VRRP)
        except OSError as exc:
            log.warning("event=vrid_watch_unavailable reason=%r", str(exc))
            return False
        self._thread = threading.Thread(target=self._listen, args=(sock,), daemon=True,
                                        name="vrid-watch")
        self._thread.start()
        return True

    def _listen(self, sock: socket.socket) -> None:
        while True:
            try:
                packet = sock.recv(2048)
            except OSError:
                return
            advert = parse_advert(packet)
            if advert and conflict(advert, self.members_by_vrid()):
                self.on_conflict(advert)
