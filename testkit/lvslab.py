"""An LVS-DR lab: a client, two directors (VRRP through the agent's keepalived) and three
MyCat realservers, each in its own namespace on the netlab bridge. Every node runs the agent
with ``--lvs``; each realserver runs a tiny TCP server answering with its own name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from stackha.lvs.node import DIRECTOR_STATE
from stackha.lvs.status import parse_live_table
from testkit import EXAMPLE_CONFIGS, write_credential
from testkit.netlab import (
    ZOOKEEPER_SECTION,
    Host,
    NetLab,
    in_ns,
    keepalived_pids,
    kill_at_once,
    run,
    wait_until,
)
from testkit.signing import harness_keys

VIP = "10.99.0.200"
PORT = 8066
CHECK_INTERVAL = 0.3
CHECK_TIMEOUT = 0.3
REALSERVERS = ("mycat1", "mycat2", "mycat3")
DIRECTORS = ("director1", "director2")

SPEC = """
cluster: lvs
""" + ZOOKEEPER_SECTION + """nodes:
  - {{name: director1, address: 10.99.0.21/24, interface: eth0, roles: [director]}}
  - {{name: director2, address: 10.99.0.22/24, interface: eth0, roles: [director]}}
  - {{name: mycat1, address: 10.99.0.31/24, interface: eth0, roles: [mycat]}}
  - {{name: mycat2, address: 10.99.0.32/24, interface: eth0, roles: [mycat]}}
  - {{name: mycat3, address: 10.99.0.33/24, interface: eth0, roles: [mycat]}}
vrrp_groups:
  - name: mycat
    virtual_router_id: 52
    interface: eth0
    vips: [{vip}/24]
    members: {{director1: 150, director2: 100}}
    advert_int: 0.1
lvs_services:
  - vip: {vip}
    port: {port}
    scheduler: {scheduler}
    persistence_timeout: {persistence}
    engine: nftables
    check: tcp
    check_interval: {interval}
    check_timeout: {timeout}
    realservers: {realservers}
"""

NAME_SERVER = """
import socket, sys
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(sys.argv[2])))
server.listen(128)
while True:
    conn, _ = server.accept()
    try:
        conn.sendall(sys.argv[1].encode() + b"\\n")
    except OSError:
        pass
    conn.close()
"""

CLIENT = """
import socket, sys
vip, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
for _ in range(count):
    try:
        with socket.create_connection((vip, port), timeout=timeout) as conn:
            print(conn.recv(100).decode().strip() or "EMPTY", flush=True)
    except OSError as exc:
        print("ERR", type(exc).__name__, flush=True)
