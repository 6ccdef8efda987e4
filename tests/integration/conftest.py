"""Fixtures shared by the namespace labs."""

from __future__ import annotations

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
