"""Pure: ``stackha lvs status`` from what the kernel holds, in the spirit of ``ipvsadm -L -n``.

For nftables the live table (``nft -j list table``) says which MAC takes how many hash slots
(the slots column) and how many packets were forwarded; the director's state file adds names,
addresses, spec weights and health. For IPVS, ``/proc/net/ip_vs`` is read as is (its weight is
the kernel's: keepalived sets it from the spec and removes a realserver that fails its check).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Real:
    address: str
    port: int
    weight: int | None  # None: not known (a MAC in the live table the state file lacks)
    health: str = "?"
    name: str = "?"
    mac: str = ""
    forward: str = "Route"
    slots: int | None = None  # nftables: hash slots in the live table; None for IPVS


@dataclass(frozen=True)
class Virtual:
    engine: str
    vip: str
    port: int
    scheduler: str
    protocol: str = "TCP"
    detail: str = ""
    reals: tuple[Real, ...] = field(default_factory=tuple)
    panic: bool = False  # nftables: the director forwards to every realserver, healthy or not


@dataclass(frozen=True)
class LiveRule:
    vip: str
    port: int
    device: str
    hashing: str
    packets: int
    slots: dict[str, int]


def _jhash(expr: Any) -> dict[str, Any] | None:
    """Find the jhash of ``ether daddr set jhash ... map {...}`` in a rule's expressions."""
    for item in expr:
        value = item.get("mangle", {}).get("value") if isinstance(item, dict) else None
        mapping = value.get("map") if isinstance(value, dict) else None
        if isinstance(mapping, dict) and "jhash" in mapping.get("key", {}):
            return mapping
    return None


def parse_live_table(document: dict[str, Any] | None) -> list[LiveRule]:
    rules = []
    for entry in (document or {}).get("nftables", []):
        rule = entry.get("rule") if isinstance(entry, dict) else None
        comment = (rule or {}).get("comment", "")
        if not comment.startswith("stackha "):
            continue
        vip, _, port = comment.split(" ", 1)[1].rpartition(":")
        expr = rule.get("expr", [])
        mapping = _jhash(expr)
        if mapping is None or not port.isdigit():
            continue
        hashed = mapping["key"]["jhash"].get("expr", {})
        hashing = "connection" if "concat" in hashed else "source"
        slots = Counter(str(pair[1]).lower() for pair in mapping.get("data", {}).get("set", []))
        packets = next((e["counter"].get("packets", 0) for e in expr
                        if isinstance(e, dict) and "counter" in e), 0)
        device = next((e["fwd"].get("dev", "") for e in expr
                       if isinstance(e, dict) and "fwd" in e), "")
        rules.append(LiveRule(vip, int(port), str(device), hashing, int(packets), dict(slots)))
    return rules


def nft_view(rules: list[LiveRule], state: dict[str, Any] | None) -> list[Virtual]:
    """Live rules joined with the director's state file; services without a live rule (no
    healthy realserver) still show, with 0 slots everywhere."""
    by_key = {(r.vip, r.port): r for r in rules}
    views = []
    seen = set()
    for service in (state or {}).get("services", []):
        key = (service["vip"], int(service["port"]))
        seen.add(key)
        live = by_key.get(key)
        slots = dict(live.slots) if live else {}
        reals = []
        for row in service.get("realservers", []):
            mac = (row.get("mac") or "").lower()
            health = "up" if row.get("healthy") else f"down ({row.get('reason') or '?'})"
            reals.append(Real(row["address"], key[1], row.get("weight"), health, row["name"],
                              mac, slots=slots.pop(mac, 0) if mac else 0))
        reals += [Real("?", key[1], None, "?", "?", mac, slots=count)
                  for mac, count in slots.items()]
        views.append(_nft_virtual(key, live, reals, _panic_note(service)))
    for key, live in by_key.items():
        if key not in seen:
            reals = [Real("?", key[1], None, "?", "?", mac, slots=count)
                     for mac, count in live.slots.items()]
            views.append(_nft_virtual(key, live, reals))
    return views


def _panic_note(service: dict[str, Any]) -> str:
    """The director's panic, said on the service line; "" when it trusts its checks."""
    if not service.get("panic"):
        return ""
    counted = [r for r in service.get("realservers", []) if (r.get("weight") or 0) > 0]
    healthy = sum(1 for r in counted if r.get("healthy"))
    return f"PANIC: {healthy} of {len(counted)} realservers healthy, forwarding to all"


def _nft_virtual(key: tuple[str, int], live: LiveRule | None, reals: list[Real],
                 panic: str = "") -> Virtual:
    if live is None:
        detail = "not forwarding (no healthy realserver)"
        scheduler = "-"
    else:
        detail = f"dev {live.device} packets {live.packets}"
        scheduler = "hash(" + ("saddr" if live.hashing == "source" else "conn") + ")"
    detail = f"{detail} {panic}".rstrip()
    return Virtual("nftables", key[0], key[1], scheduler, detail=detail, reals=tuple(reals),
                   panic=bool(panic))


def _hex_endpoint(text: str) -> tuple[str, int]:
    address, _, port = text.partition(":")
    return str(ipaddress.IPv4Address(int(address, 16))), int(port, 16)


def parse_proc_ip_vs(text: str) -> list[Virtual]:
    """``/proc/net/ip_vs``: hex ``ADDR:PORT`` per virtual service, ``->`` lines per real."""
    views: list[Virtual] = []
    current: dict[str, Any] | None = None
    reals: list[Real] = []

    def close() -> None:
        if current is not None:
            views.append(Virtual("ipvs", reals=tuple(reals), **current))

    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("TCP", "UDP", "SCTP") and ":" in parts[1]:
            close()
            vip, port = _hex_endpoint(parts[1])
            current = {"vip": vip, "port": port, "protocol": parts[0], "scheduler": parts[2],
                       "detail": " ".join(parts[3:])}
            reals = []
        elif len(parts) >= 4 and parts[0] == "->" and current is not None:
            try:
                address, port = _hex_endpoint(parts[1])
            except ValueError:
                continue  # the column header line
            # keepalived removes a realserver that fails its check: a listed one is up, and
            # weight 0 means quiesced (the spec's weight 0).
            weight = int(parts[3])
            reals.append(Real(address, port, weight, "up" if weight else "quiesced",
                              forward=parts[2]))
    close()
    return views


def render_table(views: list[Virtual]) -> str:
    lines = ["Prot LocalAddress:Port Scheduler Flags",
             "  -> RemoteAddress:Port           Forward Weight Slots Health           Name"
             "      MAC"]
    for view in views:
        lines.append(f"{view.protocol:<4} {view.vip}:{view.port} {view.scheduler} "
                     f"[{view.engine}] {view.detail}".rstrip())
        for real in view.reals:
            endpoint = f"{real.address}:{real.port}"
            weight = "?" if real.weight is None else real.weight
            slots = "-" if real.slots is None else real.slots
            lines.append(f"  -> {endpoint:<27} {real.forward:<7} {weight:<6} {slots:<5} "
                         f"{real.health:<16} {real.name:<9} {real.mac}".rstrip())
    return "\n".join(lines) + "\n"


def as_json(views: list[Virtual]) -> list[dict[str, Any]]:
    return [{"engine": v.engine, "protocol": v.protocol, "vip": v.vip, "port": v.port,
             "scheduler": v.scheduler, "detail": v.detail, "panic": v.panic,
             "realservers": [r.__dict__ for r in v.reals]} for v in views]
