"""Pure: the compose project of the lab, rendered from the stack spec.

Every node of the spec becomes a service with the node's address on one private bridge network
(the nodes' subnet), the ZooKeeper ensemble comes from ``zookeeper.hosts`` and the MariaDB
backend from MyCat's dataHost. Each container gets only what its roles need:

- VRRP members (keepalived): NET_ADMIN (the VIP, the routes) and NET_RAW (VRRP is IP protocol
  112 on a raw socket, gratuitous ARP on a packet socket);
- directors: NET_ADMIN for the nftables netdev forwarding;
- LVS realservers: NET_ADMIN for the VIP on ``lo``, and the ARP sysctls (``/proc/sys`` is
  read-only in a container, so compose sets them: arp_ignore=1, arp_announce=2 on ``all`` and
  the node's interface);
- ZooKeeper and MariaDB: nothing.

With ``zookeeper.tls`` in the spec the members serve their TLS client port (2281, client
certificates required) besides the plain one (2181, which MyCat 1.6 needs: its ZooKeeper
client has no TLS); each member mounts its own key store, each node its own client files at
the directory the spec names (made by ``labtls``).

Images are built by build-only services (profile ``build``) so `stackha up` can build them in
order (base, node, then the rest); the running services never pull (there is no registry).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import yaml

from stackha.lab.compose.backend import Backend, LabError
from stackha.model.grammar import name_reason
from stackha.model.spec import Node, StackSpec

CONFIGS_IN_CONTAINER = "/etc/stackha/configs"
NGINX_DIR = "/srv/nginx"
MYCAT_DIR = "/srv/mycat/conf"
KEEPALIVED_DIR = "/etc/keepalived"
STATE_DIR = "/var/lib/stackha"
STACKHA = "/opt/stackha/bin/stackha"
BUILD_PROFILE = "build"
NETWORK = "lab"
IMAGE_DIGEST_LABEL = "stackha.digest"
STANDIN_SUFFIX = "-standin"
MYCAT_PASSWORD_IN_CONTAINER = "/run/stackha/mycat-check.password"
AGENT_CONFIG_IN_CONTAINER = "/etc/stackha/agent.yaml"
# The agents' HTTP endpoints (/health, /vrrp/GROUP, /status, /metrics) on each container's
# lab address, where the host (the drill, a monitor) reaches them over the lab bridge.
AGENT_ENDPOINT_PORT = 9145
ZK_PLAIN_PORT = 2181
ZK_TLS_PORT = 2281
ZK_TLS_IN_CONTAINER = "/etc/zookeeper/tls"
# The public half of the lab's signing key (stackha.lab.compose.signing): what agents pin.
TRUSTED_KEY_IN_CONTAINER = "/etc/stackha/trusted/lab-signing.pub"


RT_PERIOD_US = 1_000_000


@dataclass(frozen=True)
class LabOptions:
    """What the spec does not say about the lab."""

    project: str = "stackha"
    # Paths as the compose file sees them (relative to its directory).
    configs_mount: str = "../configs"
    # Each node's own credential (stackha.lab.compose.secrets): {node} is its name.
    agent_env_file: str = ".stackha/agent-{node}.env"
    mycat_password_file: str = ".stackha/mycat-check.password"
    trusted_key_file: str = ".stackha/signing.pub"
    # False: no MyCat release was given, the realservers run mycat-standin.
    mycat_release: bool = False
    bridge_name: str = "stackha0"
    zookeeper_heap: str = "256m"
    # One directory per ZooKeeper member and per node (stackha.lab.compose.labtls).
    tls_dir: str = ".stackha/tls"
    # Realtime budget (µs per second) of each keepalived container, on hosts with cgroup v1
    # RT group scheduling (0: none asked). There a container's group gets no realtime time
    # by default, keepalived logs "cannot raise priority" and its VRRP child runs at normal
    # priority: at load 13 the backups missed three 30 ms adverts about ten times a minute.
    rt_runtime_us: int = 0


@dataclass(frozen=True)
class Image:
    """One image the lab builds: its build-only service, tag and build context."""

    service: str
    tag: str
    context: str


def images(options: LabOptions) -> tuple[Image, ...]:
    """In build order: each image may start FROM one listed before it."""
    mycat = "mycat" if options.mycat_release else "mycat-standin"
    return (
        Image("image-base", f"{options.project}/base:latest", "base"),
        Image("image-node", f"{options.project}/node:latest", "node"),
        Image("image-mycat", f"{options.project}/{mycat}:latest", "mycat"),
        Image("image-zookeeper", f"{options.project}/zookeeper:latest", "zookeeper"),
        Image("image-mariadb", f"{options.project}/mariadb:latest", "mariadb"),
    )


def _image(options: LabOptions, service: str) -> str:
    return next(i.tag for i in images(options) if i.service == service)


def zookeeper_members(spec: StackSpec) -> list[tuple[int, ipaddress.IPv4Address, int]]:
    """(myid, address, client port) of each ``zookeeper.hosts`` entry, myid from 1."""
    members = []
    for index, entry in enumerate(spec.zookeeper.hosts.split(","), start=1):
        host, _, port = entry.strip().rpartition(":")
        try:
            members.append((index, ipaddress.IPv4Address(host), int(port)))
        except ValueError as exc:
            raise LabError(f"zookeeper.hosts: {entry.strip()!r}: the lab needs IPv4:PORT "
                           "entries") from exc
    return members


def lab_network(spec: StackSpec) -> ipaddress.IPv4Network:
    networks = {n.network for n in spec.nodes}
    if len(networks) != 1 or None in networks:
        raise LabError("nodes: the lab puts every node on one network; the nodes' addresses "
                       f"span {len(networks)} (give each the same prefix length)")
    network = networks.pop()
    assert network is not None
    return network


def service_name(node: Node, options: LabOptions) -> str:
    """The node's name; MyCat nodes running the stand-in say so in the service name."""
    if "mycat" in node.roles and not options.mycat_release:
        return node.name + STANDIN_SUFFIX
    return node.name


