"""The agent's Prometheus metrics, exported over HTTP when a port is given."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

APPLIED_VERSION = Gauge("stackha_applied_version", "Configuration version applied on this node")
APPLY_FAILURES = Counter("stackha_apply_failures", "Versions rejected or rolled back",
                         ["reason"])
RELOAD_SECONDS = Histogram("stackha_reload_seconds", "Write, reload and health check time",
                           ["role"])
ZK_CONNECTED = Gauge("stackha_zookeeper_connected", "1 while the ZooKeeper session is up")
VRRP_STATE = Gauge("stackha_vrrp_master", "1 while this node is VRRP master of the group",
                   ["group"])


def serve(port: int, address: str = "127.0.0.1") -> None:
    start_http_server(port, addr=address)
VRID_CONFLICTS = Counter("stackha_vrid_conflicts", "Adverts on our VRIDs from routers outside "
                         "the spec")
SPLIT_BRAIN = Gauge("stackha_vrrp_split_brain", "1 while several nodes report MASTER of the group",
                    ["group"])
HEALTH_OK = Gauge("stackha_health_check_ok", "1 while the agent's health check passes (after "
                  "fall/rise)", ["check"])
