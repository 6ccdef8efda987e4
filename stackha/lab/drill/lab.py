"""The running compose lab as the drill sees it: addresses from the spec, containers through
the Docker SDK, commands inside containers through ``docker exec``.

Only the lab's own containers and addresses are ever touched.
"""

from __future__ import annotations

import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackha.lab.compose.engine import PROJECT_LABEL, SERVICE_LABEL, containers
from stackha.lab.compose.render import STATE_DIR, ZK_PLAIN_PORT
from stackha.model.spec import StackSpec, VrrpGroup

log = logging.getLogger(__name__)

NODE_LABEL = "stackha.node"
CUT_TABLE = "stackha_drill"
# The agent holds this lock for its life and writes its pid into it (stackha.cli.agent,
# hold_agent_lock): the pid `systemctl restart` would signal, the MAINPID.
AGENT_LOCK = f"{STATE_DIR}/agent.lock"


class LabProblem(Exception):
    """The lab is not what a scenario needs; the message says what is missing."""


@dataclass(frozen=True)
class SqlAccount:
    user: str
    password: str
    database: str | None


def sql_account(spec: StackSpec, server_xml: bytes) -> SqlAccount:
    """The MyCat health check's account (or the first user) from server.xml."""
    from stackha.lab.standin.config import parse_server_xml

    users, _ = parse_server_xml(server_xml)
    name = spec.health_check("mycat").user or next(iter(users), None)
    if not name or name not in users:
        raise LabProblem(f"no MyCat user {name!r} in server.xml to probe the MySQL VIP with")
    user = users[name]
    database = user.default_schema or (user.schemas[0] if user.schemas else None)
    return SqlAccount(user.name, user.password, database)


def group_with_role(spec: StackSpec, role: str) -> VrrpGroup | None:
    """The first VRRP group whose members have ``role``."""
    for group in spec.vrrp_groups:
        if any((n := spec.node(m.node)) and role in n.roles for m in group.members):
            return group
    return None


def cut_ruleset(interface: str) -> str:
    """Pure: nftables tables dropping everything in and out of ``interface`` (IP and ARP),
    leaving loopback alone: the node keeps running, cut off from every peer."""
    return (f"table inet {CUT_TABLE} {{\n"
            f"  chain in {{ type filter hook input priority -300; policy accept;"
            f" iifname \"{interface}\" drop; }}\n"
            f"  chain out {{ type filter hook output priority -300; policy accept;"
            f" oifname \"{interface}\" drop; }}\n"
            f"}}\n"
            f"table arp {CUT_TABLE} {{\n"
            f"  chain in {{ type filter hook input priority 0; policy accept;"
            f" iifname \"{interface}\" drop; }}\n"
            f"  chain out {{ type filter hook output priority 0; policy accept;"
            f" oifname \"{interface}\" drop; }}\n"
            f"}}\n")


def holds_address(ip_output: str, address: str) -> bool:
    """Pure: whether `ip -4 -o addr show` output lists ``address`` on some interface."""
    return re.search(rf"\binet {re.escape(address)}/", ip_output) is not None


def lock_pid(text: str) -> int | None:
    """Pure: the pid an agent wrote into its lock file; None when there is none."""
    first = text.strip().split("\n", 1)[0].strip()
    return int(first) if first.isdigit() else None


def zk_mode(answer: str) -> str | None:
    """Pure: ``leader``, ``follower``, ``standalone`` from a ZooKeeper ``srvr`` answer."""
    for line in answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def sessions_from(ss_output: str, address: str, local_port: int) -> int:
    """Pure: how many `ss -Htn state established` lines are connections from ``address`` to
    the local ``local_port``."""
    count = 0
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[-2].endswith(f":{local_port}") \
                and fields[-1].rsplit(":", 1)[0] == address:
            count += 1
    return count


def connection_peer_present(ss_output: str, address: str, port: int) -> bool:
    """Pure: whether `ss -Htn` output lists a connection whose peer is ``address:port``."""
    wanted = f"{address}:{port}"
    # Recv-Q Send-Q Local Peer (with `state established`), or State first without it.
    return any(wanted in line.split()[3:5] for line in ss_output.splitlines())


