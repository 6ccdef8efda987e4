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
