"""Two nginx nodes running real stackha agents (and so real keepalived) and a client, each in
its own network namespace on one bridge, with ZooKeeper in the bridge's namespace.

Shared by tests/integration/test_vrrp.py and the failover benchmark (bench/failover.py).
Everything stays inside namespaces the lab creates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from testkit import write_credential
from testkit.netlab import (
    ZOOKEEPER_SECTION,
    Host,
    NetLab,
    http_get,
    in_ns,
    keepalived_pids,
    kill_at_once,
    run,
)
from testkit.signing import harness_keys

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIGS = ROOT / "configs"
VIP = "10.99.0.100"
CHECK_WRAPPER = Path("/usr/local/libexec/stackha-test/stackha")
# The agents' HTTP endpoints, on each node namespace's own loopback.
ENDPOINT_PORT = 9145

# The group and the nginx check carry no timers: the lab runs stackha's defaults
# (spec.py) unless a caller overrides them (the benchmark's classic-timer runs do).
SPEC = """
cluster: vrrp
""" + ZOOKEEPER_SECTION + """nodes:
  - {{name: nginx1, address: 10.99.0.11/24, interface: eth0, roles: [nginx]}}
  - {{name: nginx2, address: 10.99.0.12/24, interface: eth0, roles: [nginx]}}
vrrp_groups:
  - name: web
    virtual_router_id: 51
    interface: eth0
    vips: [{vip}/24]
    members: {{nginx1: 150, nginx2: 100}}
    preempt: {preempt}
    checks: [nginx]
{group_extra}health_checks:
  nginx: {{url: "http://127.0.0.1/healthz"{check_extra}}}
