"""The agent's Prometheus metrics (served on /metrics by stackha.agent.endpoints)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

APPLIED_VERSION = Gauge("stackha_applied_version", "Configuration version applied on this node")
APPLY_FAILURES = Counter("stackha_apply_failures", "Versions rejected or rolled back",
                         ["reason"])
RELOAD_SECONDS = Histogram("stackha_reload_seconds", "Write, reload and health check time",
                           ["role"])
ZK_CONNECTED = Gauge("stackha_zookeeper_connected", "1 while the ZooKeeper session is up")
VRRP_STATE = Gauge("stackha_vrrp_master", "1 while this node is VRRP master of the group",
                   ["group"])

VRID_CONFLICTS = Counter("stackha_vrid_conflicts", "Adverts on our VRIDs from routers outside "
                         "the spec")
SPLIT_BRAIN = Gauge("stackha_vrrp_split_brain", "1 while several nodes report MASTER of the group",
                    ["group"])