def _realservers(spec: StackSpec) -> set[str]:
    return {name for service in spec.lvs_services for name in service.realservers}


def agent_options(spec: StackSpec, node: Node) -> dict[str, Any]:
    """The node's agent.yaml: ``stackha agent`` options by their long names."""
    # A 1 s heartbeat makes a hard-killed node's report stale after 3 x 1 + 2 = 5 s (see
    # stackha.model.cluster), before its 10 s ZooKeeper session ends: `stackha status` and the
    # drill then show it stale instead of MASTER. The price is one status write a second.
    options: dict[str, Any] = {"node": node.name, "configs": CONFIGS_IN_CONTAINER,
                               "state-dir": STATE_DIR, "heartbeat": 1,
                               "trusted-key": [TRUSTED_KEY_IN_CONTAINER],
                               "metrics-port": AGENT_ENDPOINT_PORT,
                               "metrics-address": str(node.address),
                               # A restart of the agent alone (SIGTERM to it) leaves
                               # keepalived for the next agent to adopt; docker stop goes
                               # through the entrypoint, which then runs --stop-services
                               # (compose/base/bin/stackha-lab-entrypoint).
                               "on-stop": "leave"}
    if "nginx" in node.roles:
        options |= {"nginx-dir": NGINX_DIR, "nginx-reload": "stackha-lab-service reload nginx"}
    if "mycat" in node.roles:
        # Reloads go through MyCat's manager port (reload @@config or @@config_all, with the
        # password MyCat has loaded); the lab script only starts MyCat on the first version.
        check = spec.health_check("mycat")
        options |= {"mycat-dir": MYCAT_DIR,
                    "mycat-manager": f"127.0.0.1:{check.manager_port or 9066}",
                    "mycat-reload": "stackha-lab-service reload mycat",
                    # The first reload starts MyCat: a JVM on a busy machine needs longer
                    # than the 20 s default.
                    "reload-timeout": 120,
                    # Lab traffic stays in the lab: no version naming another backend.
                    "mycat-backend-network": [str(lab_network(spec))]}
        if check.user:
            options["mycat-health"] = True
    if spec.groups_of(node.name):
        options |= {"keepalived-dir": KEEPALIVED_DIR, "stackha-command": STACKHA}
    if _is_director(spec, node) or node.name in _realservers(spec):
        options["lvs"] = True
    if _checks_mycat_login(spec, node):
        options["mycat-password-file"] = MYCAT_PASSWORD_IN_CONTAINER
    return options


def _agent_config_name(node: Node) -> str:
    return f"agent-{node.name}"


def _agent_configs(spec: StackSpec) -> dict[str, Any]:
    """One compose config per node holding its agent.yaml (mounted read-only, root's)."""
    return {_agent_config_name(node): {"content": yaml.safe_dump(
        agent_options(spec, node), sort_keys=False, default_flow_style=False)}
        for node in spec.nodes}


def _is_director(spec: StackSpec, node: Node) -> bool:
    return "director" in node.roles and bool(spec.lvs_services)


def _checks_mycat_login(spec: StackSpec, node: Node) -> bool:
    """A director whose services check MyCat with a login needs that user's password."""
    return (_is_director(spec, node) and spec.health_check("mycat").user is not None
            and any(s.check == "mycat" for s in spec.lvs_services))