"""


class LvsLab:
    def __init__(self, root: Path):
        self.root = root
        self.net = NetLab(root)
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        self.servers: dict[str, subprocess.Popen[bytes]] = {}

    # setup --------------------------------------------------------------------------------
    def setup(self) -> None:
        self.net.create()
        # The bridge namespace is ours, but say it explicitly: no bridge netfilter in it.
        run("ip", "netns", "exec", self.net.lan, "sh", "-c",
            "for f in /proc/sys/net/bridge/bridge-nf-call-*; do [ -e $f ] && echo 0 > $f; "
            "done; true")
        self.client = self.net.add_host("client", 50)
        self.hosts: dict[str, Host] = {}
        for octet, name in ((21, "director1"), (22, "director2"), (31, "mycat1"),
                            (32, "mycat2"), (33, "mycat3")):
            self.hosts[name] = self.net.add_host(name, octet)
        zk = self.net.start_zookeeper()
        self.configs = self.root / "configs"
        shutil.copytree(EXAMPLE_CONFIGS / "mycat", self.configs / "mycat")
        self.push(persistence=0)
        for name in REALSERVERS:
            self.start_server(name)
        for name in (*DIRECTORS, *REALSERVERS):
            self.start_agent(name)
        del zk

    def push(self, persistence: int, scheduler: str = "rr",
             realservers: str = "[mycat1, mycat2, mycat3]") -> None:
        (self.configs / "stackha.yaml").write_text(SPEC.format(
            zk=self.net.zookeeper.hosts, vip=VIP, port=PORT, persistence=persistence,
            interval=CHECK_INTERVAL, timeout=CHECK_TIMEOUT, scheduler=scheduler,
            realservers=realservers))
        self.net.stackha("push-config", "--configs", str(self.configs),
                         "--signing-key", str(harness_keys().private))

    def node_dir(self, name: str) -> Path:
        return self.root / name

    def start_agent(self, name: str) -> None:
        base = self.node_dir(name)
        command = [sys.executable, "-m", "stackha", "agent", "--node", name,
                   "--credential-file", str(write_credential(base / "agent.credential", name)),
                   "--configs", str(self.configs), "--zk", self.net.zookeeper.hosts,
                   "--state-dir", str(base / "state"), "--heartbeat", "0.5", "--lvs",
                   "--trusted-key", str(harness_keys().public)]
        if name in DIRECTORS:
            command += ["--run-dir", str(base / "run"), "--keepalived-dir",
                        str(base / "keepalived")]
        base.mkdir(parents=True, exist_ok=True)
        self.agents[name] = self.net.spawn(self.hosts[name].ns, command, base / "agent.log")

    def kill_agent(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.agents.pop(name)
        process.send_signal(sig)
        process.wait(timeout=20)

    def start_server(self, name: str) -> None:
        self.node_dir(name).mkdir(parents=True, exist_ok=True)
        self.servers[name] = self.net.spawn(
            self.hosts[name].ns, [sys.executable, "-c", NAME_SERVER, name, str(PORT)],
            self.node_dir(name) / "server.log")

    def stop_server(self, name: str) -> None:
        process = self.servers.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def kill_keepalived(self, name: str) -> None:
        kill_at_once(keepalived_pids(self.hosts[name]))

    def teardown(self) -> None:
        for process in self.agents.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.agents.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        self.net.destroy()

    # observations -------------------------------------------------------------------------
    def holder(self) -> str | None:
        """The one director holding the VIP; None when none or several do (a VRRP child
        restarted by keepalived leaves its VIP behind until the next election settles)."""
        holders = [d for d in DIRECTORS if VIP in self.hosts[d].addresses()]
        return holders[0] if len(holders) == 1 else None

    def packets(self) -> int:
        """Packets the ingress rules of both directors forwarded so far."""
        return sum(rule.packets for d in DIRECTORS if (rule := self.live(d)))

    def mac(self, name: str) -> str:
        return self.hosts[name].mac().lower()

    def live(self, director: str):
        done = in_ns(self.hosts[director].ns, "nft", "-j", "list", "table", "netdev",
                     "stackha_lvs", check=False)
        if done.returncode != 0:
            return None
        rules = parse_live_table(json.loads(done.stdout))
        return rules[0] if rules else None

    def forwarded_macs(self, director: str) -> set[str]:
        rule = self.live(director)
        return set(rule.slots) if rule else set()

    def forwards_to(self, director: str, names: tuple[str, ...]) -> bool:
        return self.forwarded_macs(director) == {self.mac(n) for n in names}

    def director_state(self, director: str) -> dict:
        """The one service of the director's state file (what `stackha lvs status` reads)."""
        path = self.node_dir(director) / "state" / DIRECTOR_STATE
        return json.loads(path.read_text())["services"][0]

    def judged(self, director: str) -> dict[str, bool]:
        """Realserver name: healthy, as the director's checks say (not what it forwards to)."""
        return {row["name"]: row["healthy"]
                for row in self.director_state(director)["realservers"]}

    def connect(self, count: int = 20, timeout: float = 1.0) -> list[str]:
        done = in_ns(self.client.ns, sys.executable, "-c", CLIENT, VIP, str(PORT), str(count),
                     str(timeout), timeout=count * timeout + 30)
        return done.stdout.split("\n")[:-1]

    def arp_replies(self, count: int = 2) -> set[str]:
        """MACs answering an ARP request for the VIP from the client."""
        done = in_ns(self.client.ns, "arping", "-c", str(count), "-w", "3", "-i", "eth0", VIP,
                     check=False)
        return {m.lower() for m in re.findall(r"from ((?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2})",
                                             done.stdout)}

    def stackha(self, name: str, *args: str, check: bool = False):
        return in_ns(self.hosts[name].ns, sys.executable, "-m", "stackha", *args, check=check)

    def log(self, name: str) -> str:
        return (self.node_dir(name) / "agent.log").read_text()


class Capture:
    """tcpdump in a namespace, printing link-level headers, until stopped."""

    def __init__(self, host: Host, expression: str):
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", host.ns, "tcpdump", "-n", "-e", "-l", "-i", "eth0",
             expression], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: self._listening(), 10, what="tcpdump to listen")

    def _listening(self) -> bool:
        line = self.process.stderr.readline() if self.process.stderr else ""
        return "listening on" in line

    def stop(self) -> list[str]:
        time.sleep(0.3)
        self.process.send_signal(signal.SIGINT)
        out, _ = self.process.communicate(timeout=10)
        return [line for line in out.splitlines() if line.strip()]


def source_macs(lines: list[str]) -> set[str]:
    """tcpdump -e lines start with ``TIME SRC_MAC > DST_MAC``."""
    found = set()
    for line in lines:
        match = re.match(r"\S+ ((?:[0-9a-f]{2}:){5}[0-9a-f]{2}) > ", line)
        if match:
            found.add(match.group(1))
    return found
