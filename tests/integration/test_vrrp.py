"""VRRP through the real keepalived, rendered and supervised by the agent.

Two nginx nodes and a client, each in its own network namespace on one bridge; ZooKeeper runs
in the bridge's namespace. Everything stays inside namespaces this test creates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackha.keepalived.process import config_test
from stackha.keepalived.render import RenderOptions, render_keepalived
from stackha.spec import parse_spec
from tests.conftest import EXAMPLE_CONFIGS
from tests.integration.netlab import (
    LAN_ADDRESS,
    Host,
    NetLab,
    http_get,
    keepalived_pids,
    run,
    wait_until,
)

pytestmark = pytest.mark.integration
VIP = "10.99.0.100"
CHECK_WRAPPER = Path("/usr/local/libexec/stackha-test/stackha")

SPEC = """
cluster: vrrp
zookeeper:
  hosts: "{zk}"
  coordinator_auth: {{env: STACKHA_COORDINATOR_CREDENTIAL}}
  agent_auth: {{env: STACKHA_AGENT_CREDENTIAL}}
nodes:
  - {{name: nginx1, address: 10.99.0.11/24, interface: eth0, roles: [nginx]}}
  - {{name: nginx2, address: 10.99.0.12/24, interface: eth0, roles: [nginx]}}
vrrp_groups:
  - name: web
    virtual_router_id: 51
    interface: eth0
    vips: [{vip}/24]
    members: {{nginx1: 150, nginx2: 100}}
    preempt: {preempt}
    advert_int: 0.1
    checks: [nginx]
health_checks:
  nginx: {{url: "http://127.0.0.1/healthz", interval: 1, timeout: 0.5, fall: 2, rise: 2}}
