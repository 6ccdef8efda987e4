"""What the propagation and reload benchmarks share: a real ZooKeeper on loopback, a generated
stack spec, real ``stackha push-config`` and ``stackha agent`` processes, real nginx, and a
kazoo watch on the agents' status znodes.

Everything runs under one temporary directory; ``Lab.close`` stops every process it started
(agents, nginx, ZooKeeper) and removes the directory, also after an error.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.protocol.states import ZnodeStat

from stackha.model.status import parse_status
from stackha.store.registry import issue
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import BOOTSTRAP_CONF
from testkit.localzk import LocalZooKeeper, free_port
from testkit.signing import KeyPair, make_keypair

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_NGINX = ROOT / "configs" / "nginx"
CHROOT = "/stackha-bench"

def log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


class BenchZooKeeper(LocalZooKeeper):
    """The tests' ZooKeeper with ``maxClientCnxns=0``: every agent here connects from
    127.0.0.1 and ZooKeeper's default limit of 60 connections per client address would refuse
    the 61st (real hosts each connect from their own address)."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        with open(config, "a") as handle:
            handle.write("maxClientCnxns=0\n")
        return config


def example_nginx_conf(port: int, marker: str) -> str:
    """The example nginx.conf, listening on loopback ``port``, with ``/version`` answering
    ``marker`` (a change only a reload makes visible). ``user root`` because the temporary
    directory is root-only, as in the integration tests."""
    text = (EXAMPLE_NGINX / "nginx.conf").read_text()
    text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;")
    text = text.replace("        location = /healthz {",
                        f'        location = /version {{\n            return 200 "{marker}\\n";'
                        "\n        }\n\n        location = /healthz {", 1)
    if f'"{marker}\\n"' not in text or f"127.0.0.1:{port}" not in text:
        raise RuntimeError("configs/nginx/nginx.conf changed shape: adapt bench/lab.py")
    return "user root;\n" + text


