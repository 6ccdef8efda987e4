"""VRRP through the real keepalived, rendered and supervised by the agent.

The lab (tests/integration/vrrplab.py): two nginx nodes and a client, each in its own network
namespace on one bridge; ZooKeeper runs in the bridge's namespace. Everything stays inside
namespaces this test creates.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time

import pytest

from stackha.keepalived.process import config_test
from stackha.keepalived.render import (
    BACKSTOP_FALL,
    BACKSTOP_INTERVAL,
    RenderOptions,
    render_keepalived,
)
from stackha.model.spec import parse_spec
from testkit.netlab import (
    LAN_ADDRESS,
    in_ns,
    keepalived_main_pids,
    keepalived_pids,
    kill_at_once,
    run,
    wait_until,
)
from testkit.signing import harness_keys
from testkit.vrrplab import VIP, VrrpLab, check_wrapper
from tests.conftest import EXAMPLE_CONFIGS

pytestmark = pytest.mark.integration


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


def test_status_of_a_hard_killed_master_is_stale_not_split_brain(lab):
    # Issue #16: the crashed node's ephemeral status lives until its ZooKeeper session expires
    # (10 s here), still saying MASTER; with 0.5 s heartbeats it is stale after 3.5 s.
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")
    lab.crash(lab.n1)

    def report() -> dict:
        return json.loads(lab.net.stackha("status", "--json", "--configs",
                                          str(lab.configs)).stdout)

    seen: list[dict] = []

    def believed(doc: dict) -> bool:
        seen.append(doc)
        rows = {row["node"]: row for row in doc["nodes"]}
        return rows["nginx1"].get("stale") is True and rows["nginx2"]["vrrp"] == {"web": "MASTER"}

    doc = wait_until(lambda: (d := report()) and believed(d) and d, 15,
                     what="status to show nginx1 stale and nginx2 MASTER")
    # Before nginx1's report went stale, nginx2 had taken over: nginx1's MASTER claim was
    # older than that takeover, so status never said split brain, only suspected it.
    after_takeover = [d for d in seen if d["split_brain_suspected"] or d["split_brain"]]
    assert after_takeover and all(d["split_brain"] == {} for d in after_takeover), [
        (d["split_brain"], d["split_brain_suspected"]) for d in seen]
    rows = {row["node"]: row for row in doc["nodes"]}
    assert rows["nginx1"]["vrrp"] == {"web": "STALE"}
    assert rows["nginx1"]["reported_vrrp"] == {"web": "MASTER"}
    assert doc["split_brain"] == {}
    assert doc["split_brain_suspected"] == {"web": ["nginx1", "nginx2"]}


def test_supervisor_restarts_a_dead_keepalived(lab):
    before = keepalived_pids(lab.n1)
    kill_at_once(before)
    wait_until(lambda: (now := keepalived_pids(lab.n1)) and not set(now) & set(before), 15,
               what="keepalived restarted by the agent")
    wait_until(lambda: lab.holder() == "nginx1", 15, what="nginx1 master again (preempt)")
    assert "event=keepalived_exited" in lab.log(lab.n1)
    assert "why=keepalived_exit_" in lab.log(lab.n1)


def _entered(lab: VrrpLab) -> int:
    """How many VRRP transitions both keepalived logs hold."""
    return sum(lab.keepalived_log(h).count("Entering") for h in lab.nodes)


def test_agent_restart_adopts_keepalived_and_moves_nothing(lab):
    # Issue #18: restarting (upgrading) the agent must not be a failover.
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")
    wait_until(lambda: lab.endpoint(lab.n1, "/vrrp/web") == 200, 20, what="nginx1 MASTER")
    wait_until(lambda: lab.endpoint(lab.n2, "/vrrp/web") == 503, 20, what="nginx2 BACKUP")
    pids = keepalived_main_pids(lab.n1)
    transitions = _entered(lab)
    lab.kill_agent(lab.n1, signal.SIGTERM)
    assert keepalived_main_pids(lab.n1) == pids, "keepalived stopped with the agent"
    assert "event=keepalived_left_running" in lab.log(lab.n1)
    lab.start_agent(lab.n1)
    wait_until(lambda: "event=keepalived_adopted" in lab.log(lab.n1), 20,
               what="the new agent to adopt keepalived")
    assert f"event=keepalived_adopted pid={min(pids)} config_changed=no" in lab.log(lab.n1) \
        or any(f"pid={p} config_changed=no" in lab.log(lab.n1) for p in pids)
    # The new agent knows it is MASTER without a transition to tell it, and says so.
    wait_until(lambda: lab.endpoint(lab.n1, "/vrrp/web") == 200, 20, what="/vrrp/web 200")
    assert lab.endpoint(lab.n1, "/health") == 200
    assert lab.endpoint(lab.n1, "/vrrp/nosuch") == 404
    time.sleep(1)  # dozens of advert intervals, for a transition to show if there was one
    assert keepalived_main_pids(lab.n1) == pids
    assert lab.holder() == "nginx1"
    assert _entered(lab) == transitions, "a VRRP transition during the agent's restart"
    assert lab.log(lab.n1).count("event=keepalived_started") == 1
    assert "event=keepalived_reloaded" not in lab.log(lab.n1)
    # The adopted keepalived's notify FIFO reaches the new agent: a failed check is seen.
    lab.stop_nginx(lab.n1)
    wait_until(lambda: lab.endpoint(lab.n1, "/health") == 503, 20, what="/health 503")
    wait_until(lambda: lab.endpoint(lab.n1, "/vrrp/web") == 503, 20, what="/vrrp/web 503")
    wait_until(lambda: lab.endpoint(lab.n2, "/vrrp/web") == 200, 20, what="nginx2 master")


def test_an_adopted_keepalived_is_reloaded_only_when_its_file_changed(lab):
    pids = keepalived_main_pids(lab.n1)
    lab.kill_agent(lab.n1, signal.SIGKILL)  # killed hard: keepalived lives on all the same
    conf = lab.node_dir(lab.n1) / "keepalived" / "keepalived.conf"
    conf.write_text(conf.read_text() + "# edited while no agent ran\n")
    lab.start_agent(lab.n1)
    wait_until(lambda: "event=keepalived_reloaded" in lab.log(lab.n1), 20,
               what="the adopted keepalived reloaded")
    assert "config_changed=yes" in lab.log(lab.n1)
    assert keepalived_main_pids(lab.n1) == pids
    wait_until(lambda: lab.holder() == "nginx1", 10, what="nginx1 still master")


def test_stop_services_stops_an_adopted_keepalived_gracefully(lab):
    # Next to a running agent it would be undone at once (the agent restarts keepalived).
    running = in_ns(lab.n1.ns, *lab.agent_command(lab.n1), "--stop-services", check=False)
    assert running.returncode == 2 and "runs on" in running.stderr, running.stderr
    assert keepalived_pids(lab.n1)
    lab.stop_node(lab.n1)
    assert "keepalived (pid" in lab.log(lab.n1) and keepalived_pids(lab.n1) == []
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move to nginx2")
    wait_until(lambda: lab.endpoint(lab.n2, "/vrrp/web") == 200, 20, what="nginx2 /vrrp 200")


def test_agent_restart_clears_stale_pid_files_and_orphans(lab):
    # Everything dies at once (a container restart): the pid files stay, and one names a live
    # but unrelated process, as after a reboot. keepalived would refuse to start on it.
    lab.kill_agent(lab.n1)
    kill_at_once(keepalived_pids(lab.n1))
    (lab.node_dir(lab.n1) / "run/keepalived.pid").write_text("1\n")
    lab.start_agent(lab.n1)
    wait_until(lambda: lab.log(lab.n1).count("event=keepalived_started") == 2, 20,
               what="keepalived started despite the stale pid file")
    assert "event=keepalived_stale_pid_file file=keepalived.pid pid=1" in lab.log(lab.n1)
    assert "event=keepalived_adopted" not in lab.log(lab.n1)
    # The VIP left behind by the dead keepalived comes off before the new one starts.
    assert "why=before_start" in lab.log(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 20, what="nginx1 master again")


def test_nginx_stopped_on_the_master_fails_the_check_and_moves_the_vip(lab):
    lab.stop_nginx(lab.n1)
    # A lower priority hands over by preemption: for an advert or two both hold the VIP
    # (as on every preempt), so the wait is for nginx2 alone.
    wait_until(lambda: lab.holders() == ["nginx2"], 15, what="VIP to move after health check")
    wait_until(lab.client_reaches_vip, what="client to reach nginx2")
    lab.start_nginx(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 15, what="preempt back after nginx returns")


def test_preempt_takes_the_vip_back_when_the_master_returns(lab):
    lab.stop_node(lab.n1)  # graceful: keepalived advertises priority 0
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move to nginx2")
    assert "event=keepalived_stopping" in lab.log(lab.n1)
    lab.start_agent(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 15, what="nginx1 to take the VIP back")


def test_nopreempt_leaves_the_vip_where_it_is(lab_factory):
    lab = lab_factory(False)
    # Without preemption whichever keepalived came up first keeps the VIP; either is fine.
    first = lab.n1 if lab.holder() == "nginx1" else lab.n2
    other = lab.n2 if first is lab.n1 else lab.n1
    lab.stop_node(first)
    wait_until(lambda: lab.holder() == other.name, 10, what=f"VIP to move to {other.name}")
    lab.start_agent(first)
    wait_until(lambda: "group=web state=BACKUP" in lab.log(first).split(
        "event=keepalived_stopping")[-1], 15, what=f"{first.name} back as backup")
    time.sleep(2)  # dozens of advert intervals: a preempting router would have taken over
    assert lab.holder() == other.name


def test_takeover_announces_the_new_mac_without_client_traffic(lab):
    wait_until(lab.client_reaches_vip, what="client to reach the VIP")
    assert lab.client.neighbour_mac(VIP) == lab.n1.mac()
    lab.crash(lab.n1)
    wait_until(lambda: lab.holder() == "nginx2", 10, what="VIP to move")
    # No traffic from the client since: only a gratuitous ARP can have changed its entry.
    wait_until(lambda: lab.client.neighbour_mac(VIP) == lab.n2.mac(), 5,
               what="client's neighbour entry to show nginx2's MAC")


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
    missing = render_keepalived(spec, "nginx1", RenderOptions(stackha_command="/nonexistent",
                                                              curl="/nonexistent-curl"))
    assert any("script not found" in r for r in config_test(missing, eth0_namespace))


def test_lab_addresses_never_reach_the_host(lab):
    # The lab's subnet lives only inside the namespaces: the host has no address or route in it.
    assert LAN_ADDRESS not in run("ip", "-4", "addr").stdout
    assert "10.99.0." not in run("ip", "-4", "route").stdout


def _track(lab: VrrpLab, host, name: str, value: int) -> None:
    """What the agent does: the whole file replaced at once (keepalived reads it on inotify)."""
    path = lab.node_dir(host) / "run" / name
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{value}\n")
    tmp.replace(path)


def test_a_trial_track_file_puts_the_master_below_every_member(lab):
    """The canary's track file against the real keepalived: with it set the node's priority
    drops below the other member's (preempt moves the VIP away), cleared it comes back."""
    from stackha.keepalived.render import TRIAL_TRACK

    assert lab.holder() == "nginx1"
    before = len(lab.log(lab.n1))
    _track(lab, lab.n1, TRIAL_TRACK, 1)
    # handed over by preemption: for an advert or two both may hold the VIP
    wait_until(lambda: lab.holders() == ["nginx2"], 10, what="nginx2 to win over the trial node")
    wait_until(lambda: "group=web state=BACKUP" in lab.log(lab.n1)[before:], 10,
               what="nginx1 to report BACKUP")
    assert "group=web state=FAULT" not in lab.log(lab.n1)[before:]
    _track(lab, lab.n1, TRIAL_TRACK, 0)
    wait_until(lambda: lab.holder() == "nginx1", 10, what="nginx1 back after its trial")