def _capabilities(spec: StackSpec, node: Node) -> list[str]:
    caps = set()
    if spec.groups_of(node.name):
        # SYS_NICE: keepalived's VRRP process runs realtime (vrrp_rt_priority); without it
        # the 0.03 s adverts flap when the host is busy.
        caps |= {"NET_ADMIN", "NET_RAW", "SYS_NICE"}
    if _is_director(spec, node) or node.name in _realservers(spec):
        caps.add("NET_ADMIN")
    return sorted(caps)


def _sysctls(spec: StackSpec, node: Node) -> dict[str, str]:
    if node.name not in _realservers(spec):
        return {}
    return {f"net.ipv4.conf.{where}.{name}": value
            for where in ("all", node.interface)
            for name, value in (("arp_ignore", "1"), ("arp_announce", "2"))}


def _node_service(spec: StackSpec, node: Node, options: LabOptions) -> dict[str, Any]:
    image = "image-mycat" if "mycat" in node.roles else "image-node"
    services = [role for role in ("nginx", "mycat") if role in node.roles]
    service: dict[str, Any] = {
        "image": _image(options, image),
        "pull_policy": "never",
        "hostname": node.name,
        "command": [STACKHA, "agent", "--config", AGENT_CONFIG_IN_CONTAINER],
        # Outside Swarm compose ignores a mode: the file is root's, 0444, which the agent's
        # check accepts (nobody but root may write it).
        "configs": [{"source": _agent_config_name(node), "target": AGENT_CONFIG_IN_CONTAINER}],
        "environment": {"STACKHA_LAB_SERVICES": " ".join(services)},
        "env_file": [options.agent_env_file.format(node=node.name)],
        "volumes": [f"{options.configs_mount}:{CONFIGS_IN_CONTAINER}:ro",
                    f"{options.trusted_key_file}:{TRUSTED_KEY_IN_CONTAINER}:ro"],
        "networks": {NETWORK: {"ipv4_address": str(node.address)}},
        "labels": {"stackha.node": node.name, "stackha.roles": ",".join(node.roles)},
        "stop_grace_period": "15s",
    }
    if _checks_mycat_login(spec, node):
        service["volumes"].append(
            f"{options.mycat_password_file}:{MYCAT_PASSWORD_IN_CONTAINER}:ro")
    if spec.zookeeper.tls is not None:
        # The node's own client certificate, where the spec's zookeeper.tls looks for it.
        where = _tls_client_dir(spec)
        service["volumes"].append(f"{options.tls_dir}/{node.name}:{where}:ro")
    if "mycat" in node.roles:
        # stackha-lab-service starts MyCat only on files whose backends are in here.
        service["environment"]["STACKHA_LAB_NETWORK"] = str(lab_network(spec))
        service["labels"]["stackha.mycat"] = "release" if options.mycat_release else "standin"
        service["depends_on"] = {"mysql": {"condition": "service_healthy"}}
    if caps := _capabilities(spec, node):
        service["cap_add"] = caps
    if options.rt_runtime_us and spec.groups_of(node.name):
        service["cpu_rt_runtime"] = options.rt_runtime_us
        service["cpu_rt_period"] = RT_PERIOD_US
    if sysctls := _sysctls(spec, node):
        service["sysctls"] = sysctls
    return service


def _tls_client_dir(spec: StackSpec) -> str:
    tls = spec.zookeeper.tls
    assert tls is not None
    directories = {str(PurePosixPath(p).parent) for p in (tls.ca, tls.cert, tls.key) if p}
    if len(directories) != 1 or tls.cert is None:
        raise LabError("zookeeper.tls: the lab mounts one directory per node: give ca, cert "
                       "and key in the same directory")
    return directories.pop()


def _zookeeper_service(spec: StackSpec, options: LabOptions, myid: int,
                       address: ipaddress.IPv4Address, servers: str) -> dict[str, Any]:
    environment = {"ZOO_MY_ID": str(myid), "ZOO_SERVERS": servers,
                   "ZOO_HEAP": options.zookeeper_heap}
    service: dict[str, Any] = {
        "image": _image(options, "image-zookeeper"),
        "pull_policy": "never",
        "hostname": f"zk{myid}",
        "environment": environment,
        "networks": {NETWORK: {"ipv4_address": str(address)}},
        "labels": {"stackha.service": "zookeeper"},
    }
    if spec.zookeeper.tls is not None:
        environment["ZOO_SECURE_CLIENT_PORT"] = str(ZK_TLS_PORT)
        environment["ZOO_TLS_DIR"] = ZK_TLS_IN_CONTAINER
        service["volumes"] = [f"{options.tls_dir}/zk{myid}:{ZK_TLS_IN_CONTAINER}:ro"]
    return service


def _zookeeper_services(spec: StackSpec, options: LabOptions) -> dict[str, dict[str, Any]]:
    members = zookeeper_members(spec)
    servers = " ".join(f"{myid}={address}" for myid, address, _ in members)
    return {f"zk{myid}": _zookeeper_service(spec, options, myid, address, servers)
            for myid, address, _ in members}


