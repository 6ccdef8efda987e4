"""The stack spec: what the operator describes once, as immutable value objects.

``parse_spec`` is the one way in. It never raises on bad data: it returns every problem it
found, each naming the file, line and field, and a spec only when there were no errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackha.model.problems import WARNING, Problem, errors
from stackha.model.yamlsource import YamlDocument, child_path, load_yaml

ROLES = ("nginx", "director", "mycat")
SCHEDULERS = ("rr", "wrr", "lc", "wlc", "sh")
CHECK_NAMES = ("nginx", "mycat")
LVS_ENGINES = ("auto", "ipvs", "nftables")
# IPVS realserver weights: 0 quiesces (no new connections), 65535 is ipvsadm's maximum.
DEFAULT_WEIGHT = 1
MAX_WEIGHT = 65535
# The schedulers that share connections by weight; rr and lc only skip weight-0 realservers.
WEIGHTED_SCHEDULERS = ("wrr", "wlc", "sh")

# VRRPv3 advert interval when the spec gives none. A backup declares the master dead after
# 3 adverts plus a skew of (256 - priority)/256 adverts, and after a graceful stop (priority-0
# advert) after the skew alone. 0.03 s is the largest centisecond value that keeps both under
# issue 4's targets with margin for a backup at priority 100: 0.108 s of master-down time
# (measured client outage about 0.1 s on a hard kill) and an 18 ms skew (about 0.03 s on a
# graceful stop); 0.04 s already puts the median hard-kill outage near 0.14 s. That same
# master-down time is the longest stall the backup tolerates before taking over, so it cannot
# grow without missing the target; fewer down-timer adverts with longer intervals would not
# help either (a stall delays every advert, and the skew grows). What keeps such short timers
# from flapping is keepalived's VRRP process running realtime (render.py): bench/failover.py
# saturates every CPU and counts spurious transitions.
DEFAULT_ADVERT_INT_V3 = 0.03
DEFAULT_ADVERT_INT_V2 = 1.0


@dataclass(frozen=True)
class Credential:
    """Where a ``user:password`` digest credential is read from; the secret itself never is."""

    env: str | None = None
    file: str | None = None


@dataclass(frozen=True)
class ZookeeperTls:
    """TLS to ZooKeeper: paths of PEM files on the node (never their content), so the spec
    that is published names no secret. ``cert``/``key`` are the client certificate, needed
    when the servers require one (``ssl.clientAuth=need``)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    verify_hostname: bool = True


@dataclass(frozen=True)
class ZookeeperSpec:
    hosts: str
    chroot: str = "/stackha"
    session_timeout: float = 10.0
    coordinator_auth: Credential | None = None
    agent_auth: Credential | None = None
    tls: ZookeeperTls | None = None


@dataclass(frozen=True)
class Node:
    name: str
    address: ipaddress.IPv4Address
    interface: str
    roles: tuple[str, ...]
    network: ipaddress.IPv4Network | None = None


@dataclass(frozen=True)
class VrrpMember:
    node: str
    priority: int
    state: str | None = None


@dataclass(frozen=True)
class VrrpGroup:
    name: str
    virtual_router_id: int
    interface: str
    vips: tuple[ipaddress.IPv4Interface, ...]
    members: tuple[VrrpMember, ...]
    preempt: bool = True
    preempt_delay: float = 0.0
    advert_int: float = DEFAULT_ADVERT_INT_V3
    version: int = 3
    checks: tuple[str, ...] = ()
    unicast_peers: bool = False
    vrrp_strict: bool = False

    def member(self, node: str) -> VrrpMember | None:
        return next((m for m in self.members if m.node == node), None)


@dataclass(frozen=True)
class HealthCheck:
    """How keepalived runs ``stackha check NAME`` and what the check probes."""

    name: str
    # Every second (keepalived 2.2.7's finest), two failures in a row: a dead nginx loses the
    # VIP within about 2 s, a hung one within about 3 s (the 1 s probe timeout), yet a
    # starved machine has to stall the check past keepalived's limit (timeout + 9 s, see
    # render.py) twice running before anything moves. fall 1 would turn one bad moment into
    # a failover; fall 3 would add a second to every real nginx failure and buy nothing the
    # slack does not already give.
    interval: int = 1
    timeout: float = 1.0
    fall: int = 2
    rise: int = 2
    weight: int = 0
    url: str = "http://127.0.0.1/"
    host: str = "127.0.0.1"
    port: int = 8066
    user: str | None = None
    manager_port: int | None = None


