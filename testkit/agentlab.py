"""A node on loopback for agent tests: a real nginx under a prefix, and the agent process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from stackha.model.spec import parse_spec
from stackha.store.connect import tree_access
from stackha.store.registry import read_registry, registry_path
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import BOOTSTRAP_CONF, COORDINATOR, agent_credential
from testkit.localzk import free_port
from testkit.signing import harness_keys


def adapt_configs_for_loopback(configs: Path, port: int) -> None:
    """The example nginx.conf listens on :80 as an unprivileged worker; tests use a free port
    and files under a root-only temporary directory."""
    conf = configs / "nginx/nginx.conf"
    text = conf.read_text().replace("listen 80 default_server;",
                                    f"listen 127.0.0.1:{port} default_server;")
    conf.write_text("user root;\n" + text)
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace('url: "http://127.0.0.1/healthz"',
                                             f'url: "http://127.0.0.1:{port}/healthz"'))


def fetch(url: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.read().decode()
    except OSError:
        return None


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


@dataclass
class NginxNode:
    """nginx running from ``prefix`` (the agent's target), plus the agent for it."""

    root: Path
    configs: Path
    zk_hosts: str
    node: str = "nginx1"
    port: int = field(default_factory=free_port)
    agent: subprocess.Popen[bytes] | None = None

    @property
    def prefix(self) -> Path:
        return self.root / "nginx"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def nginx_command(self, *extra: str) -> list[str]:
        return ["nginx", "-p", f"{self.prefix}/", "-c", str(self.prefix / "nginx.conf"), *extra]

    def start_nginx(self) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        (self.prefix / "logs").mkdir(exist_ok=True)
        (self.prefix / "nginx.conf").write_text(BOOTSTRAP_CONF.format(port=self.port))
        subprocess.run(self.nginx_command(), check=True)
        wait_for(lambda: fetch(self.url), 10, "nginx to answer")

    def stop_nginx(self) -> None:
        pid_file = self.prefix / "nginx.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGQUIT)
            except (ProcessLookupError, ValueError):
                pass

    def start_agent(self, *extra: str) -> None:
        """The agent pins the harnesses' public key unless ``extra`` says how to trust."""
        if "--allow-unsigned" not in extra and "--trusted-key" not in extra:
            extra = ("--trusted-key", str(harness_keys().public), *extra)
        log = open(self.root / "agent.log", "ab")
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "stackha", "agent", "--node", self.node,
             "--configs", str(self.configs), "--zk", self.zk_hosts,
             "--state-dir", str(self.root / "state"),
             "--nginx-dir", str(self.prefix),
             "--nginx-reload", " ".join(self.nginx_command("-s", "reload")),
             "--heartbeat", "0.5", "--health-wait", "3", *extra],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "STACKHA_AGENT_CREDENTIAL": agent_credential(self.node)})

    def stop_agent(self, sig: int = signal.SIGTERM) -> int:
        assert self.agent is not None
        self.agent.send_signal(sig)
        code = self.agent.wait(timeout=20)
        self.agent = None
        return code

    def agent_log(self) -> str:
        path = self.root / "agent.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.kill()
            self.agent.wait()
        self.stop_nginx()


def coordinator_store(configs: Path, zk_hosts: str) -> ZooKeeperStore:
    """The coordinator's store, with the agent registry when the environment names one
    (publishing needs it: the role parts' ACLs name the nodes)."""
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    store = ZooKeeperStore(zk_hosts, spec.zookeeper.chroot, spec.cluster,
                           Identity.parse(COORDINATOR, "test"))
    registry = registry_path(None)
    if registry is not None:
        assert store.identity is not None
        store.access = tree_access(spec, store.identity, read_registry(registry))
    store.start()
    return store


def node_store(configs: Path, zk_hosts: str, node: str) -> ZooKeeperStore:
    """A store with ``node``'s own credential, as that node's agent has it."""
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    store = ZooKeeperStore(zk_hosts, spec.zookeeper.chroot, spec.cluster,
                           Identity.parse(agent_credential(node), "test"))
    store.start()
    return store


def node_status(configs: Path, zk_hosts: str, node: str) -> dict | None:
    store = coordinator_store(configs, zk_hosts)
    try:
        status = store.statuses().get(node)
    finally:
        store.close()
    return json.loads(status.to_json()) if status else None
