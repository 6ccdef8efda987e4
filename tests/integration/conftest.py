"""Fixtures shared by the namespace labs."""

from __future__ import annotations

import threading
import time

import pytest

from testkit.netlab import NetLab


@pytest.fixture
def eth0_namespace(tmp_path):
    """keepalived checks that the interface exists: give it an eth0 whatever the host has."""
    net = NetLab(tmp_path)
    net.create()
    host = net.add_host("kt", 2)
    yield ("ip", "netns", "exec", host.ns, "keepalived")
    net.destroy()


def _zookeeper_sessions() -> set[threading.Thread]:
    # kazoo's connection thread runs ConnectionHandler.zk_loop: one per started client.
    return {t for t in threading.enumerate() if t.name.endswith("(zk_loop)") and t.is_alive()}


@pytest.fixture(autouse=True)
def no_leaked_zookeeper_client():
    """A test closes every ZooKeeper client it starts. One left open outlived its ZooKeeper
    and logged "Connection dropped" into closed streams at the end of the run."""
    before = _zookeeper_sessions()
    yield
    deadline = time.monotonic() + 2.0  # kazoo's stop joins its thread; allow it a moment
    while (left := _zookeeper_sessions() - before) and time.monotonic() < deadline:
        time.sleep(0.05)
    if left:
        pytest.fail(f"{len(left)} ZooKeeper client(s) left started by this test")


# Figures a test wants in the run's summary even when it passes (the MyCat fidelity suite's
# agreement rate): appended to this stash key, printed at the end of the run.
FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def node(tmp_path, configs, zookeeper):
    """nginx1: the real nginx and a real agent (tests/integration/test_agent.py's harness)."""
    from tests.integration.test_agent import _node

    lab = _node(tmp_path, configs, zookeeper)
    yield lab
    lab.close()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[FIGURES] = []


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    figures = config.stash.get(FIGURES, [])
    if figures:
        terminalreporter.section("figures")
        for line in figures:
            terminalreporter.write_line(line)