def test_a_yield_track_file_hands_the_vip_over_under_nopreempt(lab_factory):
    """Lowering the priority moves nothing under nopreempt; the yield file (FAULT for a
    moment) does, and the node then stays BACKUP with its trial priority."""
    from stackha.keepalived.render import TRIAL_TRACK, YIELD_TRACK

    lab = lab_factory(False)
    first = next(h for h in lab.nodes if h.name == lab.holder())
    other = next(h for h in lab.nodes if h is not first)
    _track(lab, first, TRIAL_TRACK, 1)
    time.sleep(1)  # nopreempt: a lower priority alone keeps the master where it is
    assert lab.holder() == first.name
    _track(lab, first, YIELD_TRACK, 1)
    wait_until(lambda: lab.holder() == other.name, 10, what=f"VIP to move to {other.name}")
    _track(lab, first, YIELD_TRACK, 0)
    wait_until(lambda: "group=web state=BACKUP" in lab.log(first).split(
        "event=vrrp_state")[-1], 10, what=f"{first.name} back to BACKUP")
    assert lab.holder() == other.name


PUBLISH_WITH_CANARY = """
import sys
from pathlib import Path
from stackha.coordinator.configset import load_configs
from stackha.coordinator.publish import now_utc
from stackha.model.bundle import ConfigVersion, serialise_version
from stackha.store.connect import open_store
from stackha.trust.signing import load_private, sign_parts
configs, hosts, canary, key = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
found, problems = load_configs(configs)
assert found is not None, [str(p) for p in problems]
store = open_store(found.spec, hosts, "coordinator")
signing = load_private(Path(key))
number = store.publish(lambda n: serialise_version(ConfigVersion(
    n, found.bundle, now_utc(), "test", "trial", {"nginx": canary},
    sign_parts(signing, found.spec.cluster, n, found.bundle))), store.current_number())
print(number)
"""