def _backend_service(backend: Backend, options: LabOptions) -> dict[str, Any]:
    return {
        "image": _image(options, "image-mariadb"),
        "pull_policy": "never",
        "hostname": "mysql",
        "environment": {"BACKEND_USER": backend.user, "BACKEND_PASSWORD": backend.password,
                        "BACKEND_DATABASES": " ".join(backend.databases)},
        "networks": {NETWORK: {"ipv4_address": str(backend.address)}},
        "labels": {"stackha.service": "mysql-backend"},
        # Healthy once mariadbd answers on its socket (its --init-file ran before that). The
        # MyCat nodes wait for it: a MyCat started first waited 60 s for its backend pool
        # and sent no greeting meanwhile (the lab's first version failed its check once).
        "healthcheck": {"test": ["CMD", "mariadb-admin", "--socket=/run/mysqld/mysqld.sock",
                                 "--silent", "ping"],
                        "interval": "1s", "timeout": "5s", "retries": 120},
    }


def _check_addresses(spec: StackSpec, backend: Backend,
                     network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    gateway = next(network.hosts())
    used: dict[ipaddress.IPv4Address, str] = {}
    wanted = [(n.address, f"node {n.name}") for n in spec.nodes]
    wanted += [(a, f"zookeeper member {i}") for i, a, _ in zookeeper_members(spec)]
    wanted += [(backend.address, "the MySQL backend")]
    wanted += [(v.ip, f"VIP of group {g.name}") for g in spec.vrrp_groups for v in g.vips]
    for address, what in wanted:
        if address not in network:
            raise LabError(f"{what}: {address} is outside the lab network {network}")
        if address == gateway:
            raise LabError(f"{what}: {address} is the lab network's gateway (the host)")
        if address in used and not what.startswith("VIP"):
            raise LabError(f"{what}: {address} is also {used[address]}")
        used.setdefault(address, what)
    for node in spec.nodes:
        # A node name becomes a service name, a hostname and a label (compose substitutes
        # '$' in every value): only the spec's name grammar may get that far.
        if name_reason(node.name):
            raise LabError(f"node {node.name!r}: {name_reason(node.name)}")
        if node.interface != "eth0":
            raise LabError(f"node {node.name}: interface {node.interface}: a lab container "
                           "has one interface, eth0")
    port = ZK_TLS_PORT if spec.zookeeper.tls is not None else ZK_PLAIN_PORT
    if spec.zookeeper.hosts and any(p != port for _, _, p in zookeeper_members(spec)):
        what = "TLS client port" if spec.zookeeper.tls is not None else "client port"
        raise LabError(f"zookeeper.hosts: the lab's ZooKeeper members serve their {what} on "
                       f"{port}")
    return gateway


def compose_document(spec: StackSpec, backend: Backend,
                     options: LabOptions | None = None) -> dict[str, Any]:
    options = options or LabOptions()
    network = lab_network(spec)
    gateway = _check_addresses(spec, backend, network)
    services: dict[str, Any] = {
        image.service: {"image": image.tag,
                        "build": {"context": image.context,
                                  "labels": {IMAGE_DIGEST_LABEL: "${STACKHA_IMAGE_DIGEST:-}"}},
                        "profiles": [BUILD_PROFILE]}
        for image in images(options)
    }
    services["image-mycat"]["build"]["args"] = {"MYCAT_TARBALL": "${MYCAT_TARBALL:-}"}
    services.update(_zookeeper_services(spec, options))
    services["mysql"] = _backend_service(backend, options)
    for node in spec.nodes:
        services[service_name(node, options)] = _node_service(spec, node, options)
    return {
        "name": options.project,
        "services": services,
        "configs": _agent_configs(spec),
        "networks": {NETWORK: {
            "driver": "bridge",
            # No route out: nothing in the lab reaches past the bridge (no NAT, no gateway
            # beyond the host's own address on it).
            "internal": True,
            "driver_opts": {"com.docker.network.bridge.name": options.bridge_name},
            "ipam": {"config": [{"subnet": str(network), "gateway": str(gateway)}]},
        }},
    }


HEADER = """\
# The stackha lab: rendered by `stackha up` from {source}.
# Edit the spec, not this file: `stackha up` writes it again. Images are built by the
# build-only services (profile "build"); no service pulls from a registry.
"""


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the agents' agent.yaml) as literal blocks, readable as files."""


_Dumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def render_compose(spec: StackSpec, backend: Backend, options: LabOptions | None = None,
                   source: str = "configs/stackha.yaml") -> str:
    document = compose_document(spec, backend, options)
    body = yaml.dump(document, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     width=100)
    return HEADER.format(source=source) + body