@dataclass(frozen=True)
class LvsService:
    """One virtual service. ``realservers`` are node names in spec order; ``weights`` holds
    their IPVS weights in the same order, or is empty when every weight is 1 (the default,
    so a plain list and an explicit weight of 1 give the same value)."""

    vip: ipaddress.IPv4Address
    port: int
    realservers: tuple[str, ...]
    scheduler: str = "rr"
    persistence_timeout: int = 0
    protocol: str = "TCP"
    engine: str = "auto"
    check: str = "tcp"
    check_interval: float = 1.0
    check_timeout: float = 1.0
    weights: tuple[int, ...] = ()
    # Issue #16, measured on a loaded 2-CPU host: with fall 1 and a full MySQL login every
    # 0.5 s, a starved checker took realservers out after one late answer and emptied the
    # pool (17.4 s of MySQL-VIP outage in one drill). Two in a row is the least that tells a
    # dead realserver from one late check; it costs one check interval per real failure.
    check_fall: int = 2
    check_rise: int = 2
    # Every check connects and reads the server greeting; every Nth also logs in and runs
    # `select 1` (check_mysql). 10 at the example's 0.5 s interval: a broken login or backend
    # is seen within 5 s, at a tenth of the login load.
    check_login_every: int = 10
    # Envoy's panic mode: below this share (percent) of healthy realservers, forward to all of
    # them as if healthy; 0 turns it off. At 50 with three realservers, one down is trusted,
    # two down at once is more likely the checker than the realservers.
    panic_threshold: int = 50

    def __post_init__(self) -> None:
        if self.weights and len(self.weights) != len(self.realservers):
            raise ValueError(f"{len(self.weights)} weights for "
                             f"{len(self.realservers)} realservers")
        if all(w == DEFAULT_WEIGHT for w in self.weights):
            object.__setattr__(self, "weights", ())

    def weight(self, name: str) -> int:
        """The weight of realserver ``name`` (KeyError when it is not one)."""
        if name not in self.realservers:
            raise KeyError(name)
        return self.weights[self.realservers.index(name)] if self.weights else DEFAULT_WEIGHT


@dataclass(frozen=True)
class MycatZookeeper:
    """MyCat's own ZooKeeper layout (loadZk=true), written by push-config when enabled.

    MyCat 1.6 reads ``/mycat/<cluster_id>`` below its zkURL; a ``root`` other than ``/mycat``
    must end in ``/mycat`` and its head becomes the chroot of the zkURL given to MyCat.
    ``readers``: addresses or networks that may read the layout without credentials (MyCat
    cannot authenticate to ZooKeeper); empty means the addresses of the mycat nodes.
    ``hosts``: MyCat's own connect string when it differs from ``zookeeper.hosts``: MyCat
    1.6's ZooKeeper client has no TLS, so with ``zookeeper.tls`` it needs a plain port.
    """

    enabled: bool = False
    cluster_id: str = "mycat-cluster-1"
    root: str = "/mycat"
    readers: tuple[ipaddress.IPv4Network, ...] = ()
    hosts: str | None = None

    @property
    def base_path(self) -> str:
        return f"{self.root}/{self.cluster_id}"

    @property
    def chroot(self) -> str:
        return self.root[: -len("/mycat")]


# The MyCat releases whose loader stackha's validator restates (stackha.mycat.validate keeps
# the grammar of each; the model layer only names them).
MYCAT_VERSIONS = ("1.6.6.1", "1.6.7")


@dataclass(frozen=True)
class MycatSpec:
    """``mycat:``: which MyCat release the nodes run, so validation follows its grammar
    (1.6.6.1's validating parser refuses the attributes 1.6.7 added)."""

    version: str = MYCAT_VERSIONS[0]