def test_a_canary_holding_the_vip_hands_it_over_and_its_rejected_version_is_never_served(
        lab):
    """The canary (named by the version: here the MASTER, as a stale status could make it)
    yields the VIP before it loads, keeps its priority below the other member during the
    trial, and the version that fails its health check never answers through the VIP."""
    import threading

    from testkit.netlab import http_get, in_ns

    assert lab.holder() == "nginx1"
    wait_until(lambda: http_get(lab.client, f"http://{VIP}/") not in (None, ""), 20,
               what="the VIP to serve version 1")
    (lab.configs / "nginx/html/index.html").write_text("REJECTED\n")
    conf = lab.configs / "nginx/nginx.conf"
    conf.write_text(conf.read_text().replace('return 200 "ok\\n";', 'return 503 "no\\n";'))
    seen: list[str | None] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            seen.append(http_get(lab.client, f"http://{VIP}/"))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        done = in_ns(lab.net.lan, sys.executable, "-c", PUBLISH_WITH_CANARY, str(lab.configs),
                     lab.net.zookeeper.hosts, "nginx1", str(harness_keys().private))
        int(done.stdout.strip())
        wait_until(lambda: "event=rollback " in lab.log(lab.n1), 40,
                   what="the canary to roll the version back")
        time.sleep(1.0)
    finally:
        stop.set()
        prober.join(timeout=10)
    rejected = seen.count("REJECTED\n")
    assert seen and rejected == 0, f"{rejected} of {len(seen)} answers were the rejected page"
    log = lab.log(lab.n1)
    assert "mode=fault" in log  # nginx2 was healthy: the canary kept out of the VIP entirely
    assert "event=canary_handed_over groups=web" in log
    assert log.index("event=canary_handed_over") < log.index("event=rollback")
    assert any(answer for answer in seen)  # the VIP kept answering with the old version
    wait_until(lambda: lab.holder() == "nginx1", 15, what="nginx1 master again after its trial")


