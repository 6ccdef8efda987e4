"""Hosts on one machine: network namespaces joined by a bridge that lives in its own namespace.

The bridge's namespace has no firewall rules, so dockerd's FORWARD DROP and br_netfilter on
the host do not touch it, and nothing here is reachable from or routed to the host.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from testkit.localzk import LocalZooKeeper

SUBNET = "10.99.0"
LAN_ADDRESS = f"{SUBNET}.1"


# The zookeeper section of every lab's stackha.yaml (a str.format template: {zk} = hosts).
ZOOKEEPER_SECTION = """zookeeper:
  hosts: "{zk}"
  coordinator_auth: {{env: STACKHA_COORDINATOR_CREDENTIAL}}
  agent_auth: {{env: STACKHA_AGENT_CREDENTIAL}}
"""


def run(*command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, check=check)


def in_ns(ns: str, *command: str, check: bool = True, timeout: float = 30
          ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", ns, *command], capture_output=True,
                          text=True, check=check, timeout=timeout)


@dataclass
class Host:
    name: str
    ns: str
    address: str

    def mac(self) -> str:
        link = json.loads(run("ip", "-n", self.ns, "-j", "link", "show", "eth0").stdout)
        return link[0]["address"]

    def is_up(self) -> bool:
        link = json.loads(run("ip", "-n", self.ns, "-j", "link", "show", "eth0").stdout)
        return "UP" in link[0]["flags"]

    def addresses(self) -> list[str]:
        data = json.loads(run("ip", "-n", self.ns, "-j", "addr", "show", "eth0").stdout)
        return [a["local"] for a in data[0].get("addr_info", []) if a["family"] == "inet"]

    def neighbour_mac(self, ip: str) -> str | None:
        data = json.loads(run("ip", "-n", self.ns, "-j", "neigh", "show", ip).stdout or "[]")
        return data[0].get("lladdr") if data else None


@dataclass
class NetLab:
    root: Path
    tag: str = field(default_factory=lambda: "sh" + secrets.token_hex(2))
    hosts: dict[str, Host] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    zookeeper: LocalZooKeeper | None = None

    @property
    def lan(self) -> str:
        return f"{self.tag}-lan"

    def create(self) -> None:
        run("ip", "netns", "add", self.lan)
        run("ip", "-n", self.lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.lan, "addr", "add", f"{LAN_ADDRESS}/24", "dev", "br0")
        run("ip", "-n", self.lan, "link", "set", "br0", "up")
        run("ip", "-n", self.lan, "link", "set", "lo", "up")

    def add_host(self, name: str, last_octet: int) -> Host:
        ns = f"{self.tag}-{name}"
        port = f"v{self.tag[2:]}{name}"[:15]
        run("ip", "netns", "add", ns)
        run("ip", "-n", self.lan, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        run("ip", "-n", self.lan, "link", "set", port, "master", "br0", "up")
        address = f"{SUBNET}.{last_octet}"
        run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0")
        run("ip", "-n", ns, "link", "set", "eth0", "up")
        run("ip", "-n", ns, "link", "set", "lo", "up")
        host = Host(name, ns, address)
        self.hosts[name] = host
        return host

    def start_zookeeper(self) -> LocalZooKeeper:
        self.zookeeper = LocalZooKeeper(self.root / "zk", address=LAN_ADDRESS, netns=self.lan)
        self.zookeeper.start()
        return self.zookeeper

    def spawn(self, ns: str, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        handle = open(log, "ab")
        process = subprocess.Popen(["ip", "netns", "exec", ns, *command], stdout=handle,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def stackha(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the stackha CLI inside the lan namespace, where ZooKeeper is."""
        return in_ns(self.lan, sys.executable, "-m", "stackha", *args, check=check)

    def destroy(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait()
        if self.zookeeper is not None:
            self.zookeeper.stop()
        # Whatever still runs inside our namespaces (nginx, keepalived) goes with them.
        for ns in [*(h.ns for h in self.hosts.values()), self.lan]:
            pids = run("ip", "netns", "pids", ns, check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(0.05)
            run("ip", "netns", "del", ns, check=False)


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def http_get(host: Host, url: str, timeout: float = 1.0) -> str | None:
    done = in_ns(host.ns, sys.executable, "-c",
                 "import sys,urllib.request\n"
                 "print(urllib.request.urlopen(sys.argv[1],timeout=float(sys.argv[2]))"
                 ".read().decode(),end='')", url, str(timeout), check=False)
    return done.stdout if done.returncode == 0 else None


def keepalived_main_pids(host: Host) -> set[int]:
    """The keepalived parent processes: its children come and go (the VRRP child is started
    after the parent, and a child forked for a check script lives until its exec)."""
    pids = set(keepalived_pids(host))

    def parent(pid: int) -> int | None:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("PPid:"):
                    return int(line.split()[1])
        except OSError:
            return None
        return None

    return {pid for pid in pids if parent(pid) not in pids}


def keepalived_pids(host: Host) -> list[int]:
    pids = run("ip", "netns", "pids", host.ns, check=False).stdout.split()
    found = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"keepalived") and re.search(
                rb"--dont-fork", b" ".join(cmdline)):
            found.append(int(pid))
    return found


def kill_at_once(pids: list[int]) -> None:
    """SIGKILL a process tree as a crash would: all of it at the same instant.

    Killed one by one, keepalived's VRRP child outlives its parent by a moment, and the
    parent's death makes the child (realtime, so it runs first) stop gracefully: a priority-0
    advert and its VIPs removed, which is no crash at all. Stopped first, nobody can react."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