@dataclass(frozen=True)
class StackSpec:
    cluster: str
    zookeeper: ZookeeperSpec
    nodes: tuple[Node, ...]
    vrrp_groups: tuple[VrrpGroup, ...] = ()
    lvs_services: tuple[LvsService, ...] = ()
    health_checks: tuple[HealthCheck, ...] = field(default_factory=tuple)
    mycat_zookeeper: MycatZookeeper | None = None
    mycat: MycatSpec = field(default_factory=MycatSpec)

    def mycat_nodes(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes if "mycat" in n.roles)

    def node(self, name: str) -> Node | None:
        return next((n for n in self.nodes if n.name == name), None)

    def health_check(self, name: str) -> HealthCheck:
        return next((c for c in self.health_checks if c.name == name), HealthCheck(name))

    def groups_of(self, node: str) -> tuple[VrrpGroup, ...]:
        return tuple(g for g in self.vrrp_groups if g.member(node) is not None)


class _Reader:
    """Typed access to a YAML document that records problems instead of raising."""

    def __init__(self, doc: YamlDocument):
        self.doc = doc
        self.problems: list[Problem] = []

    def error(self, path: str, reason: str) -> None:
        self.problems.append(self.doc.problem(path, reason))

    def warn(self, path: str, reason: str) -> None:
        self.problems.append(self.doc.problem(path, reason, WARNING))

    def mapping(self, value: Any, path: str, required: tuple[str, ...],
                optional: tuple[str, ...]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, got {_type_name(value)}")
            return None
        for key in value:
            if str(key) not in required + optional:
                self.error(child_path(path, str(key)), "unknown key")
        for key in required:
            if key not in value:
                self.error(path, f"missing required key '{key}'")
        return value

    def typed(self, data: dict[str, Any], key: str, path: str, kind: type | tuple[type, ...],
              default: Any = None, check: Callable[[Any], str | None] | None = None) -> Any:
        if key not in data:
            return default
        value = data[key]
        sub = child_path(path, key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # YAML booleans are ints in Python; a number field must not accept `true`.
        if isinstance(value, bool) and bool not in kinds:
            self.error(sub, f"must be {_kind_name(kinds)}, got boolean")
            return default
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds):
            self.error(sub, f"must be {_kind_name(kinds)}, got {_type_name(value)}")
            return default
        if check is not None:
            reason = check(value)
            if reason:
                self.error(sub, reason)
                return default
        return value

    def string_list(self, data: dict[str, Any], key: str, path: str) -> tuple[str, ...]:
        value = data.get(key, [])
        sub = child_path(path, key)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.error(sub, "must be a list of strings")
            return ()
        return tuple(value)

    def sequence(self, value: Any, path: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list, got {_type_name(value)}")
            return []
        return value


def _type_name(value: Any) -> str:
    names = {dict: "mapping", list: "list", str: "string", int: "integer", float: "number",
             bool: "boolean", type(None): "nothing"}
    return names.get(type(value), type(value).__name__)


def _kind_name(kinds: tuple[type, ...]) -> str:
    return " or ".join(_type_name(k()) if k is not type(None) else "nothing" for k in kinds)


def _between(low: float, high: float) -> Callable[[Any], str | None]:
    return lambda v: None if low <= v <= high else f"must be between {low:g} and {high:g}"


def _parse_credential(r: _Reader, value: Any, path: str) -> Credential | None:
    data = r.mapping(value, path, (), ("env", "file"))
    if data is None:
        return None
    if ("env" in data) == ("file" in data):
        r.error(path, "give exactly one of 'env' or 'file'")
        return None
    return Credential(env=r.typed(data, "env", path, str), file=r.typed(data, "file", path, str))


def _node_path(value: str) -> str | None:
    if not value.startswith("/"):
        return "must be an absolute path on the node"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "must not contain control characters"
    return None


def _parse_tls(r: _Reader, value: Any, path: str) -> ZookeeperTls | None:
    data = r.mapping(value, path, ("ca",), ("cert", "key", "verify_hostname"))
    if data is None:
        return None
    ca = r.typed(data, "ca", path, str, None, _node_path)
    cert = r.typed(data, "cert", path, str, None, _node_path)
    key = r.typed(data, "key", path, str, None, _node_path)
    verify = r.typed(data, "verify_hostname", path, bool, True)
    if ("cert" in data) != ("key" in data):
        r.error(path, "give both cert and key (the client certificate), or neither")
        return None
    if ca is None:
        return None
    if not verify:
        r.warn(f"{path}.verify_hostname", "off: any certificate the CA signed is accepted "
                                          "for every ZooKeeper host")
    return ZookeeperTls(ca, cert, key, verify)


def _parse_zookeeper(r: _Reader, value: Any) -> ZookeeperSpec | None:
    path = "zookeeper"
    data = r.mapping(value, path, ("hosts",),
                     ("chroot", "session_timeout", "coordinator_auth", "agent_auth", "tls"))
    if data is None:
        return None
    hosts = r.typed(data, "hosts", path, str, "")
    chroot = r.typed(data, "chroot", path, str, "/stackha",
                     lambda v: None if v.startswith("/") and not v.endswith("/")
                     else "must start with '/' and not end with '/'")
    timeout = r.typed(data, "session_timeout", path, float, 10.0, _between(2, 600))
    coordinator = agent = None
    if "coordinator_auth" in data:
        coordinator = _parse_credential(r, data["coordinator_auth"], f"{path}.coordinator_auth")
    if "agent_auth" in data:
        agent = _parse_credential(r, data["agent_auth"], f"{path}.agent_auth")
    if (coordinator is None) != (agent is None):
        r.error(path, "give both coordinator_auth and agent_auth, or neither")
    elif coordinator is None and "coordinator_auth" not in data:
        r.warn(path, "no coordinator_auth/agent_auth: the tree gets open ACLs and anyone who "
                     "reaches ZooKeeper can read and change the configuration")
    tls = _parse_tls(r, data["tls"], f"{path}.tls") if "tls" in data else None
    return ZookeeperSpec(hosts, chroot, timeout, coordinator, agent, tls)


def _parse_node(r: _Reader, value: Any, path: str) -> Node | None:
    data = r.mapping(value, path, ("name", "address", "interface", "roles"), ())
    if data is None:
        return None
    name = r.typed(data, "name", path, str, "")
    interface = r.typed(data, "interface", path, str, "")
    roles = r.string_list(data, "roles", path)
    for index, role in enumerate(roles):
        if role not in ROLES:
            r.error(child_path(child_path(path, "roles"), index),
                    f"unknown role '{role}' (known: {', '.join(ROLES)})")
    raw_address = r.typed(data, "address", path, str, "")
    try:
        iface = ipaddress.IPv4Interface(raw_address)
    except ValueError:
        r.error(child_path(path, "address"), f"'{raw_address}' is not an IPv4 address")
        return None
    network = iface.network if "/" in raw_address else None
    return Node(name, iface.ip, interface, roles, network)


def _parse_members(r: _Reader, value: Any, path: str) -> tuple[VrrpMember, ...]:
    if not isinstance(value, dict) or not value:
        r.error(path, "must be a non-empty mapping of node name to priority")
        return ()
    members = []
    for node, setting in value.items():
        sub = child_path(path, str(node))
        state = None
        if isinstance(setting, dict):
            data = r.mapping(setting, sub, ("priority",), ("state",))
            if data is None:
                continue
            priority = r.typed(data, "priority", sub, int)
            state = r.typed(data, "state", sub, str, None,
                            lambda v: None if v in ("MASTER", "BACKUP")
                            else "must be MASTER or BACKUP")
        elif isinstance(setting, int) and not isinstance(setting, bool):
            priority = setting
        else:
            r.error(sub, "must be a priority (integer) or a mapping with 'priority'")
            continue
        if priority is None:
            continue
        if not 1 <= priority <= 254:
            r.error(sub, f"priority {priority} outside 1..254")
            continue
        members.append(VrrpMember(str(node), priority, state))
    return tuple(members)


def _parse_group(r: _Reader, value: Any, path: str) -> VrrpGroup | None:
    data = r.mapping(value, path, ("name", "virtual_router_id", "interface", "vips", "members"),
                     ("preempt", "preempt_delay", "advert_int", "version", "checks",
                      "unicast_peers", "vrrp_strict"))
    if data is None:
        return None
    name = r.typed(data, "name", path, str, "")
    vrid = r.typed(data, "virtual_router_id", path, int, None, _between(1, 255))
    interface = r.typed(data, "interface", path, str, "")
    vips = []
    before = len(r.problems)  # an empty list is an error whatever came before it
    for index, raw in enumerate(r.sequence(data.get("vips"), child_path(path, "vips"))):
        try:
            vips.append(ipaddress.IPv4Interface(str(raw)))
        except ValueError:
            r.error(child_path(child_path(path, "vips"), index), f"'{raw}' is not an IPv4 address")
    if "vips" in data and not vips and len(r.problems) == before:
        r.error(child_path(path, "vips"), "at least one VIP is needed")
    members = _parse_members(r, data.get("members"), child_path(path, "members"))
    preempt = r.typed(data, "preempt", path, bool, True)
    version = r.typed(data, "version", path, int, 3,
                      lambda v: None if v in (2, 3) else "must be 2 or 3")
    advert_int = r.typed(data, "advert_int", path, float,
                         DEFAULT_ADVERT_INT_V3 if version == 3 else DEFAULT_ADVERT_INT_V2,
                         _between(0.01, 40.95) if version == 3 else _between(1, 255))
    if version == 2 and advert_int != int(advert_int):
        r.error(child_path(path, "advert_int"), "VRRPv2 takes whole seconds only")
    checks = r.string_list(data, "checks", path)
    for index, check in enumerate(checks):
        if check not in CHECK_NAMES:
            r.error(child_path(child_path(path, "checks"), index),
                    f"unknown check '{check}' (known: {', '.join(CHECK_NAMES)})")
    if vrid is None:
        return None
    group = VrrpGroup(
        name=name, virtual_router_id=vrid, interface=interface, vips=tuple(vips),
        members=members, preempt=preempt,
        preempt_delay=r.typed(data, "preempt_delay", path, float, 0.0, _between(0, 1000)),
        advert_int=advert_int, version=version, checks=checks,
        unicast_peers=r.typed(data, "unicast_peers", path, bool, False),
        vrrp_strict=r.typed(data, "vrrp_strict", path, bool, False),
    )
    if not preempt:
        for member in members:
            if member.state == "MASTER":
                r.error(child_path(child_path(path, "members"), member.node),
                        "state MASTER cannot be combined with preempt: false (nopreempt "
                        "needs every member in state BACKUP)")
    return group


def _parse_check(r: _Reader, name: str, value: Any, path: str) -> HealthCheck | None:
    data = r.mapping(value, path, (), ("interval", "timeout", "fall", "rise", "weight", "url",
                                       "host", "port", "user", "manager_port"))
    if data is None:
        return None
    if name not in CHECK_NAMES:
        r.error(path, f"unknown check '{name}' (known: {', '.join(CHECK_NAMES)})")
        return None
    base = HealthCheck(name)
    return HealthCheck(
        name=name,
        # keepalived 2.2.7 takes vrrp_script intervals in whole seconds only.
        interval=r.typed(data, "interval", path, int, base.interval, _between(1, 4294)),
        timeout=r.typed(data, "timeout", path, float, base.timeout, _between(0.01, 3600)),
        fall=r.typed(data, "fall", path, int, base.fall, _between(1, 255)),
        rise=r.typed(data, "rise", path, int, base.rise, _between(1, 255)),
        weight=r.typed(data, "weight", path, int, base.weight, _between(-253, 253)),
        url=r.typed(data, "url", path, str, base.url),
        host=r.typed(data, "host", path, str, base.host),
        port=r.typed(data, "port", path, int, base.port, _between(1, 65535)),
        user=r.typed(data, "user", path, str, None),
        manager_port=r.typed(data, "manager_port", path, int, None, _between(1, 65535)),
    )


def _parse_realservers(r: _Reader, data: dict[str, Any],
                       path: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """``realservers``: a list of node names, each optionally ``{node: NAME, weight: N}``, or
    a mapping of node name to weight. Returns the names and their weights, in spec order."""
    if "realservers" not in data:
        return (), ()
    value = data["realservers"]
    sub = child_path(path, "realservers")
    weight_range = _between(0, MAX_WEIGHT)
    names: list[str] = []
    weights: list[int] = []
    if isinstance(value, dict):
        for key in value:
            weight = r.typed(value, key, sub, int, None, weight_range)
            if weight is not None:
                names.append(str(key))
                weights.append(weight)
        return tuple(names), tuple(weights)
    if not isinstance(value, list):
        r.error(sub, "must be a list of node names (or of {node, weight}) or a mapping of "
                     f"node name to weight, got {_type_name(value)}")
        return (), ()
    for index, entry in enumerate(value):
        entry_path = child_path(sub, index)
        if isinstance(entry, str):
            name, weight = entry, DEFAULT_WEIGHT
        elif isinstance(entry, dict):
            if r.mapping(entry, entry_path, ("node",), ("weight",)) is None:
                continue
            name = r.typed(entry, "node", entry_path, str)
            weight = r.typed(entry, "weight", entry_path, int, None, weight_range)
            if name is None or ("weight" in entry and weight is None):
                continue
            weight = DEFAULT_WEIGHT if weight is None else weight
        else:
            r.error(entry_path, "must be a node name or a mapping with 'node' and 'weight', "
                                f"got {_type_name(entry)}")
            continue
        if name in names:
            r.error(entry_path, f"realserver '{name}' is listed twice")
            continue
        names.append(name)
        weights.append(weight)
    return tuple(names), tuple(weights)


def _parse_lvs(r: _Reader, value: Any, path: str) -> LvsService | None:
    data = r.mapping(value, path, ("vip", "port", "realservers"),
                     ("scheduler", "persistence_timeout", "protocol", "engine", "check",
                      "check_interval", "check_timeout", "check_fall", "check_rise",
                      "check_login_every", "panic_threshold"))
    if data is None:
        return None
    try:
        vip = ipaddress.IPv4Address(str(data.get("vip", "")).split("/")[0])
    except ValueError:
        r.error(child_path(path, "vip"), f"'{data.get('vip')}' is not an IPv4 address")
        return None
    realservers, weights = _parse_realservers(r, data, path)
    return LvsService(
        vip=vip,
        port=r.typed(data, "port", path, int, 0, _between(1, 65535)),
        realservers=realservers,
        weights=weights,
        scheduler=r.typed(data, "scheduler", path, str, "rr",
                          lambda v: None if v in SCHEDULERS
                          else f"unknown scheduler '{v}' (known: {', '.join(SCHEDULERS)})"),
        persistence_timeout=r.typed(data, "persistence_timeout", path, int, 0,
                                    _between(0, 86400)),
        protocol=r.typed(data, "protocol", path, str, "TCP",
                         lambda v: None if v == "TCP" else "only TCP is supported"),
        engine=r.typed(data, "engine", path, str, "auto",
                       lambda v: None if v in LVS_ENGINES
                       else f"unknown engine '{v}' (known: {', '.join(LVS_ENGINES)})"),
        check=r.typed(data, "check", path, str, "tcp",
                      lambda v: None if v in ("tcp", "mycat") else "must be tcp or mycat"),
        check_interval=r.typed(data, "check_interval", path, float, 1.0, _between(0.05, 3600)),
        check_timeout=r.typed(data, "check_timeout", path, float, 1.0, _between(0.05, 3600)),
        check_fall=r.typed(data, "check_fall", path, int, 2, _at_least_2),
        check_rise=r.typed(data, "check_rise", path, int, 2, _at_least_2),
        # MySQL blocks a host after max_connect_errors (default 100) interrupted handshakes
        # in a row, and a greeting check is one; a login resets the count, so N stays well
        # below 100.
        check_login_every=r.typed(data, "check_login_every", path, int, 10, _between(1, 50)),
        panic_threshold=r.typed(data, "panic_threshold", path, int, 50, _between(0, 100)),
    )


def _at_least_2(value: int) -> str | None:
    if value < 2:
        return ("must be at least 2: one failed check must not take a realserver out "
                "(a starved checker emptied the pool, issue #16)")
    return _between(2, 255)(value)


_CONNECT_STRING = r"[A-Za-z0-9.:\[\]-]+(,[A-Za-z0-9.:\[\]-]+)*"


def _parse_mycat_zookeeper(r: _Reader, value: Any) -> MycatZookeeper | None:
    path = "mycat_zookeeper"
    data = r.mapping(value, path, ("enabled",), ("cluster_id", "root", "readers", "hosts"))
    if data is None:
        return None
    base = MycatZookeeper()
    readers = []
    for index, raw in enumerate(r.sequence(data.get("readers"), child_path(path, "readers"))):
        try:
            readers.append(ipaddress.IPv4Network(str(raw)))
        except ValueError:
            r.error(child_path(child_path(path, "readers"), index),
                    f"'{raw}' is not an IPv4 address or network")
    return MycatZookeeper(
        enabled=r.typed(data, "enabled", path, bool, False),
        cluster_id=r.typed(data, "cluster_id", path, str, base.cluster_id,
                           lambda v: None if re.fullmatch(r"[A-Za-z0-9_.-]+", v)
                           and v not in (".", "..")
                           else "must be a name of letters, digits, '_', '.' or '-'"),
        root=r.typed(data, "root", path, str, base.root,
                     lambda v: None if re.fullmatch(r"(/[^/]+)*/mycat", v)
                     else "must be an absolute path ending in '/mycat' (MyCat 1.6 reads "
                          "/mycat below its zkURL)"),
        readers=tuple(readers),
        hosts=r.typed(data, "hosts", path, str, None,
                      lambda v: None if re.fullmatch(_CONNECT_STRING, v)
                      else "must be a ZooKeeper connect string HOST:PORT[,HOST:PORT...]"),
    )


def _parse_mycat(r: _Reader, value: Any) -> MycatSpec:
    data = r.mapping(value, "mycat", (), ("version",))
    if data is None:
        return MycatSpec()
    version = data.get("version", MycatSpec.version)
    # YAML reads 1.6 as a number; quoting is the fix, so say so.
    if not isinstance(version, str) or version not in MYCAT_VERSIONS:
        r.error("mycat.version", f"{version!r} is not a MyCat release stackha knows; use one "
                                 f"of {', '.join(repr(v) for v in MYCAT_VERSIONS)} (quoted)")
        return MycatSpec()
    return MycatSpec(version=version)


def _cross_check(r: _Reader, spec: StackSpec, at: dict[str, list[int]]) -> None:
    """Checks across sections. ``at`` gives each parsed item's index in the document: items
    that failed to parse are left out of ``spec``, and paths must still name the right line."""
    nodes = {}
    for index, node in zip(at["nodes"], spec.nodes, strict=True):
        if node.name in nodes:
            r.error(f"nodes[{index}].name", f"node '{node.name}' defined twice")
        nodes[node.name] = node
    seen_groups: set[str] = set()
    vip_owner: dict[ipaddress.IPv4Address, str] = {}
    for gi, group in zip(at["vrrp_groups"], spec.vrrp_groups, strict=True):
        path = f"vrrp_groups[{gi}]"
        if group.name in seen_groups:
            r.error(f"{path}.name", f"group '{group.name}' defined twice")
        seen_groups.add(group.name)
        for vi, vip in enumerate(group.vips):
            if vip.ip in vip_owner:
                r.error(f"{path}.vips[{vi}]",
                        f"VIP {vip.ip} is already claimed by group '{vip_owner[vip.ip]}'")
            vip_owner.setdefault(vip.ip, group.name)
        for member in group.members:
            mpath = f"{path}.members.{member.node}"
            node = nodes.get(member.node)
            if node is None:
                r.error(mpath, f"member '{member.node}' is not a node of the spec")
                continue
            for vip in group.vips:
                network = node.network or vip.network
                if node.address not in vip.network or (vip.ip not in network):
                    r.warn(mpath, f"VIP {vip} is outside the subnet of {node.name}'s "
                                  f"{group.interface} address {node.address}")
        priorities = [m.priority for m in group.members]
        if len(set(priorities)) != len(priorities):
            r.warn(f"{path}.members", "members share a priority: the master is then chosen "
                                      "by the highest address")
    # VRRP routers on one segment must not share a VRID: they would fight over one MAC.
    for position, (gi, group) in enumerate(zip(at["vrrp_groups"], spec.vrrp_groups,
                                               strict=True)):
        for other in spec.vrrp_groups[:position]:
            if other.virtual_router_id != group.virtual_router_id:
                continue
            if any(a.network.overlaps(b.network) for a in group.vips for b in other.vips):
                r.error(f"vrrp_groups[{gi}].virtual_router_id",
                        f"virtual_router_id {group.virtual_router_id} is already used by group "
                        f"'{other.name}' on the same network segment")
    for si, service in zip(at["lvs_services"], spec.lvs_services, strict=True):
        for ri, name in enumerate(service.realservers):
            # A listed realserver is named by its index, one of a mapping by its key.
            rpath = f"lvs_services[{si}].realservers"
            rpath = f"{rpath}.{name}" if f"{rpath}.{name}" in r.doc.lines else f"{rpath}[{ri}]"
            node = nodes.get(name)
            if node is None:
                r.error(rpath, f"realserver '{name}' is not a node of the spec")
            elif "mycat" not in node.roles:
                r.warn(rpath, f"realserver '{name}' does not have the mycat role")
        if service.realservers and not any(service.weight(n) for n in service.realservers):
            r.warn(f"lvs_services[{si}].realservers",
                   "every realserver has weight 0: the service takes no new connections")
        elif (service.scheduler not in WEIGHTED_SCHEDULERS
              and any(w > 1 for w in service.weights)):
            r.warn(f"lvs_services[{si}].realservers",
                   f"scheduler {service.scheduler} ignores weights other than 0 (IPVS does "
                   f"too): use w{service.scheduler} to share by weight")
        if not any(v.ip == service.vip for g in spec.vrrp_groups for v in g.vips):
            r.warn(f"lvs_services[{si}].vip",
                   f"VIP {service.vip} is held by no VRRP group: no director will own it")


TOP_KEYS = ("cluster", "zookeeper", "nodes", "vrrp_groups", "lvs_services", "health_checks",
            "mycat_zookeeper", "mycat")


def parse_spec_document(doc: YamlDocument) -> tuple[StackSpec | None, list[Problem]]:
    r = _Reader(doc)
    data = r.mapping(doc.value, "", ("cluster", "zookeeper", "nodes"),
                     ("vrrp_groups", "lvs_services", "health_checks", "mycat_zookeeper",
                      "mycat"))
    if data is None:
        return None, r.problems
    cluster = r.typed(data, "cluster", "", str, "",
                      lambda v: None if v and "/" not in v else "must be a non-empty name "
                                                                "without '/'")
    zookeeper = _parse_zookeeper(r, data.get("zookeeper")) if "zookeeper" in data else None
    nodes = [_parse_node(r, v, f"nodes[{i}]") for i, v in
             enumerate(r.sequence(data.get("nodes"), "nodes"))]
    groups = [_parse_group(r, v, f"vrrp_groups[{i}]") for i, v in
              enumerate(r.sequence(data.get("vrrp_groups"), "vrrp_groups"))]
    services = [_parse_lvs(r, v, f"lvs_services[{i}]") for i, v in
                enumerate(r.sequence(data.get("lvs_services"), "lvs_services"))]
    checks: list[HealthCheck | None] = []
    raw_checks = data.get("health_checks") or {}
    if not isinstance(raw_checks, dict):
        r.error("health_checks", "must be a mapping of check name to settings")
    else:
        checks = [_parse_check(r, str(k), v, f"health_checks.{k}") for k, v in raw_checks.items()]
    mycat_zk = (_parse_mycat_zookeeper(r, data["mycat_zookeeper"])
                if "mycat_zookeeper" in data else None)
    mycat = _parse_mycat(r, data["mycat"]) if "mycat" in data else MycatSpec()
    # The cross-checks run on whatever parsed, so one run reports every error at once.
    spec = StackSpec(
        cluster=cluster, zookeeper=zookeeper or ZookeeperSpec(hosts=""),
        nodes=tuple(n for n in nodes if n), vrrp_groups=tuple(g for g in groups if g),
        lvs_services=tuple(s for s in services if s),
        health_checks=tuple(c for c in checks if c), mycat_zookeeper=mycat_zk, mycat=mycat,
    )
    _cross_check(r, spec, {"nodes": [i for i, n in enumerate(nodes) if n],
                           "vrrp_groups": [i for i, g in enumerate(groups) if g],
                           "lvs_services": [i for i, v in enumerate(services) if v]})
    if (zookeeper is not None and zookeeper.tls is not None and mycat_zk is not None
            and mycat_zk.enabled and not mycat_zk.hosts):
        r.error("mycat_zookeeper", "zookeeper.tls is set but MyCat 1.6 cannot connect over TLS:"
                                   " give mycat_zookeeper.hosts, a plain client port")
    if zookeeper is None:
        return None, r.problems
    if mycat_zk is not None and mycat_zk.enabled and not spec.mycat_nodes():
        r.warn("mycat_zookeeper", "enabled, but no node has the mycat role")
    return (None if errors(r.problems) else spec), r.problems


def parse_spec(text: str, file: str = "stackha.yaml") -> tuple[StackSpec | None, list[Problem]]:
    """Turn spec text into a StackSpec, or None plus every error found."""
    doc, problems = load_yaml(text, file)
    if doc is None:
        return None, problems
    spec, more = parse_spec_document(doc)
    problems = problems + more
    return (spec if not errors(problems) else None), problems