# Issue 16: the agent checks, keepalived tracks the result ------------------------------------
def _track_value(lab: VrrpLab, host, name: str = "chk_nginx.track") -> str:
    path = lab.node_dir(host) / "run" / name
    return path.read_text() if path.exists() else ""


def test_nginx_death_moves_the_vip_through_the_agents_track_file(lab):
    """No process per check: keepalived runs only the slow backstop, and the agent's own
    check (every 0.1 s) moves the VIP long before the backstop could fail twice (3 s apart)."""
    conf = (lab.node_dir(lab.n1) / "keepalived" / "keepalived.conf").read_text()
    scripts = re.findall(r"^vrrp_script (\S+) \{(.*?)^\}", conf, re.MULTILINE | re.DOTALL)
    assert [name for name, _ in scripts] == ["chk_nginx_backstop"]
    assert int(re.search(r"interval (\d+)", scripts[0][1]).group(1)) >= 3
    assert _track_value(lab, lab.n1) == "0\n"
    # keepalived counts a fresh script up from `rise`: until it has passed `fall` more
    # times, one failure fails it. Past that, the backstop needs two runs 3 s apart.
    time.sleep(BACKSTOP_INTERVAL * BACKSTOP_FALL)
    lab.kill_nginx(lab.n1)
    wait_until(lambda: lab.holders() == ["nginx2"], 15, what="VIP to move to nginx2")
    assert "chk_nginx_backstop) failed" not in lab.keepalived_log(lab.n1)
    assert _track_value(lab, lab.n1) == "1\n"
    assert "event=health_check_failed check=nginx" in lab.log(lab.n1)
    wait_until(lab.client_reaches_vip, what="client to reach nginx2")
    lab.start_nginx(lab.n1)
    wait_until(lambda: lab.holder() == "nginx1", 15, what="preempt back after nginx returns")
    assert _track_value(lab, lab.n1) == "0\n"