class DrillLab:
    """The compose project's containers and the stack's addresses."""

    def __init__(self, spec: StackSpec, client: Any, project: str, configs: Path) -> None:
        self.spec, self.client, self.project, self.configs = spec, client, project, configs
        web = group_with_role(spec, "nginx")
        sql = group_with_role(spec, "director")
        self.web_group = web.name if web else None
        self.web_vip = str(web.vips[0].ip) if web and web.vips else None
        self.sql_group = sql.name if sql else None
        service = spec.lvs_services[0] if spec.lvs_services else None
        self.sql_vip = (str(service.vip), service.port) if service else None
        self.sql = sql_account(spec, (configs / "mycat" / "server.xml").read_bytes()) \
            if service else None
        # `srvr` goes to the plain client port: 4lw carry no secret, and with zookeeper.tls
        # the spec's hosts name the TLS port (the lab serves both, see compose/render.py).
        self.zk_hosts = [(h.rsplit(":", 1)[0], ZK_PLAIN_PORT if spec.zookeeper.tls else
                          int(h.rsplit(":", 1)[1]) if ":" in h else ZK_PLAIN_PORT)
                         for h in spec.zookeeper.hosts.split(",") if h.strip()]

    # containers ---------------------------------------------------------------------------
    def container(self, name: str) -> Any:
        """The container of a node (``stackha.node`` label) or of a compose service."""
        for label in (NODE_LABEL, SERVICE_LABEL):
            found = self.client.containers.list(all=True, filters={"label": [
                f"{PROJECT_LABEL}={self.project}", f"{label}={name}"]})
            if found:
                return found[0]
        raise LabProblem(f"no container for {name!r} in compose project {self.project}")

    def service_at(self, address: str) -> str:
        for row in containers(self.client, self.project):
            if row.address == address:
                return row.service
        raise LabProblem(f"no container of project {self.project} has address {address}")

    def kill(self, name: str) -> None:
        log.info("event=drill_kill container=%s", name)
        self.container(name).kill()

    def stop(self, name: str, timeout: int = 15) -> None:
        log.info("event=drill_stop container=%s timeout=%d", name, timeout)
        self.container(name).stop(timeout=timeout)

    def start(self, name: str) -> None:
        container = self.container(name)
        container.reload()
        if container.status != "running":
            log.info("event=drill_start container=%s", name)
            container.start()

    def running(self, name: str) -> bool:
        container = self.container(name)
        container.reload()
        return container.status == "running"

    def exec(self, name: str, argv: list[str]) -> tuple[int, str]:
        done = self.container(name).exec_run(argv)
        output = (done.output or b"").decode("utf-8", errors="replace")
        log.info("event=drill_exec container=%s argv=%r rc=%s", name, " ".join(argv),
                 done.exit_code)
        return int(done.exit_code or 0), output

    def exec_checked(self, name: str, argv: list[str]) -> str:
        code, output = self.exec(name, argv)
        if code != 0:
            raise LabProblem(f"{name}: `{' '.join(argv)}` exited {code}: "
                             f"{output.strip().splitlines()[-1:] or ''}")
        return output

    # the agent process --------------------------------------------------------------------
    def agent_pid(self, node: str) -> int | None:
        """The running agent's pid inside the node's container; None when none runs."""
        code, out = self.exec(node, ["sh", "-c", f'pid=$(cat {AGENT_LOCK}) && '
                                     'kill -0 "$pid" && echo "$pid"'])
        return lock_pid(out) if code == 0 else None

    def signal_agent(self, node: str, pid: int) -> None:
        """SIGTERM to the agent process alone, as `systemctl restart` sends it: the lab's
        entrypoint starts the agent again (compose/base/bin/stackha-lab-entrypoint)."""
        log.info("event=drill_agent_restart container=%s pid=%d", node, pid)
        self.exec_checked(node, ["sh", "-c", 'kill -TERM "$1"', "sh", str(pid)])

    def keepalived_pid(self, node: str) -> int | None:
        """The oldest keepalived process in the node's container (its parent process)."""
        code, out = self.exec(node, ["pgrep", "-o", "-x", "keepalived"])
        return lock_pid(out) if code == 0 else None

    def vip_holders(self, nodes: list[str], vip: str) -> list[str]:
        """Which of ``nodes`` have ``vip`` on an interface (ip addr via docker exec)."""
        holders = []
        for node in nodes:
            code, out = self.exec(node, ["ip", "-4", "-o", "addr", "show"])
            if code == 0 and holds_address(out, vip):
                holders.append(node)
        return holders

    # network cut --------------------------------------------------------------------------
    def interface_of(self, node: str) -> str:
        found = self.spec.node(node)
        return found.interface if found else "eth0"

    def cut(self, node: str) -> None:
        """Drop every packet (IP and ARP) in and out of the node's interface, inside its
        container: the node keeps running and believes itself alone."""
        ruleset = cut_ruleset(self.interface_of(node))
        self.exec_checked(node, ["sh", "-c", 'printf "%s" "$1" | nft -f -', "sh", ruleset])

    def uncut(self, node: str) -> None:
        for family in ("inet", "arp"):
            self.exec(node, ["nft", "delete", "table", family, CUT_TABLE])

    # ZooKeeper ----------------------------------------------------------------------------
    def zk_modes(self, timeout: float = 1.0) -> dict[str, str | None]:
        """Each ensemble member's mode by address (``srvr``, a whitelisted 4lw command)."""
        modes: dict[str, str | None] = {}
        for host, port in self.zk_hosts:
            try:
                with socket.create_connection((host, port), timeout=timeout) as conn:
                    conn.sendall(b"srvr")
                    conn.settimeout(timeout)
                    chunks = []
                    while chunk := conn.recv(4096):
                        chunks.append(chunk)
                modes[host] = zk_mode(b"".join(chunks).decode("utf-8", errors="replace"))
            except OSError:
                modes[host] = None
        return modes

    def zk_services(self) -> list[str]:
        return [self.service_at(host) for host, _ in self.zk_hosts]

    def zk_leader(self) -> str:
        modes = self.zk_modes()
        leaders = [host for host, mode in modes.items() if mode == "leader"]
        if len(leaders) != 1:
            raise LabProblem(f"no single ZooKeeper leader (modes: {modes})")
        return self.service_at(leaders[0])

    # LVS ----------------------------------------------------------------------------------
    def own_address(self) -> str | None:
        """This machine's address towards the MySQL VIP (no packet is sent)."""
        if self.sql_vip is None:
            return None
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(self.sql_vip)
            return str(probe.getsockname()[0])

    def sessions_from_here(self) -> dict[str, int]:
        """Established connections from this machine to each realserver's MySQL port."""
        address = self.own_address()
        if address is None or self.sql_vip is None:
            return {}
        counts = {}
        for node in [rs for s in self.spec.lvs_services for rs in s.realservers]:
            code, output = self.exec(node, ["ss", "-Htn", "state", "established"])
            if code == 0:
                counts[node] = sessions_from(output, address, self.sql_vip[1])
        return counts

    def realserver_serving_us(self) -> str:
        """The realserver the directors send this machine's connections to (``sh`` and
        persistence hash the source address): one connection is held open to the VIP and the
        realserver listing it as established is the one."""
        if self.sql_vip is None:
            raise LabProblem("no LVS service in the spec")
        vip, port = self.sql_vip
        realservers = [rs for s in self.spec.lvs_services for rs in s.realservers]
        with socket.create_connection((vip, port), timeout=2.0) as conn:
            conn.settimeout(2.0)
            conn.recv(1)  # MySQL servers speak first: the handshake came from a realserver
            local, local_port = conn.getsockname()[:2]
            for node in realservers:
                code, output = self.exec(node, ["ss", "-Htn", "state", "established"])
                if code == 0 and connection_peer_present(output, local, local_port):
                    return node
        raise LabProblem(f"no realserver lists this machine's connection to {vip}:{port}")
