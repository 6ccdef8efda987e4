"""The agent parses a spec once per content, not once per version: most versions change
nginx or MyCat files only, and a 100-node spec costs 6.5 ms of CPU to parse (issue #16)."""

from __future__ import annotations

from pathlib import Path

from stackha.agent import core
from stackha.agent.core import Agent, AgentSettings, RoleSettings
from stackha.model.bundle import Bundle, ConfigVersion

SPEC = b"""cluster: c
zookeeper: {hosts: "127.0.0.1:2181"}
nodes:
  - {name: nginx1, address: 10.0.0.1, interface: lo, roles: [nginx]}
"""


def _version(number: int, spec: bytes, page: bytes) -> ConfigVersion:
    bundle = Bundle.from_contents({"stackha.yaml": spec, "nginx/html/index.html": page})
    return ConfigVersion(number, bundle, "2026-12-02T00:00:00Z", "t", "m")


def test_versions_sharing_a_spec_parse_it_once(tmp_path: Path, monkeypatch):
    calls = []
    real = core.parse_spec

    def counting(text: str, file: str = "stackha.yaml"):
        calls.append(text)
        return real(text, file)

    monkeypatch.setattr(core, "parse_spec", counting)
    settings = AgentSettings(node="nginx1", state_dir=tmp_path / "state",
                             roles={"nginx": RoleSettings(target=tmp_path / "nginx")})
    agent = Agent(settings, store=object())
    first = agent._spec_of(_version(1, SPEC, b"one"))
    second = agent._spec_of(_version(2, SPEC, b"two"))
    assert first is not None and second is first and len(calls) == 1
    changed = agent._spec_of(_version(3, SPEC.replace(b"10.0.0.1", b"10.0.0.2"), b"two"))
    assert changed is not None and changed.node("nginx1").address != first.node("nginx1").address
    assert len(calls) == 2


def test_a_spec_that_does_not_parse_is_remembered_as_such(tmp_path: Path):
    settings = AgentSettings(node="nginx1", state_dir=tmp_path / "state",
                             roles={"nginx": RoleSettings(target=tmp_path / "nginx")})
    agent = Agent(settings, store=object())
    assert agent._spec_of(_version(1, b"nodes: [", b"x")) is None
    assert agent._spec_of(_version(2, SPEC, b"x")) is not None