def test_every_member_failing_at_once_still_leaves_the_vip_a_holder(lab):
    """Fail open: a failed check lowers the priority instead of FAULT, so a starved checker
    failing on every node cannot take the VIP off the network."""
    before = {h.name: len(lab.log(h)) for h in lab.nodes}
    lab.kill_nginx(lab.n1)
    lab.kill_nginx(lab.n2)
    wait_until(lambda: all(_track_value(lab, h) == "1\n" for h in lab.nodes), 15,
               what="both checks failed")
    time.sleep(1)  # dozens of advert intervals
    assert lab.holder() is not None
    for host in lab.nodes:
        assert "state=FAULT" not in lab.log(host)[before[host.name]:]


def test_the_backstop_moves_the_vip_when_the_agent_is_dead_and_nginx_dies(lab):
    """A SIGKILLed agent writes no track file; keepalived's own slow probe still takes the
    VIP off a dead nginx."""
    lab.kill_agent(lab.n1)
    assert keepalived_pids(lab.n1), "keepalived outlives a SIGKILLed agent"
    lab.kill_nginx(lab.n1)
    wait_until(lambda: lab.holders() == ["nginx2"], 20, what="the backstop to move the VIP")
    assert _track_value(lab, lab.n1) == "0\n"  # nobody wrote it: the backstop did this
    assert "chk_nginx_backstop) failed" in lab.keepalived_log(lab.n1)


def test_nopreempt_a_failed_check_hands_the_vip_to_a_healthy_peer_only(lab_factory):
    """Under nopreempt a lower priority moves nothing (RFC 5798: a backup without preempt
    accepts a lower master). With a healthy fresh peer the failed node goes to FAULT; when
    the peer fails too it comes back (lowered), so the VIP keeps a holder."""
    lab = lab_factory(False)
    first = next(h for h in lab.nodes if h.name == lab.holder())
    other = next(h for h in lab.nodes if h is not first)
    lab.kill_nginx(first)
    wait_until(lambda: lab.holders() == [other.name], 15, what=f"VIP to move to {other.name}")
    assert "event=vrrp_yield state=on reasons=health" in lab.log(first)
    lab.kill_nginx(other)
    wait_until(lambda: "event=vrrp_yield state=off" in lab.log(first), 15,
               what=f"{first.name} out of FAULT once nobody is healthy")
    wait_until(lambda: "group=web state=BACKUP" in lab.log(first).split(
        "event=vrrp_yield state=off")[-1], 10, what=f"{first.name} back as BACKUP")
    assert lab.holder() is not None