"""

BOOTSTRAP = """
user root;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http { access_log off; server { listen 80; location / { return 200 "bootstrap\\n"; } } }
"""


def check_wrapper() -> str:
    """keepalived refuses check scripts on a path a non-root user could write (a checkout
    under /tmp, say), so the tests run `stackha check` through a root-owned wrapper."""
    CHECK_WRAPPER.parent.mkdir(parents=True, exist_ok=True)
    CHECK_WRAPPER.write_text(f'#!/bin/sh\nexec {sys.executable} -m stackha "$@"\n')
    CHECK_WRAPPER.chmod(0o755)
    return str(CHECK_WRAPPER)


class VrrpLab:
    def __init__(self, root: Path, preempt: bool):
        self.root = root
        self.net = NetLab(root)
        self.preempt = preempt
        self.agents: dict[str, object] = {}

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
        (configs / "stackha.yaml").write_text(SPEC.format(
            zk=zk.hosts, vip=VIP, preempt="true" if self.preempt else "false"))
        self.configs = configs
        self.net.stackha("push-config", "--configs", str(configs))
        self.wrapper = check_wrapper()
        for host in (self.n1, self.n2):
            self.start_nginx(host)
            self.start_agent(host)

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

    def start_agent(self, host: Host) -> None:
        base = self.node_dir(host)
        command = [sys.executable, "-m", "stackha", "agent", "--node", host.name,
                   "--configs", str(self.configs), "--zk", self.net.zookeeper.hosts,
                   "--state-dir", str(base / "state"), "--run-dir", str(base / "run"),
                   "--nginx-dir", str(base / "nginx"),
                   "--nginx-reload", " ".join(self.nginx_cmd(host, "-s", "reload")),
                   "--keepalived-dir", str(base / "keepalived"),
                   "--stackha-command", self.wrapper, "--heartbeat", "0.5"]
        self.agents[host.name] = self.net.spawn(host.ns, command, base / "agent.log")

    def kill_agent(self, host: Host, sig: int = signal.SIGKILL) -> None:
        process = self.agents.pop(host.name)
        process.send_signal(sig)
        process.wait(timeout=20)

    def crash(self, host: Host) -> None:
        """A node crash: agent and keepalived die at once, and the host drops off the LAN.

        A SIGKILLed keepalived cannot remove its VIP; on a real crash the box is gone, so the
        stale address must go off the network with it or the test would see a split brain that
        no real failure produces."""
        self.kill_agent(host)
        for pid in keepalived_pids(host):
            os.kill(pid, signal.SIGKILL)
        run("ip", "-n", host.ns, "link", "set", "eth0", "down")

    def holder(self) -> str | None:
        holders = [h.name for h in (self.n1, self.n2) if h.is_up() and VIP in h.addresses()]
        assert len(holders) <= 1, f"VIP on several nodes: {holders}"
        return holders[0] if holders else None

    def client_reaches_vip(self) -> bool:
        return http_get(self.client, f"http://{VIP}/healthz") == "ok\n"

    def log(self, host: Host) -> str:
        return (self.node_dir(host) / "agent.log").read_text()

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


@pytest.fixture
def lab_factory(tmp_path, credentials):
    labs: list[VrrpLab] = []

    def make(preempt: bool = True) -> VrrpLab:
        lab = VrrpLab(tmp_path / f"lab{len(labs)}", preempt)
        labs.append(lab)
        lab.setup()
        if preempt:
            wait_until(lambda: lab.holder() == "nginx1", 30, what="nginx1 to become master")
        else:
            wait_until(lab.holder, 30, what="a master")
        return lab

    yield make
    for lab in labs:
        lab.teardown()


@pytest.fixture
def lab(lab_factory) -> VrrpLab:
    return lab_factory(True)


def test_vip_is_on_the_master_only_and_the_client_reaches_it(lab):
    assert lab.holder() == "nginx1"
    assert VIP not in lab.n2.addresses()
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")

    # The agents report their VRRP state to ZooKeeper through keepalived's notify FIFO.
    def states() -> dict[str, dict[str, str]]:
        report = json.loads(lab.net.stackha("status", "--json", "--configs",
                                            str(lab.configs)).stdout)
        return {row["node"]: row["vrrp"] for row in report["nodes"]}

    wait_until(lambda: states() == {"nginx1": {"web": "MASTER"}, "nginx2": {"web": "BACKUP"}},
               what="status to show nginx1 MASTER and nginx2 BACKUP")


def test_master_killed_hard_moves_the_vip(lab):
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")
    lab.crash(lab.n1)
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move to nginx2")
    wait_until(lab.client_reaches_vip, what="client to reach the VIP on nginx2")


def test_supervisor_restarts_a_dead_keepalived(lab):
    before = keepalived_pids(lab.n1)
    for pid in before:
        os.kill(pid, signal.SIGKILL)
    wait_until(lambda: (now := keepalived_pids(lab.n1)) and not set(now) & set(before), 15,
               what="keepalived restarted by the agent")
    wait_until(lambda: lab.holder() == "nginx1", 15, what="nginx1 master again (preempt)")
    assert "event=keepalived_exited" in lab.log(lab.n1)
    assert "event=stale_vip_withdrawn group=web" in lab.log(lab.n1)


def test_nginx_stopped_on_the_master_fails_the_check_and_moves_the_vip(lab):
    lab.stop_nginx(lab.n1)
    wait_until(lambda: lab.holder() == "nginx2", 15, what="VIP to move after health check")
    wait_until(lab.client_reaches_vip, what="client to reach nginx2")
    lab.start_nginx(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 15, what="preempt back after nginx returns")


def test_preempt_takes_the_vip_back_when_the_master_returns(lab):
    lab.kill_agent(lab.n1, signal.SIGTERM)  # graceful: keepalived advertises priority 0
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move to nginx2")
    assert "event=keepalived_stopped" in lab.log(lab.n1)
    lab.start_agent(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 15, what="nginx1 to take the VIP back")


def test_nopreempt_leaves_the_vip_where_it_is(lab_factory):
    lab = lab_factory(False)
    # Without preemption whichever keepalived came up first keeps the VIP; either is fine.
    first = lab.n1 if lab.holder() == "nginx1" else lab.n2
    other = lab.n2 if first is lab.n1 else lab.n1
    lab.kill_agent(first, signal.SIGTERM)
    wait_until(lambda: lab.holder() == other.name, 10, what=f"VIP to move to {other.name}")
    lab.start_agent(first)
    wait_until(lambda: "group=web state=BACKUP" in lab.log(first).split(
        "event=keepalived_stopped")[-1], 15, what=f"{first.name} back as backup")
    time.sleep(2)  # twenty advert intervals: a preempting router would have taken over
    assert lab.holder() == other.name


def test_takeover_announces_the_new_mac_without_client_traffic(lab):
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")
    assert lab.client.neighbour_mac(VIP) == lab.n1.mac()
    lab.crash(lab.n1)
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move")
    # No traffic from the client since: only a gratuitous ARP can have changed its entry.
    wait_until(lambda: lab.client.neighbour_mac(VIP) == lab.n2.mac(), 5,
               what="client's neighbour entry to show nginx2's MAC")


@pytest.fixture
def eth0_namespace(tmp_path):
    """keepalived checks that the interface exists: give it an eth0 whatever the host has."""
    net = NetLab(tmp_path)
    net.create()
    host = net.add_host("kt", 2)
    yield ("ip", "netns", "exec", host.ns, "keepalived")
    net.destroy()


def test_rendered_files_pass_keepalived_config_test_for_every_node(eth0_namespace):
    spec, problems = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text())
    assert spec is not None, problems
    options = RenderOptions(stackha_command=check_wrapper())
    tested = []
    for node in spec.nodes:
        if not spec.groups_of(node.name):
            continue
        for ipvs in (False, True):
            text = render_keepalived(spec, node.name, options, ipvs=ipvs)
            assert config_test(text, eth0_namespace) == [], (node.name, ipvs)
            tested.append(node.name)
    assert sorted(set(tested)) == ["director1", "director2", "nginx1", "nginx2"]


def test_config_test_rejects_a_broken_file(eth0_namespace):
    spec, _ = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text())
    text = render_keepalived(spec, "nginx1", RenderOptions(stackha_command=check_wrapper()))
    reasons = config_test(text.replace("virtual_router_id 51", "virtual_router_id 300"),
                          eth0_namespace)
    assert reasons and "VRID '300' not valid" in reasons[0]
    missing = render_keepalived(spec, "nginx1", RenderOptions(stackha_command="/nonexistent"))
    assert any("script not found" in r for r in config_test(missing, eth0_namespace))


def test_lab_addresses_never_reach_the_host(lab):
    # The lab's subnet lives only inside the namespaces: the host has no address or route in it.
    assert LAN_ADDRESS not in run("ip", "-4", "addr").stdout
    assert "10.99.0." not in run("ip", "-4", "route").stdout
