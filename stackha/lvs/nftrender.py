"""Pure: the nftables ruleset that makes a director forward VIP:port by direct routing.

A netdev ingress chain on the director's facing interface rewrites the destination MAC of
packets for VIP:port to a realserver's MAC (and the source MAC to its own) and sends them back
out (``fwd to``); the IP packet is untouched. The realserver holds the VIP on ``lo`` and
answers the client itself.

Choices:
- netdev ingress has no connection tracking, so the realserver is chosen by a hash of the
  connection (saddr, sport, daddr, dport), or of the source address alone when the service
  asks for persistence (``persistence_timeout`` > 0 or scheduler ``sh``). Persistence therefore
  lasts as long as the healthy set does, not ``persistence_timeout`` seconds.
- The hash selects one of a fixed number of slots, and slots map to MACs. Each realserver owns
  its share of slots in round-robin order (``weight`` slots per turn); a slot whose owner is
  down goes to the healthy realserver that scores highest for that slot (rendezvous hashing).
  So a failure moves only the failed realserver's connections, and a return moves only its
  own slots back.
- The hash seed comes from VIP:port, so both directors compute the same mapping: connections
  survive a director failover as long as both see the same healthy set.
- The source MAC becomes the director's own, as the kernel's IPVS DR does: a forwarded frame
  still carrying the client's MAC would teach the switch that the client sits behind the
  director, and the realserver's direct replies would then be sent to the director.
- Only frames addressed to this director's own MAC (``meta pkttype host``) are touched. The
  table is installed on backup directors too; they receive no VIP traffic because only the
  VRRP master answers ARP for the VIP, and unknown-unicast floods from the bridge are not
  ``host`` frames, so nothing is duplicated.
- rr, wrr, lc and wlc all become the connection hash: without connection state there is no
  least-connection count. Weights scale the slot share.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from ..spec import LvsService

TABLE = "stackha_lvs"
FAMILY = "netdev"
SLOTS = 120  # divisible by 1..6, 8, 10, 12: an even share for the usual realserver counts
PRIORITY = -500
_DEVICE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Backend:
    """A realserver of one service, in the order the spec lists it."""

    name: str
    address: str
    weight: int = 1


@dataclass(frozen=True)
class ForwardingInput:
    """One virtual service as the director sees it right now."""

    service: LvsService
    backends: tuple[Backend, ...]
    healthy: frozenset[str]


def service_key(service: LvsService) -> str:
    return f"{service.vip}:{service.port}"


def service_seed(service: LvsService) -> int:
    """The same on every director, so all of them pick the same realserver."""
    return zlib.crc32(f"stackha-lvs {service_key(service)}".encode())


def source_hash_only(service: LvsService) -> bool:
    return service.persistence_timeout > 0 or service.scheduler == "sh"


def _score(slot: int, backend: Backend) -> float:
    # Weighted rendezvous hashing: uniform u in (0, 1) from a stable hash, score w / -ln(u).
    u = (zlib.crc32(f"{slot}/{backend.name}".encode()) + 1) / (2**32 + 2)
    return backend.weight / -math.log(u)


def slot_owners(backends: Sequence[Backend], available: Collection[str],
                slots: int = SLOTS) -> list[str]:
    """Name of the realserver behind each slot; empty when none is available."""
    ring = [b.name for b in backends for _ in range(max(0, b.weight))]
    live = [b for b in backends if b.name in available and b.weight > 0]
    if not ring or not live:
        return []
    owners = []
    for slot in range(slots):
        base = ring[slot % len(ring)]
        owners.append(base if base in available else
                      max(live, key=lambda b, s=slot: _score(s, b)).name)
    return owners


def _hash_expression(service: LvsService, slots: int) -> str:
    if source_hash_only(service):
        fields = "ip saddr"
    else:
        fields = "ip saddr . tcp sport . ip daddr . tcp dport"
    return f"jhash {fields} mod {slots} seed 0x{service_seed(service):08x}"


def chain_name(device: str) -> str:
    return "ingress_" + re.sub(r"[^A-Za-z0-9_]", "_", device)


def _check_inputs(device: str, own_mac: str, macs: Mapping[str, str]) -> None:
    if not _DEVICE.match(device):
        raise ValueError(f"interface {device!r}: not a valid interface name")
    if not _MAC.match(own_mac):
        raise ValueError(f"interface {device}: MAC {own_mac!r} is not aa:bb:cc:dd:ee:ff")
    for name, mac in macs.items():
        if not _MAC.match(mac):
            raise ValueError(f"realserver {name}: MAC {mac!r} is not aa:bb:cc:dd:ee:ff")


def service_rule(item: ForwardingInput, macs: Mapping[str, str], device: str, own_mac: str,
                 slots: int = SLOTS) -> str | None:
    """The forwarding rule for one service, or None when no realserver can take traffic."""
    available = {name for name in item.healthy if name in macs}
    owners = slot_owners(item.backends, available, slots)
    if not owners:
        return None
    service = item.service
    elements = ", ".join(f"{slot} : {macs[name]}" for slot, name in enumerate(owners))
    return (f"meta pkttype host ip daddr {service.vip} tcp dport {service.port} counter "
            f"ether saddr set {own_mac} "
            f"ether daddr set {_hash_expression(service, slots)} map {{ {elements} }} "
            f'fwd to "{device}" comment "stackha {service_key(service)}"')


def render_removal() -> str:
    """Deletes the table if it exists, in a form ``nft -f`` accepts either way."""
    return f"add table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n"


def render_ruleset(device: str, own_mac: str, items: Sequence[ForwardingInput],
                   macs: Mapping[str, str], slots: int = SLOTS) -> str:
    """The whole table, replacing any previous one in the same ``nft -f`` transaction."""
    macs = {name: mac.lower() for name, mac in macs.items()}
    own_mac = own_mac.lower()
    _check_inputs(device, own_mac, macs)
    lines = [
        "# stackha LVS-DR forwarding (nftables engine). Do not edit: the agent replaces this",
        "# table in one transaction whenever the healthy realserver set changes.",
        render_removal().rstrip("\n"),
        f"table {FAMILY} {TABLE} {{",
        f"    chain {chain_name(device)} {{",
        f'        type filter hook ingress device "{device}" priority {PRIORITY}; '
        "policy accept;",
    ]
    for item in items:
        rule = service_rule(item, macs, device, own_mac, slots)
        if rule is None:
            lines.append(f"        # {service_key(item.service)}: no healthy realserver, "
                         "packets go to the local stack")
        else:
            lines.append(f"        {rule}")
    lines += ["    }", "}"]
    return "\n".join(lines) + "\n"
