"""A version that failed only because the service could not be asked is tried again on its
schedule (stackha.model.retry): not refused, not early, not lost, and not for a version that
is no longer current. The agent against a store in memory and a reload that says so."""

from __future__ import annotations

import time
from pathlib import Path

from stackha.agent.core import Agent, AgentSettings, RoleSettings
from stackha.model.bundle import Bundle, ConfigVersion
from stackha.model.retry import RETRY_DELAYS, Retryable
from stackha.store.base import StoreError

SPEC = b"""cluster: c
zookeeper: {hosts: "127.0.0.1:2181"}
nodes:
  - {name: nginx1, address: 10.0.0.1, interface: lo, roles: [nginx]}
"""


def _version(number: int) -> ConfigVersion:
    bundle = Bundle.from_contents({"stackha.yaml": SPEC,
                                   "nginx/html/index.html": f"page {number}\n".encode()})
    return ConfigVersion(number, bundle, "2026-12-02T00:00:00Z", "t", "m")


class MemoryStore:
    def __init__(self) -> None:
        self.current = 1
        self.versions = {n: _version(n) for n in (1, 2)}
        self.unreachable = False
        self.reported: list = []

    def current_number(self) -> int | None:
        if self.unreachable:
            raise StoreError("connection loss")
        return self.current

    def read_version(self, number: int) -> ConfigVersion | None:
        return self.versions.get(number)

    def put_status(self, status) -> None:
        self.reported.append(status)

    def status_of(self, node: str):
        return None

    def statuses(self) -> dict:
        return {}


class Reload:
    """Not answering for the first ``silent`` calls (rollbacks' reloads count too)."""

    def __init__(self, silent: int) -> None:
        self.silent = silent
        self.calls = 0

    def __call__(self) -> str | None:
        self.calls += 1
        return Retryable("manager port: not a MySQL greeting: timed out") \
            if self.calls <= self.silent else None


def _agent(tmp_path: Path, reload: Reload) -> tuple[Agent, MemoryStore]:
    store = MemoryStore()
    settings = AgentSettings(node="nginx1", state_dir=tmp_path / "state",
                             roles={"nginx": RoleSettings(target=tmp_path / "nginx",
                                                          health=False)})
    agent = Agent(settings, store=store)
    agent.resources["nginx"].reload = reload
    agent.resources["nginx"].validate = None  # no nginx here: the files are only written
    agent.zk_state = "CONNECTED"
    return agent, store


def _due_now(agent: Agent) -> None:
    assert agent._retry is not None
    agent._retry = type(agent._retry)(agent._retry.number, agent._retry.attempt, 0.0,
                                      agent._retry.delay)


def test_not_refused_not_early_and_applied_once_it_answers(tmp_path: Path):
    reload = Reload(silent=2)  # the apply's reload and its rollback's
    agent, _ = _agent(tmp_path, reload)
    agent._on_current(1)
    assert agent.applied is None and 1 not in agent.rejected
    assert agent.status.last_error.startswith("retrying version 1 in 5 s (try 2 of 7): ")
    assert agent.status.rejected_version is None
    calls = reload.calls
    agent._on_current(1)  # a reconnect's resync before the try is due
    assert reload.calls == calls
    _due_now(agent)
    agent._try_again()
    assert agent.applied is not None and agent.applied.number == 1
    assert agent._retry is None and agent.status.last_error == ""


def test_a_store_that_does_not_answer_the_try_keeps_it_for_later(tmp_path: Path):
    agent, store = _agent(tmp_path, Reload(silent=2))
    agent._on_current(1)
    _due_now(agent)
    store.unreachable = True
    agent._try_again()
    assert agent._retry is not None and agent._retry.number == 1
    # The same try, armed again for later (not spent, not stuck in the past or for ever).
    assert agent._retry.attempt == 1
    assert time.monotonic() < agent._retry.due <= time.monotonic() + RETRY_DELAYS[0]
    store.unreachable = False
    _due_now(agent)
    agent._try_again()
    assert agent.applied is not None and agent.applied.number == 1


def test_tries_end_in_a_refusal(tmp_path: Path):
    agent, _ = _agent(tmp_path, Reload(silent=10 ** 6))
    agent._on_current(1)
    for _ in RETRY_DELAYS:
        assert 1 not in agent.rejected
        _due_now(agent)
        agent._try_again()
    assert 1 in agent.rejected and agent._retry is None
    assert agent.status.last_error.startswith("version 1 rolled back at reload: ")


def test_a_newer_version_drops_the_wait(tmp_path: Path):
    # Version 2 refused here earlier: it is current now, and nothing of 1 is to be tried.
    agent, store = _agent(tmp_path, Reload(silent=2))
    agent._on_current(1)
    assert agent._retry is not None
    agent.rejected.add(2)
    store.current = 2
    agent._on_current(2)
    assert agent._retry is None and agent.applied is None
