"""What an agent reports about its node, as an immutable value read back tolerantly."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

# ZooKeeper drops the session of a client writing a znode near 1 MiB (jute.maxbuffer), so a
# status must stay far below it whatever an agent reports: an 820 KB version whose every path
# is refused made a 1.7 MB last_error. A real status is under 1 KB; a refusal naming a few
# files about 300 bytes each, so 2 KB per text keeps the first reasons readable.
MAX_TEXT_BYTES = 2048
# Entries of roles, vrrp, health and vrid_conflicts: 64 is far above any node's VRRP groups
# and health checks, and one entry's text is capped at 256 bytes.
MAX_ENTRIES = 64
MAX_ENTRY_BYTES = 256
MAX_STATUS_BYTES = 16_384
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def bounded_text(value: str, limit: int = MAX_TEXT_BYTES) -> str:
    """``value`` as one line of at most about ``limit`` UTF-8 bytes, saying what was cut."""
    line = _CONTROL.sub(" ", value)
    data = line.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return data.decode()
    # The marker counts towards the limit, so that a bounded text read back stays as it is.
    keep = max(0, limit - 32)
    head = data[:keep].decode("utf-8", errors="ignore")
    return f"{head}… ({len(data) - len(head.encode())} bytes cut)"


def _bounded_entries(values: tuple[str, ...], limit: int) -> tuple[str, ...]:
    return tuple(bounded_text(v, MAX_ENTRY_BYTES) for v in values[:limit])


def _bounded_map(values: Mapping[str, str], limit: int) -> Mapping[str, str]:
    items = list(values.items())[:limit]
    return MappingProxyType({bounded_text(k, MAX_ENTRY_BYTES): bounded_text(v, MAX_ENTRY_BYTES)
                             for k, v in items})


@dataclass(frozen=True)
class NodeStatus:
    node: str
    roles: tuple[str, ...] = ()
    applied_version: int | None = None
    seen_version: int | None = None
    # The last version this node refused or rolled back: nodes waiting on it as canary read it.
    rejected_version: int | None = None
    last_error: str = ""
    last_error_time: str = ""
    vrrp: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # When this agent saw each group's state last change (its heartbeat's format): a peer's
    # MASTER claim made before this node took over is judged by it (stackha.model.cluster).
    vrrp_since: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    health: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    heartbeat: str = ""
    # Seconds between this agent's heartbeats: readers judge the heartbeat's age against it
    # (None: an agent too old to say, readers assume the default).
    heartbeat_interval: float | None = None
    agent_version: str = ""
    zookeeper: str = ""
    vrid_conflicts: tuple[str, ...] = ()
    # This agent reports rejected_version, so it can be a version's canary (stackha.model.rollout).
    canary_capable: bool = False
    # Maintenance (stackha maintenance NODE on): "" when off, else where the agent is with it
    # ("draining (N connections)", "drained", "drain timed out (N connections left)").
    maintenance: str = ""
    maintenance_reason: str = ""

    def __post_init__(self) -> None:
        # Every way a status is made (the agent's replace(), parse_status) passes here, so no
        # status in memory or in the store holds an unbounded text.
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, str):
                bounded: Any = bounded_text(value)
            elif f.name in ("roles", "vrid_conflicts"):
                bounded = _bounded_entries(tuple(value), MAX_ENTRIES)
            elif f.name in ("vrrp", "vrrp_since", "health"):
                bounded = _bounded_map(value, MAX_ENTRIES)
            else:
                continue
            if bounded != value:
                object.__setattr__(self, f.name, bounded)

    def to_json(self) -> bytes:
        """At most MAX_STATUS_BYTES: entries are dropped, then texts shortened, until it fits."""
        entries = MAX_ENTRIES
        text = MAX_TEXT_BYTES
        while True:
            payload = self._json(entries, text)
            if len(payload) <= MAX_STATUS_BYTES:
                return payload
            if entries > 0:
                entries //= 2
            else:
                text //= 2

    def _json(self, entries: int, text: int) -> bytes:
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = bounded_text(value, text) if isinstance(value, str) else value
        data["roles"] = list(self.roles[:entries])
        data["vrrp"] = dict(list(self.vrrp.items())[:entries])
        data["vrrp_since"] = dict(list(self.vrrp_since.items())[:entries])
        data["health"] = dict(list(self.health.items())[:entries])
        data["vrid_conflicts"] = list(self.vrid_conflicts[:entries])
        return json.dumps(data, sort_keys=True, ensure_ascii=False).encode()

    @property
    def healthy(self) -> bool:
        return all(v == "ok" for v in self.health.values()) and not self.last_error


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def interval_or_none(value: Any) -> float | None:
    # A nonsense interval would make a dead node look fresh (or a live one stale): ignored.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < 86_400 else None


def _str_map(value: Any) -> Mapping[str, str]:
    if not isinstance(value, dict):
        return MappingProxyType({})
    return MappingProxyType({str(k): str(v) for k, v in value.items()})


def parse_status(node: str, data: bytes | None) -> NodeStatus | None:
    """Status as read from the store; malformed fields become empty rather than crash."""
    if not data:
        return None
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return NodeStatus(node=node, last_error="status unreadable (not JSON)")
    if not isinstance(raw, dict):
        return NodeStatus(node=node, last_error="status unreadable (not an object)")
    roles = raw.get("roles")
    conflicts = raw.get("vrid_conflicts")
    return NodeStatus(
        node=node,
        roles=tuple(str(r) for r in roles) if isinstance(roles, list) else (),
        applied_version=_int_or_none(raw.get("applied_version")),
        seen_version=_int_or_none(raw.get("seen_version")),
        rejected_version=_int_or_none(raw.get("rejected_version")),
        last_error=str(raw.get("last_error") or ""),
        last_error_time=str(raw.get("last_error_time") or ""),
        vrrp=_str_map(raw.get("vrrp")),
        vrrp_since=_str_map(raw.get("vrrp_since")),
        health=_str_map(raw.get("health")),
        heartbeat=str(raw.get("heartbeat") or ""),
        heartbeat_interval=interval_or_none(raw.get("heartbeat_interval")),
        agent_version=str(raw.get("agent_version") or ""),
        zookeeper=str(raw.get("zookeeper") or ""),
        vrid_conflicts=tuple(str(c) for c in conflicts) if isinstance(conflicts, list) else (),
        canary_capable=raw.get("canary_capable") is True,
        maintenance=str(raw.get("maintenance") or ""),
        maintenance_reason=str(raw.get("maintenance_reason") or ""),
    )
