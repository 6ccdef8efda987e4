"""stackha drill: the pure parts of the lab handle and the scenario list."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackha.lab.drill.lab import (
    AGENT_LOCK,
    CUT_TABLE,
    DrillLab,
    LabProblem,
    connection_peer_present,
    cut_ruleset,
    group_with_role,
    holds_address,
    lock_pid,
    sql_account,
    zk_mode,
)
from stackha.lab.drill.scenarios import SCENARIOS, by_name
from stackha.model.spec import StackSpec, parse_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec() -> StackSpec:
    parsed, problems = parse_spec((ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert parsed is not None, problems
    return parsed


def test_addresses_come_from_the_spec(spec):
    lab = DrillLab(spec, client=None, project="stackha", configs=ROOT / "configs")
    assert (lab.web_group, lab.web_vip) == ("web", "10.77.0.100")
    assert (lab.sql_group, lab.sql_vip) == ("mycat", ("10.77.0.200", 8066))
    assert lab.sql is not None and (lab.sql.user, lab.sql.database) == ("app", "shop")
    assert lab.zk_hosts == [("10.77.0.5", 2181), ("10.77.0.6", 2181), ("10.77.0.7", 2181)]


def test_group_with_role(spec):
    assert group_with_role(spec, "nginx").name == "web"  # type: ignore[union-attr]
    assert group_with_role(spec, "director").name == "mycat"  # type: ignore[union-attr]
    assert group_with_role(spec, "mycat") is None


def test_sql_account_needs_a_known_user(spec):
    xml = (ROOT / "configs/mycat/server.xml").read_bytes()
    assert sql_account(spec, xml).password == "app_pw"
    with pytest.raises(LabProblem, match="no MyCat user 'app'"):
        sql_account(spec, xml.replace(b'name="app"', b'name="other"'))


def test_cut_ruleset_drops_ip_and_arp_on_the_interface_only():
    ruleset = cut_ruleset("eth0")
    assert f"table inet {CUT_TABLE}" in ruleset and f"table arp {CUT_TABLE}" in ruleset
    assert ruleset.count('iifname "eth0" drop') == 2
    assert ruleset.count('oifname "eth0" drop') == 2
    assert "lo" not in ruleset.replace("policy", "")


def test_zk_mode():
    answer = ("Zookeeper version: 3.8.0\nLatency min/avg/max: 0/0.1/3\nMode: leader\n"
              "Node count: 44\n")
    assert zk_mode(answer) == "leader"
    assert zk_mode("Mode: follower\n") == "follower"
    assert zk_mode("This ZooKeeper instance is not currently serving requests") is None


def test_connection_peer_present():
    ss = ("0      0      10.77.0.33:48070 10.77.0.7:2181\n"
          "0      0      10.77.0.200:8066  10.77.0.1:44132\n")
    assert connection_peer_present(ss, "10.77.0.1", 44132)
    assert not connection_peer_present(ss, "10.77.0.1", 4413)
    assert not connection_peer_present(ss, "10.77.0.200", 8066)
    assert not connection_peer_present("", "10.77.0.1", 44132)
    with_state = "ESTAB 0 0 10.77.0.200:8066 10.77.0.1:44132\n"
    assert connection_peer_present(with_state, "10.77.0.1", 44132)


def test_scenarios_have_unique_names_and_titles():
    names = [s.name for s in SCENARIOS]
    assert len(set(names)) == len(names) and all(s.title for s in SCENARIOS)
    assert names[:4] == ["nginx-master-killed", "nginx-stopped", "agent-stopped",
                         "director-killed"]


def test_by_name_keeps_the_order_given_and_names_the_unknown():
    assert [s.name for s in by_name(None)] == [s.name for s in SCENARIOS]
    assert [s.name for s in by_name(["zk-outage", "node-cut"])] == ["zk-outage", "node-cut"]
    with pytest.raises(KeyError, match="nope"):
        by_name(["node-cut", "nope"])


def test_the_cli_knows_drill():
    from stackha.cli.main import build_parser

    args = build_parser().parse_args(["drill", "--scenario", "zk-outage", "--zk-outage", "5",
                                      "--json", "--png-dir", "/tmp/x"])
    assert args.scenario == ["zk-outage"] and args.zk_outage == 5.0 and args.json
    assert args.png_dir == Path("/tmp/x") and args.load == 0


def test_the_drill_takes_a_load(capsys):
    import os

    from stackha.cli.main import build_parser

    parser = build_parser()
    assert parser.parse_args(["drill", "--load", "3"]).load == 3
    assert parser.parse_args(["drill", "--load"]).load == os.cpu_count()
    with pytest.raises(SystemExit):
        parser.parse_args(["drill", "--load", "many"])
    assert "a number of processes" in capsys.readouterr().err


def test_sessions_from():
    from stackha.lab.drill.lab import sessions_from

    ss = ("0 0 10.77.0.200:8066 10.77.0.1:44132\n"
          "0 0 10.77.0.200:8066 10.77.0.1:44133\n"
          "0 0 10.77.0.31:8066 10.77.0.21:5000\n"
          "0 0 10.77.0.31:43108 10.77.0.5:2181\n")
    assert sessions_from(ss, "10.77.0.1", 8066) == 2
    assert sessions_from(ss, "10.77.0.21", 8066) == 1
    assert sessions_from(ss, "10.77.0.5", 8066) == 0


def test_holds_address():
    out = ("1: lo    inet 127.0.0.1/8 scope host lo\n"
           "2: eth0    inet 10.77.0.11/24 brd 10.77.0.255 scope global eth0\n"
           "2: eth0    inet 10.77.0.100/24 scope global secondary eth0\n")
    assert holds_address(out, "10.77.0.100")
    assert not holds_address(out, "10.77.0.10")  # no prefix match
    assert not holds_address(out.replace("10.77.0.100", "10.77.0.1000"), "10.77.0.100")


def test_lock_pid():
    assert lock_pid("4242\n") == 4242
    assert lock_pid("") is None and lock_pid("?\n") is None


def test_the_agent_lock_is_where_the_lab_agent_keeps_it():
    from stackha.cli.agent import LOCK_FILE
    from stackha.lab.compose.render import STATE_DIR

    assert AGENT_LOCK == f"{STATE_DIR}/{LOCK_FILE}"


class FakeContainer:
    """A container as the Docker SDK gives it: ``exec_run`` answers from ``answers``."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers, self.ran = answers, []

    def exec_run(self, argv):
        self.ran.append(argv)
        code, out = next((v for k, v in self.answers.items() if k in " ".join(argv)),
                         (1, b""))
        return type("Done", (), {"exit_code": code, "output": out})()


