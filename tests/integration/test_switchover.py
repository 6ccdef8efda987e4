"""`stackha switchover` and `stackha maintenance` against real keepalived and ZooKeeper.

The VRRP lab (testkit/vrrplab.py): nginx1 (priority 150) and nginx2 (100) with preempt, so
nginx1 holds the VIP unless something moves it; everything stays inside the lab's
namespaces. Run under `flock /tmp/stackha-netns.lock`.
"""

from __future__ import annotations

import json
import signal

import pytest

from testkit.netlab import wait_until
from testkit.vrrplab import VrrpLab

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path, credentials):
    lab = VrrpLab(tmp_path / "lab")
    try:
        lab.setup()
        wait_until(lambda: lab.holder() == "nginx1", 30, what="nginx1 to become master")
        wait_until(lambda: nodes(lab)["nginx2"]["vrrp"] == {"web": "BACKUP"}, 30,
                   what="nginx2 to report BACKUP")
        yield lab
    finally:
        lab.teardown()


def nodes(lab: VrrpLab) -> dict[str, dict]:
    report = json.loads(lab.net.stackha("status", "--json", "--configs",
                                        str(lab.configs)).stdout)
    return {row["node"]: row for row in report["nodes"]}


def cli(lab: VrrpLab, *args: str):
    return lab.net.stackha(*args, "--configs", str(lab.configs), check=False)


def restart_agent(lab: VrrpLab, host) -> None:
    """An agent restart (an upgrade): keepalived stays, the new agent adopts it."""
    lab.kill_agent(host, signal.SIGTERM)
    lab.start_agent(host)
    wait_until(lambda: lab.log(host).count("event=keepalived_adopted") >= 1, 20,
               what=f"{host.name}'s new agent to adopt keepalived")
    wait_until(lambda: nodes(lab)[host.name]["reporting"]
               and nodes(lab)[host.name]["vrrp"].get("web") in ("BACKUP", "FAULT"), 20,
               what=f"{host.name} to report again")


def test_switchover_to_the_backup_moves_the_vip_and_it_stays(lab):
    done = cli(lab, "switchover", "web", "--to", "nginx2", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert "MASTER on nginx2 (was nginx1)" in done.stdout
    assert lab.holder() == "nginx2"
    wait_until(lab.client_reaches_vip, what="the client to reach the VIP on nginx2")
    # Sticky: nginx1 has the higher spec priority and preempt, yet the VIP stays, also
    # across a restart of nginx1's agent.
    restart_agent(lab, lab.n1)
    assert lab.holder() == "nginx2"
    assert nodes(lab)["nginx2"]["vrrp"] == {"web": "MASTER"}
    # Clearing the preferred holder hands the group back to the priorities: nginx1 preempts.
    cleared = cli(lab, "switchover", "web", "--clear")
    assert cleared.returncode == 0 and "preferred holder cleared" in cleared.stdout
    wait_until(lambda: lab.holder() == "nginx1", 20, what="nginx1 to take the VIP back")


def test_switchover_without_to_picks_the_healthy_backup(lab):
    done = cli(lab, "switchover", "web", "--timeout", "20")
    assert done.returncode == 0, done.stderr
    assert lab.holder() == "nginx2"


def test_switchover_to_a_non_member_or_an_unhealthy_node_is_refused_and_moves_nothing(lab):
    done = cli(lab, "switchover", "web", "--to", "client", "--timeout", "5")
    assert done.returncode != 0
    assert "client is not a member of group web (members: nginx1, nginx2)" in done.stderr
    lab.stop_nginx(lab.n2)
    wait_until(lambda: nodes(lab)["nginx2"]["health"].get("nginx", "ok") != "ok", 20,
               what="nginx2 to report nginx unhealthy")
    done = cli(lab, "switchover", "web", "--to", "nginx2", "--timeout", "5")
    assert done.returncode != 0
    assert "switchover refused: cannot move group web to nginx2 is not healthy" in done.stderr
    assert lab.holder() == "nginx1"
    # Nothing was written: there is no preferred holder to clear.
    assert "had no preferred holder" in cli(lab, "switchover", "web", "--clear").stdout


def test_maintenance_hands_the_vip_over_survives_an_agent_restart_and_off_brings_it_back(lab):
    done = cli(lab, "maintenance", "nginx1", "on", "--reason", "kernel patch",
               "--drain-timeout", "5")
    assert done.returncode == 0, done.stderr
    assert "nginx1: in maintenance, drained" in done.stdout
    assert lab.holder() == "nginx2"
    row = nodes(lab)["nginx1"]
    assert (row["maintenance"], row["maintenance_reason"]) == ("drained", "kernel patch")
    table = cli(lab, "status").stdout
    assert "MAINTENANCE: nginx1: drained: kernel patch" in table
    # A switchover to a node in maintenance is refused.
    refused = cli(lab, "switchover", "web", "--to", "nginx1", "--timeout", "5")
    assert refused.returncode != 0 and "nginx1 is in maintenance (kernel patch)" in \
        refused.stderr
    # The agent restarts (an upgrade): the node stays out, the VIP stays on nginx2.
    restart_agent(lab, lab.n1)
    assert "event=control_state_loaded maintenance=on" in lab.log(lab.n1)
    assert lab.holder() == "nginx2"
    wait_until(lambda: nodes(lab)["nginx1"]["maintenance_reason"] == "kernel patch", 20,
               what="the restarted agent to report its maintenance")
    back = cli(lab, "maintenance", "nginx1", "off")
    assert back.returncode == 0, back.stderr
    # Eligible again: preempt gives the VIP back to the higher priority.
    wait_until(lambda: lab.holder() == "nginx1", 20, what="nginx1 to take the VIP back")
    assert nodes(lab)["nginx1"]["maintenance"] == ""
    assert cli(lab, "switchover", "web", "--to", "nginx2", "--timeout", "20").returncode == 0


def test_switchover_under_nopreempt_moves_the_vip_through_a_yield_and_it_stays(tmp_path,
                                                                               credentials):
    # Without preempt a higher priority moves nothing: the master steps aside (FAULT) until
    # the target is MASTER, then comes back as BACKUP and stays so.
    lab = VrrpLab(tmp_path / "nopreempt", preempt=False)
    try:
        lab.setup()
        wait_until(lab.holder, 30, what="a master")
        wait_until(lambda: sorted(r["vrrp"].get("web", "") for r in nodes(lab).values())
                   == ["BACKUP", "MASTER"], 30, what="both nodes to report")
        holder = lab.holder()
        other = "nginx2" if holder == "nginx1" else "nginx1"
        done = cli(lab, "switchover", "web", "--to", other, "--timeout", "20")
        assert done.returncode == 0, done.stderr
        assert lab.holder() == other
        old = lab.n1 if holder == "nginx1" else lab.n2
        assert "event=vrrp_yield state=on reasons=switchover" in lab.log(old)
        wait_until(lambda: nodes(lab)[holder]["vrrp"] == {"web": "BACKUP"}, 20,
                   what=f"{holder} back as BACKUP")
        assert lab.holder() == other
    finally:
        lab.teardown()
