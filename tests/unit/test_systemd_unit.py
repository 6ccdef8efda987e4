"""The shipped unit and example file say what the agent does."""

from __future__ import annotations

from stackha.cli.agentconfig import parse_file
from tests.conftest import ROOT
from tests.unit.test_agent_config import _agent_parser


def test_the_example_agent_yaml_checks():
    text = (ROOT / "systemd/agent.yaml.example").read_text()
    values, problems = parse_file(text, "agent.yaml.example", _agent_parser())
    assert problems == [] and values["node"] == "nginx1"


def test_the_unit_uses_the_file_and_leaves_keepalived_running_on_restart():
    unit = (ROOT / "systemd/stackha-agent.service").read_text()
    assert "ExecStart=/usr/local/bin/stackha agent --config /etc/stackha/agent.yaml\n" in unit
    assert "--check-config" in unit
    # KillMode=mixed or control-group would SIGKILL keepalived after the agent exits.
    assert "KillMode=process" in unit
