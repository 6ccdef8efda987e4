"""The agent reports when it saw each VRRP group's state change (``vrrp_since``), so a
reader can tell a dead master's last report from a live split brain (issue #16)."""

from __future__ import annotations

from pathlib import Path

from stackha.agent.core import Agent, AgentSettings, RoleSettings


class _Store:
    def __init__(self) -> None:
        self.written = []

    def put_status(self, status) -> None:
        self.written.append(status)


def _agent(tmp_path: Path) -> Agent:
    settings = AgentSettings(node="nginx2", state_dir=tmp_path / "state",
                             roles={"nginx": RoleSettings(target=tmp_path / "nginx")})
    agent = Agent(settings, store=_Store())
    agent.zk_state = "CONNECTED"
    return agent


def test_a_takeover_is_stamped_and_a_repeat_is_not(tmp_path):
    agent = _agent(tmp_path)
    agent._on_vrrp("web", "BACKUP")
    assert "web" not in agent.status.vrrp_since  # the first state seen: no change seen
    agent._on_vrrp("web", "MASTER")
    took_over = agent.status.vrrp_since["web"]
    assert took_over and agent.store.written[-1].vrrp_since["web"] == took_over
    agent._on_vrrp("web", "MASTER")  # the same state told again (an adopted keepalived)
    assert agent.status.vrrp_since["web"] == took_over
