"""Host-side lab commands send nothing to lab addresses while the lab's bridge is absent:
those packets would leave the machine by its default route."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from stackha.cli.main import main
from stackha.lab.compose.bridge import lab_down_reason, zookeeper_addresses

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose" / "compose.yaml"
ZK = zookeeper_addresses("10.77.0.5:2181,10.77.0.6:2181")


def test_lab_addresses_without_the_bridge_are_refused(tmp_path: Path):
    reason = lab_down_reason(ZK, COMPOSE, sys_net=tmp_path)
    assert reason is not None
    assert reason.startswith("the lab is down: its bridge stackha0 does not exist")
    assert "10.77.0.5, 10.77.0.6" in reason


def test_with_the_bridge_or_outside_the_lab_nothing_is_refused(tmp_path: Path):
    (tmp_path / "stackha0").mkdir()
    assert lab_down_reason(ZK, COMPOSE, sys_net=tmp_path) is None
    outside = [ipaddress.IPv4Address("192.0.2.10")]
    assert lab_down_reason(outside, COMPOSE, sys_net=tmp_path / "none") is None
    assert lab_down_reason(ZK, tmp_path / "no-compose.yaml", sys_net=tmp_path / "x") is None


def test_status_says_the_lab_is_down_instead_of_connecting(tmp_path: Path, capsys,
                                                           monkeypatch: pytest.MonkeyPatch):
    import stackha.lab.compose.bridge as bridge

    monkeypatch.setattr(bridge, "SYS_NET", tmp_path)  # no stackha0 here
    monkeypatch.setattr(bridge.lab_down_reason, "__defaults__", (tmp_path,))
    code = main(["status", "--configs", str(ROOT / "configs")])
    assert code != 0
    assert "the lab is down: its bridge stackha0 does not exist" in capsys.readouterr().err


def test_vrrp_multicast_inside_the_internal_bridge_gets_one_accept_rule(monkeypatch):
    # docker's internal-network rule drops bridged frames for 224.0.0.18 (VRRP): the lab
    # inserts one DOCKER-USER rule for frames entering and leaving its own bridge, once.
    import subprocess

    from stackha.lab.compose import hostnet
    from stackha.lab.compose.hostnet import allow_bridge_local, bridge_local_rule

    # A unit test: the fake below is the firewall, so the host needs no iptables binary.
    monkeypatch.setattr(hostnet, "_iptables", lambda: "iptables")

    assert bridge_local_rule("stackha0") == ["-i", "stackha0", "-o", "stackha0", "-j", "ACCEPT"]
    rules: list[list[str]] = []

    def iptables(argv: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        action, rule = argv[1], argv[-6:]
        if action == "-C":
            return subprocess.CompletedProcess(argv, 0 if rule in rules else 1, "", "")
        rules.append(rule)
        return subprocess.CompletedProcess(argv, 0, "", "")

    assert allow_bridge_local("stackha0", run=iptables) is True
    assert allow_bridge_local("stackha0", run=iptables) is False
    assert rules == [bridge_local_rule("stackha0")]
