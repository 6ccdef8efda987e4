"""The agent's Prometheus metrics, served on /metrics by stackha.agent.endpoints.

prometheus_client costs about 4.5 MiB resident: it is loaded only when ``enable`` is called
(``--metrics-port``), before the agent starts; until then every metric is a no-op.
"""

from __future__ import annotations

from typing import Any


class _Off:
    """A metric nobody exports: accepts every update and keeps nothing."""

    def labels(self, *_args: Any, **_kwargs: Any) -> _Off:
        return self

    def set(self, _value: float) -> None:
        pass

    def inc(self, _amount: float = 1) -> None:
        pass

    def observe(self, _value: float) -> None:
        pass


_OFF = _Off()
APPLIED_VERSION: Any = _OFF
APPLY_FAILURES: Any = _OFF
RELOAD_SECONDS: Any = _OFF
ZK_CONNECTED: Any = _OFF
VRRP_STATE: Any = _OFF
VRID_CONFLICTS: Any = _OFF
SPLIT_BRAIN: Any = _OFF
HEALTH_OK: Any = _OFF


def _create() -> None:
    global APPLIED_VERSION, APPLY_FAILURES, RELOAD_SECONDS, ZK_CONNECTED, VRRP_STATE
    global VRID_CONFLICTS, SPLIT_BRAIN, HEALTH_OK
    from prometheus_client import Counter, Gauge, Histogram

    APPLIED_VERSION = Gauge("stackha_applied_version",
                            "Configuration version applied on this node")
    APPLY_FAILURES = Counter("stackha_apply_failures", "Versions rejected or rolled back",
                             ["reason"])
    RELOAD_SECONDS = Histogram("stackha_reload_seconds", "Write, reload and health check time",
                               ["role"])
    ZK_CONNECTED = Gauge("stackha_zookeeper_connected", "1 while the ZooKeeper session is up")
    VRRP_STATE = Gauge("stackha_vrrp_master", "1 while this node is VRRP master of the group",
                       ["group"])
    VRID_CONFLICTS = Counter("stackha_vrid_conflicts", "Adverts on our VRIDs from routers "
                             "outside the spec")
    SPLIT_BRAIN = Gauge("stackha_vrrp_split_brain",
                        "1 while several nodes report MASTER of the group", ["group"])
    HEALTH_OK = Gauge("stackha_health_check_ok",
                      "1 while the agent's health check passes (after fall/rise)", ["check"])


def enable() -> None:
    """Make the metrics real (``--metrics-port``); stackha.agent.endpoints serves them."""
    if APPLIED_VERSION is _OFF:
        _create()