class FakeClient:
    def __init__(self, containers: dict[str, FakeContainer]) -> None:
        self.by_node = containers
        self.containers = self

    def list(self, all: bool, filters: dict):
        node = filters["label"][1].split("=", 1)[1]
        return [self.by_node[node]] if node in self.by_node else []


def test_the_agent_process_and_the_vip_through_docker_exec(spec):
    nginx1 = FakeContainer({"agent.lock": (0, b"4242\n"), "kill -TERM": (0, b""),
                            "pgrep": (0, b"77\n"),
                            "addr show": (0, b"2: eth0 inet 10.77.0.100/24 scope global\n")})
    nginx2 = FakeContainer({"agent.lock": (1, b""),
                            "addr show": (0, b"2: eth0 inet 10.77.0.12/24 scope global\n")})
    lab = DrillLab(spec, FakeClient({"nginx1": nginx1, "nginx2": nginx2}), "stackha",
                   ROOT / "configs")
    assert lab.agent_pid("nginx1") == 4242 and lab.agent_pid("nginx2") is None
    assert lab.keepalived_pid("nginx1") == 77
    lab.signal_agent("nginx1", 4242)
    assert nginx1.ran[-1] == ["sh", "-c", 'kill -TERM "$1"', "sh", "4242"]
    assert lab.vip_holders(["nginx1", "nginx2"], "10.77.0.100") == ["nginx1"]


def test_the_fake_lab_of_the_scenario_tests_fakes_only_what_drilllab_has():
    from tests.unit.test_drill_agentops import FakeLab

    faked = {n for n in vars(FakeLab) if not n.startswith("_")}
    assert faked <= set(dir(DrillLab)), faked - set(dir(DrillLab))