"""

BOOTSTRAP = """
user root;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http { access_log off; server { listen 80; location / { return 200 "bootstrap\\n"; } } }
"""


def lab_spec(zk_hosts: str, preempt: bool = True, group: Mapping[str, object] | None = None,
             check: Mapping[str, object] | None = None) -> str:
    """The lab's stackha.yaml; ``group`` / ``check`` add or override keys of the web group
    and of the nginx health check (values are written as JSON, which YAML reads)."""
    group_extra = "".join(f"    {key}: {json.dumps(value)}\n"
                          for key, value in (group or {}).items())
    check_extra = "".join(f", {key}: {json.dumps(value)}" for key, value in (check or {}).items())
    return SPEC.format(zk=zk_hosts, vip=VIP, preempt="true" if preempt else "false",
                       group_extra=group_extra, check_extra=check_extra)


def check_wrapper() -> str:
    """keepalived refuses check scripts on a path a non-root user could write (a checkout
    under /tmp, say), so the lab runs `stackha check` through a root-owned wrapper."""
    CHECK_WRAPPER.parent.mkdir(parents=True, exist_ok=True)
    CHECK_WRAPPER.write_text(f'#!/bin/sh\nexec {sys.executable} -m stackha "$@"\n')
    CHECK_WRAPPER.chmod(0o755)
    return str(CHECK_WRAPPER)


class VrrpLab:
    def __init__(self, root: Path, preempt: bool = True,
                 group: Mapping[str, object] | None = None,
                 check: Mapping[str, object] | None = None, heartbeat: float = 0.5):
        self.root = root
        self.heartbeat = heartbeat
        self.net = NetLab(root)
        self.preempt = preempt
        self.group = dict(group or {})
        self.check = dict(check or {})
        self.agents: dict[str, subprocess.Popen[bytes]] = {}

    def setup(self) -> None:
        self.net.create()
        self.n1 = self.net.add_host("nginx1", 11)
        self.n2 = self.net.add_host("nginx2", 12)
        self.client = self.net.add_host("client", 50)
        zk = self.net.start_zookeeper()
        configs = self.root / "configs"
        shutil.copytree(EXAMPLE_CONFIGS / "nginx", configs / "nginx")
        conf = configs / "nginx/nginx.conf"
        conf.write_text("user root;\n" + conf.read_text())
        (configs / "stackha.yaml").write_text(
            lab_spec(zk.hosts, self.preempt, self.group, self.check))
        self.configs = configs
        self.net.stackha("push-config", "--configs", str(configs),
                         "--signing-key", str(harness_keys().private))
        self.wrapper = check_wrapper()
        for host in (self.n1, self.n2):
            self.start_nginx(host)
            self.start_agent(host)

    @property
    def nodes(self) -> tuple[Host, Host]:
        return self.n1, self.n2

    def node_dir(self, host: Host) -> Path:
        return self.root / host.name

    def nginx_cmd(self, host: Host, *extra: str) -> list[str]:
        prefix = self.node_dir(host) / "nginx"
        return ["nginx", "-p", f"{prefix}/", "-c", str(prefix / "nginx.conf"), *extra]

    def start_nginx(self, host: Host) -> None:
        prefix = self.node_dir(host) / "nginx"
        prefix.mkdir(parents=True, exist_ok=True)
        (prefix / "logs").mkdir(exist_ok=True)
        if not (prefix / "nginx.conf").exists():
            (prefix / "nginx.conf").write_text(BOOTSTRAP)
        # nginx daemonizes and keeps stderr open: a captured pipe would never reach EOF.
        with open(self.node_dir(host) / "nginx.log", "ab") as log:
            subprocess.run(["ip", "netns", "exec", host.ns, *self.nginx_cmd(host)],
                           stdout=log, stderr=subprocess.STDOUT, check=True, timeout=30)

    def stop_nginx(self, host: Host) -> None:
        run("ip", "netns", "exec", host.ns, *self.nginx_cmd(host, "-s", "stop"))

    def kill_nginx(self, host: Host) -> None:
        """nginx dies (the host lives): SIGKILL of its master and every worker at once (the
        workers of a killed master would otherwise go on serving)."""
        pids = []
        for pid in run("ip", "netns", "pids", host.ns, check=False).stdout.split():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"nginx:"):
                    pids.append(int(pid))
            except OSError:
                continue
        kill_at_once(pids)

    def agent_command(self, host: Host) -> list[str]:
        base = self.node_dir(host)
        return [sys.executable, "-m", "stackha", "agent", "--node", host.name,
                "--credential-file", str(write_credential(base / "agent.credential",
                                                          host.name)),
                "--configs", str(self.configs), "--zk", self.net.zookeeper.hosts,
                "--state-dir", str(base / "state"), "--run-dir", str(base / "run"),
                "--nginx-dir", str(base / "nginx"),
                "--nginx-reload", " ".join(self.nginx_cmd(host, "-s", "reload")),
                "--keepalived-dir", str(base / "keepalived"),
                "--stackha-command", self.wrapper, "--heartbeat", str(self.heartbeat),
                "--trusted-key", str(harness_keys().public),
                "--metrics-port", str(ENDPOINT_PORT)]

    def start_agent(self, host: Host) -> None:
        self.agents[host.name] = self.net.spawn(host.ns, self.agent_command(host),
                                                self.node_dir(host) / "agent.log")

    def stop_node(self, host: Host) -> None:
        """A planned stop of the node: the agent stops (leaving keepalived running, as on a
        restart), then `stackha agent --stop-services` stops keepalived with SIGTERM, so the
        master advertises priority 0 and its backup takes over at once."""
        self.kill_agent(host, signal.SIGTERM)
        done = in_ns(host.ns, *self.agent_command(host), "--stop-services")
        with open(self.node_dir(host) / "agent.log", "a") as log:
            log.write(done.stdout + done.stderr)

    def endpoint(self, host: Host, path: str) -> int | None:
        """The HTTP status of the node's agent endpoint ``path`` (None: no answer)."""
        done = in_ns(host.ns, sys.executable, "-c",
                     "import sys,urllib.request,urllib.error\n"
                     "try:\n"
                     " print(urllib.request.urlopen(sys.argv[1],timeout=2).status)\n"
                     "except urllib.error.HTTPError as e:\n"
                     " print(e.code)\n",
                     f"http://127.0.0.1:{ENDPOINT_PORT}{path}", check=False)
        return int(done.stdout) if done.returncode == 0 and done.stdout.strip() else None

    def kill_agent(self, host: Host, sig: int = signal.SIGKILL) -> None:
        process = self.agents.pop(host.name)
        process.send_signal(sig)
        process.wait(timeout=20)

    def crash(self, host: Host) -> None:
        """A node crash: agent and keepalived die at once, and the host drops off the LAN.

        A SIGKILLed keepalived cannot remove its VIP; on a real crash the box is gone, so the
        stale address must go off the network with it or the test would see a split brain that
        no real failure produces. keepalived is frozen first so that neither it nor the agent
        can react (withdraw the VIP, send a priority-0 advert, restart it) on the way down."""
        pids = keepalived_pids(host)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        run("ip", "-n", host.ns, "link", "set", "eth0", "down")
        self.kill_agent(host)
        kill_at_once(pids)

    def reboot(self, host: Host) -> None:
        """Bring a crashed node back as a rebooted box would come: without the stale VIP,
        link up, agent started (it starts keepalived from its last good files)."""
        run("ip", "-n", host.ns, "addr", "del", f"{VIP}/24", "dev", "eth0", check=False)
        run("ip", "-n", host.ns, "link", "set", "eth0", "up")
        self.start_agent(host)

    def holders(self) -> list[str]:
        return [h.name for h in self.nodes if h.is_up() and VIP in h.addresses()]

    def holder(self) -> str | None:
        holders = self.holders()
        assert len(holders) <= 1, f"VIP on several nodes: {holders}"
        return holders[0] if holders else None

    def client_reaches_vip(self) -> bool:
        return http_get(self.client, f"http://{VIP}/healthz") == "ok\n"

    def log(self, host: Host) -> str:
        return (self.node_dir(host) / "agent.log").read_text()

    def keepalived_log(self, host: Host) -> str:
        path = self.node_dir(host) / "run" / "keepalived.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def teardown(self) -> None:
        for process in self.agents.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.agents.values():
            try:
                process.wait(timeout=10)
            except Exception:
                process.kill()
        self.net.destroy()
