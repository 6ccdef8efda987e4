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
- The hash selects one of a fixed number of slots, and slots map to MACs. Each realserver's
  share of the slots is proportional to its weight (Sainte-Lague apportionment, exact when
  the shares divide 120; a weight too small for one slot in 120 gets none). With equal
  weights the slots go round-robin in spec order; with unequal ones, a realserver above its
  round-robin count takes the surplus of those below it, each giving up the slots where it
  scores lowest and taking those where it scores highest (the rendezvous scores below). A
  slot whose owner is down goes to the healthy realserver that scores highest for that slot
  (weighted rendezvous hashing). So a failure moves only the failed realserver's
  connections and a return moves only its own slots back; changing one realserver's weight
  when the others are equal moves only the slots it gains or gives up (with unequal weights
  a few more can move: no stateless table can be both exact and minimal there).
- Weights follow IPVS: ``wrr``, ``wlc`` and ``sh`` share by weight, ``rr`` and ``lc`` ignore
  weights except 0. Weight 0 (quiesced) gets no slot, for every scheduler: a realserver of
  weight 0 still takes the connections already hashed to it in IPVS, but without connection
  state this engine cannot tell them apart, so they move with its slots.
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
  least-connection count.
"""

from __future__ import annotations

import functools
import heapq
import math
import re
import zlib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace

from stackha.model.spec import WEIGHTED_SCHEDULERS, LvsService

TABLE = "stackha_lvs"
FAMILY = "netdev"
SLOTS = 120  # divisible by 1..6, 8, 10, 12: an even share for the usual realserver counts
PRIORITY = -500
_DEVICE = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


@dataclass(frozen=True)
class Backend:
    """A realserver of one service, in the order the spec lists it, with its spec weight."""

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


def hashing_weight(service: LvsService, weight: int) -> int:
    """The weight the slot table uses: as in IPVS, rr and lc ignore any weight but 0."""
    return weight if service.scheduler in WEIGHTED_SCHEDULERS else min(weight, 1)


def _unit(slot: int, name: str) -> float:
    """A stable uniform number in (0, 1) per slot and realserver."""
    return (zlib.crc32(f"{slot}/{name}".encode()) + 1) / (2**32 + 2)


def _score(slot: int, backend: Backend) -> float:
    # Weighted rendezvous hashing: score w / -ln(u), the highest wins.
    return backend.weight / -math.log(_unit(slot, backend.name))


def slot_shares(weights: Sequence[int], slots: int = SLOTS) -> list[int]:
    """Slots per weight, by highest averages w / (2k + 1) (Sainte-Lague), ties to the first
    listed. Raising one weight never gives any other realserver more slots."""
    # The averages are floats, yet compared exactly: two distinct w / (2k + 1) with w <= 65535
    # and 2k + 1 <= 2 * SLOTS + 1 differ by at least 1 / 241**2, relatively over 1e-10, far
    # above a float's 1e-16; equal ones divide to the same float (division rounds
    # correctly). fractions.Fraction said the same and cost the director 0.5 MiB (numbers
    # and decimal with it).
    counts = [0] * len(weights)
    heap = [(-float(w), i) for i, w in enumerate(weights) if w > 0]
    heapq.heapify(heap)
    for _ in range(slots if heap else 0):
        _, index = heapq.heappop(heap)
        counts[index] += 1
        heapq.heappush(heap, (-weights[index] / (2 * counts[index] + 1), index))
    return counts


@functools.lru_cache(maxsize=256)
def _weighted_table(names: tuple[str, ...], weights: tuple[int, ...],
                    slots: int) -> tuple[int, ...]:
    """Index of the realserver owning each slot when all are up; empty when no weight is
    positive. Round-robin in spec order, then surplus slots move to the realservers whose
    share exceeds their round-robin count (see the module notes)."""
    shares = slot_shares(weights, slots)
    if not any(shares):
        return ()
    count = len(names)
    table = [slot % count for slot in range(slots)]
    round_robin = [len(range(index, slots, count)) for index in range(count)]
    surplus: list[int] = []
    for index, name in enumerate(names):
        mine = sorted(range(index, slots, count), key=lambda s, n=name: (_unit(s, n), s))
        surplus += mine[:max(0, round_robin[index] - shares[index])]
    wanting = {index: shares[index] - round_robin[index] for index in range(count)
               if shares[index] > round_robin[index]}
    offers = sorted(((_unit(slot, names[index]), slot, index)
                     for slot in surplus for index in wanting), reverse=True)
    moved: set[int] = set()
    for _, slot, index in offers:
        if slot not in moved and wanting[index] > 0:
            table[slot] = index
            wanting[index] -= 1
            moved.add(slot)
    return tuple(table)


def slot_owners(backends: Sequence[Backend], available: Collection[str],
                slots: int = SLOTS) -> list[str]:
    """Name of the realserver behind each slot; empty when none is available. Weights are
    taken as given (``hashing_weight`` applies the scheduler's rule)."""
    table = _weighted_table(tuple(b.name for b in backends),
                            tuple(max(0, b.weight) for b in backends), slots)
    live = [b for b in backends if b.name in available and b.weight > 0]
    if not table or not live:
        return []
    owners = []
    for slot, index in enumerate(table):
        name = backends[index].name
        owners.append(name if name in available else
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
    # fullmatch: '$' in match() also accepts a trailing newline, which nft reads as a new line.
    if not _DEVICE.fullmatch(device):
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
    backends = [replace(b, weight=hashing_weight(item.service, b.weight)) for b in item.backends]
    owners = slot_owners(backends, available, slots)
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
