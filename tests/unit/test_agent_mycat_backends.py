"""An agent told which networks MyCat's backends may be in refuses a version naming another
one before anything is written, so MyCat is never started or reloaded on it (lab traffic
stays in the lab)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from stackha.agent.core import Agent, AgentSettings, RoleSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "mycat"
LAB = ipaddress.IPv4Network("10.77.0.0/24")


def _agent(tmp_path: Path, networks: tuple[ipaddress.IPv4Network, ...] | None) -> Agent:
    role = RoleSettings(target=tmp_path / "conf", mycat_backend_networks=networks)
    return Agent(AgentSettings(node="mycat1", state_dir=tmp_path / "state",
                               roles={"mycat": role}), store=None)


def _files(url: str = "10.77.0.30:3306") -> dict[str, bytes]:
    files = {name: (EXAMPLE / name).read_bytes() for name in ("server.xml", "schema.xml",
                                                              "rule.xml")}
    files["schema.xml"] = files["schema.xml"].replace(b"10.77.0.30:3306", url.encode())
    return files


def test_a_backend_outside_the_lab_is_refused_at_validate_and_nothing_written(tmp_path):
    agent = _agent(tmp_path, (LAB,))
    result = agent.resources["mycat"].apply(_files("192.0.2.7:3306"))
    assert not result.ok and result.stage == "validate"
    assert "192.0.2.7 is outside" in result.reason
    assert not (tmp_path / "conf" / "schema.xml").exists()


def test_lab_backends_pass(tmp_path):
    result = _agent(tmp_path, (LAB,)).resources["mycat"].apply(_files())
    assert result.ok, result.reason


def test_without_networks_nothing_is_checked(tmp_path):
    result = _agent(tmp_path, None).resources["mycat"].apply(_files("192.0.2.7:3306"))
    assert result.ok, result.reason
