"""What an agent reports about its node, as an immutable value read back tolerantly."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any


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
    health: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    heartbeat: str = ""
    agent_version: str = ""
    zookeeper: str = ""
    vrid_conflicts: tuple[str, ...] = ()
    # This agent reports rejected_version, so it can be a version's canary (stackha.model.rollout).
    canary_capable: bool = False

    def to_json(self) -> bytes:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["roles"] = list(self.roles)
        data["vrrp"] = dict(self.vrrp)
        data["health"] = dict(self.health)
        data["vrid_conflicts"] = list(self.vrid_conflicts)
        return json.dumps(data, sort_keys=True).encode()

    @property
    def healthy(self) -> bool:
        return all(v == "ok" for v in self.health.values()) and not self.last_error


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


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
    except (UnicodeDecodeError, ValueError):
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
        health=_str_map(raw.get("health")),
        heartbeat=str(raw.get("heartbeat") or ""),
        agent_version=str(raw.get("agent_version") or ""),
        zookeeper=str(raw.get("zookeeper") or ""),
        vrid_conflicts=tuple(str(c) for c in conflicts) if isinstance(conflicts, list) else (),
        canary_capable=raw.get("canary_capable") is True,
    )
