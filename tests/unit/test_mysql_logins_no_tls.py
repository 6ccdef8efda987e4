"""Every MySQL login stackha makes (the MyCat health check, the directors' realserver logins,
the MyCat manager client: stackha.checks.mysqlwire, which has no TLS at all; the drill's SQL
probe: pymysql) is plain: MyCat 1.6 speaks no TLS, and
pymysql 2.2's "preferred" TLS built a default context per connection, loading the system's
CA bundle each time: 36 ms of CPU per login (measured against the lab's MyCat), 4 % of a
core for a check every second, and memory that glibc kept."""

from __future__ import annotations

import socket
import ssl

import pytest

from stackha.checks.probes import check_mysql
from stackha.mycat.manager import ManagerClient, ManagerError, ManagerUnavailable


@pytest.fixture
def no_tls_context(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("a TLS context was made for a MySQL login")

    monkeypatch.setattr(ssl, "create_default_context", refuse)
    monkeypatch.setattr(ssl.SSLContext, "load_default_certs", refuse)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_mysql_check_makes_no_tls_context(no_tls_context):
    reason = check_mysql("127.0.0.1", _closed_port(), "app", "pw", timeout=0.5)
    assert reason is not None and "login as app failed" in reason


def test_the_manager_client_makes_no_tls_context(no_tls_context):
    client = ManagerClient("127.0.0.1", _closed_port(), "report", "pw", timeout=0.5)
    with pytest.raises((ManagerUnavailable, ManagerError)):
        client.version()


def test_the_drills_sql_probe_makes_no_tls_context(no_tls_context):
    from stackha.lab.drill.probes import MysqlProbe

    outcome = MysqlProbe("127.0.0.1", _closed_port(), "app", "pw", timeout=0.5)()
    assert not outcome.ok and outcome.error.startswith("login: ")