def node_address(index: int) -> str:
    """Loopback addresses for the spec's nodes (nothing binds them without VRRP/LVS)."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}/8"


@dataclass
class Agent:
    node: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Nginx:
    prefix: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    def command(self, *extra: str) -> list[str]:
        return ["nginx", "-p", f"{self.prefix}/", "-c", str(self.conf), *extra]

    def reload_command(self) -> str:
        return " ".join(self.command("-s", "reload"))


@dataclass
class Push:
    number: int
    wall_seconds: float   # the `stackha push-config` process, start to exit
    started: float        # time.time() at its start
    commit_ms: int        # ZooKeeper's mtime of config/current after the push


@dataclass
class Lab:
    root: Path
    cluster: str = "bench"
    zk: BenchZooKeeper | None = None
    agents: list[Agent] = field(default_factory=list)
    nginxes: list[Nginx] = field(default_factory=list)
    watch: StatusWatch | None = None
    keys: KeyPair | None = None

    # set-up -------------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str) -> Lab:
        lab = cls(Path(tempfile.mkdtemp(prefix=f"stackha-bench-{name}-")))
        try:
            lab.zk = BenchZooKeeper(lab.root / "zk")
            lab.zk.start()
            _wait_serving(lab.zk.port)
            lab.keys = make_keypair(lab.root / "keys")
            for who in ("coordinator", "agent"):
                path = lab.root / f"{who}.credential"
                path.write_text(f"bench-{who}:{secrets.token_hex(12)}\n")
                path.chmod(0o600)
        except BaseException:
            lab.close()
            raise
        return lab

    @property
    def configs(self) -> Path:
        return self.root / "configs"

    @property
    def hosts(self) -> str:
        assert self.zk is not None
        return self.zk.hosts

    @property
    def registry(self) -> Path:
        return self.root / "agents.registry"

    def credential_file(self, node: str) -> Path:
        return self.root / node / "agent.credential"

    def credential(self, who: str) -> str:
        return (self.root / f"{who}.credential").read_text().strip()

    def write_spec(self, nodes: list[tuple[str, str]], health_port: int,
                   directory: Path | None = None) -> None:
        """``nodes``: (name, role). The spec of a loopback-only stack without VRRP or LVS."""
        directory = directory or self.configs
        directory.mkdir(parents=True, exist_ok=True)
        for name, _role in nodes:  # one identity per node, as `stackha credentials issue`
            if not self.credential_file(name).exists():
                issue(name, self.registry, self.credential_file(name))
        lines = [
            f"cluster: {self.cluster}",
            "zookeeper:",
            f'  hosts: "{self.hosts}"',
            f"  chroot: {CHROOT}",
            "  session_timeout: 10",
            f'  coordinator_auth: {{file: "{self.root / "coordinator.credential"}"}}',
            f'  agent_auth: {{file: "{self.root / "agent.credential"}"}}',
            "nodes:",
            *(f"  - {{name: {name}, address: {node_address(i)}, interface: lo, roles: [{role}]}}"
              for i, (name, role) in enumerate(nodes)),
            "health_checks:",
            f'  nginx: {{url: "http://127.0.0.1:{health_port}/healthz", interval: 1, '
            "timeout: 0.5, fall: 2, rise: 2}",
        ]
        (directory / "stackha.yaml").write_text("\n".join(lines) + "\n")

    def write_nginx_files(self, port: int, marker: str, page: str) -> None:
        nginx = self.configs / "nginx"
        (nginx / "html").mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE_NGINX / "mime.types", nginx / "mime.types")
        (nginx / "nginx.conf").write_text(example_nginx_conf(port, marker))
        (nginx / "html" / "index.html").write_text(page)

    # processes ----------------------------------------------------------------------------
    def push(self, message: str, *extra: str) -> Push:
        """The real `stackha push-config` as its own process (validation with nginx -t,
        connect, one transaction); the commit time is ZooKeeper's mtime of config/current."""
        assert self.keys is not None
        started, clock = time.time(), time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "stackha", "push-config", "--configs", str(self.configs),
             "--zk", self.hosts, "-m", message, "--signing-key", str(self.keys.private),
             *extra],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
            env={**os.environ, "STACKHA_AGENT_REGISTRY": str(self.registry)})
        wall = time.monotonic() - clock
        found = re.search(r"^published version (\d+)", done.stdout, re.MULTILINE)
        if done.returncode != 0 or not found:
            raise RuntimeError(f"push-config failed ({done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-2000:]}")
        number = int(found.group(1))
        assert self.watch is not None
        current, commit_ms = self.watch.current()
        if current != number:
            raise RuntimeError(f"pushed version {number} but current is {current}")
        return Push(number, wall, started, commit_ms)

    def start_nginx(self, name: str, port: int) -> Nginx:
        """A real nginx in the foreground (its own process group, so nothing outlives us)."""
        prefix = self.root / name / "nginx"
        (prefix / "logs").mkdir(parents=True, exist_ok=True)
        (prefix / "nginx.conf").write_text(BOOTSTRAP_CONF.format(port=port))
        command = ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"),
                   "-g", "daemon off;"]  # the same as Nginx.command, in the foreground
        with open(self.root / name / "nginx.stderr", "ab") as err:
            process = subprocess.Popen(command, stdout=err, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        nginx = Nginx(prefix, port, process)
        self.nginxes.append(nginx)
        deadline = time.monotonic() + 10
        while not _answers(port):
            if nginx.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nginx on port {port} did not start, see "
                                   f"{self.root / name / 'nginx.stderr'}")
            time.sleep(0.05)
        return nginx

    def start_agent(self, node: str, agent_configs: Path, nginx_dir: Path, reload: str,
                    heartbeat: float) -> Agent:
        directory = self.root / node
        directory.mkdir(parents=True, exist_ok=True)
        log_path = directory / "agent.log"
        assert self.keys is not None
        with open(log_path, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "stackha", "agent", "--node", node,
                 "--credential-file", str(self.credential_file(node)),
                 "--configs", str(agent_configs), "--zk", self.hosts,
                 "--state-dir", str(directory / "state"),
                 "--nginx-dir", str(nginx_dir), "--nginx-reload", reload,
                 "--heartbeat", str(heartbeat), "--health-wait", "5",
                 "--trusted-key", str(self.keys.public)],
                stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        agent = Agent(node, process, log_path)
        self.agents.append(agent)
        return agent

    def watch_status(self, nodes: list[str]) -> StatusWatch:
        if self.watch is None:
            store = ZooKeeperStore(self.hosts, CHROOT, self.cluster,
                                   Identity.parse(self.credential("coordinator"), "bench"))
            store.start()
            self.watch = StatusWatch(store)
        self.watch.add(nodes)
        return self.watch

    def check_agents_alive(self) -> None:
        dead = [a for a in self.agents if a.process.poll() is not None]
        if dead:
            raise RuntimeError(f"agent {dead[0].node} exited ({dead[0].process.returncode}):\n"
                               f"{dead[0].tail()}")

    # tear-down ----------------------------------------------------------------------------
    def stop_agents(self) -> None:
        for agent in self.agents:
            if agent.process.poll() is None:
                agent.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for agent in self.agents:
            try:
                agent.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            _kill_group(agent.process)  # SIGKILL what is left, nginx -t/reload children too
        self.agents = []

    def close(self) -> None:
        try:
            self.stop_agents()
            if self.watch is not None:
                self.watch.close()
                self.watch = None
            for nginx in self.nginxes:
                if nginx.process.poll() is None:
                    _signal_group(nginx.process, signal.SIGQUIT)
                    try:
                        nginx.process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                _kill_group(nginx.process)
            self.nginxes = []
            if self.zk is not None:
                self.zk.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(process.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group the process leads (it was started in a new session)."""
    _signal_group(process, signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def _wait_serving(port: int, timeout: float = 30.0) -> None:
    """`ruok` answers before the server takes sessions (the first client would be dropped
    and reconnect): wait until `srvr` reports a serving server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"srvr")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
            if b"Mode:" in answer:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"ZooKeeper on port {port} is not serving after {timeout:.0f} s")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class StatusWatch:
    """A kazoo DataWatch on each agent's status znode.

    For every (node, applied version) it keeps ZooKeeper's mtime of the first status write
    that reported it: the server's own clock, so the watch's delivery delay does not count.
    The agents run with a long heartbeat, so that write is the apply report itself.
    """

    def __init__(self, store: ZooKeeperStore):
        self.store = store
        self.cond = threading.Condition()
        self.applied: dict[tuple[str, int], int] = {}
        self.errors: dict[str, str] = {}
        self.watched: set[str] = set()

    def add(self, nodes: list[str]) -> None:
        for node in nodes:
            if node not in self.watched:
                self.watched.add(node)
                self.store.client.DataWatch(self.store.report_path(node),
                                            functools.partial(self._changed, node))

    def _changed(self, node: str, data: bytes | None, stat: ZnodeStat | None,
                 event: object = None) -> None:
        if data is None or stat is None:
            return
        status = parse_status(node, data)
        if status is None:
            return
        with self.cond:
            if status.applied_version is not None:
                self.applied.setdefault((node, status.applied_version), int(stat.mtime))
            if status.last_error:
                self.errors[node] = status.last_error
            self.cond.notify_all()

    def current(self) -> tuple[int | None, int]:
        data, stat = self.store.client.get(self.store.current_path)
        text = data.decode().strip()
        return (int(text) if text.isdigit() else None), int(stat.mtime)

    def wait_applied(self, number: int, nodes: list[str], timeout: float, lab: Lab
                     ) -> dict[str, int]:
        """ZooKeeper mtime (ms) of each node's report of ``number``; raises if one refused it."""
        def done() -> bool:
            for node, error in self.errors.items():
                if f"version {number} " in error:
                    raise RuntimeError(f"{node}: {error}")
            return all((n, number) in self.applied for n in nodes)

        self._wait(done, timeout, lab, lambda: f"version {number} on "
                   f"{[n for n in nodes if (n, number) not in self.applied][:5]}")
        return {n: self.applied[(n, number)] for n in nodes}

    def _wait(self, predicate: Callable[[], bool], timeout: float, lab: Lab,
              what: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what()}")
                self.cond.wait(min(left, 1.0))
                lab.check_agents_alive()

    def close(self) -> None:
        self.store.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its waited-for children (utime + stime + cutime + cstime
    from /proc/PID/stat): an agent's `nginx -t` and reload commands count as its own."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def vm_rss_mib(pid: int) -> float:
    """Resident memory of one process (VmRSS in /proc/PID/status), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def pss_mib(pid: int) -> float:
    """Proportional set size of one process (Pss in /proc/PID/smaps_rollup), MiB: pages it
    shares (the interpreter and libraries, the same image files in every lab container) are
    divided among the processes that map them."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no Pss for pid {pid}")


__all__ = ["BenchZooKeeper", "Lab", "StatusWatch", "cpu_seconds", "free_port", "log",
           "pss_mib", "vm_rss_mib"]
