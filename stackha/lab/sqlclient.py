"""pymysql as the lab makes its MySQL logins (the drill's SQL probe, mycat-standin's backend
connections): without TLS. MyCat 1.6 has none, and pymysql's "preferred" TLS made a default
context per login, loading the system's CA bundle: 36 ms of CPU each (measured against the
lab's MyCat; the login itself takes under 1 ms). The agent itself speaks
stackha.checks.mysqlwire instead and holds no pymysql."""

from __future__ import annotations

from typing import Any


def mysql_connect(**options: Any) -> Any:
    """``pymysql.connect`` with TLS off."""
    import pymysql

    return pymysql.connect(ssl_disabled=True, **options)
