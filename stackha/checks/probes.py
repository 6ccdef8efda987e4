"""Health probes shared by `stackha check` and the agent. Each returns None when healthy,
otherwise a one-line reason. No shell is ever involved."""

from __future__ import annotations

import socket
import urllib.parse

from stackha.checks.mysqlwire import Connection, MysqlError


def check_http(url: str, timeout: float = 1.0) -> str | None:
    """Healthy is a 2xx or 3xx answer within ``timeout``.

    Plain http is a hand-written HTTP/1.0 GET that reads only the status line: keepalived
    starts `stackha check nginx` every second at normal priority, and on a starved machine the
    start-up CPU decides whether it finishes in time; importing http.client (and the email
    package behind it) was over a third of that. https still goes through http.client.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"unsupported URL {url!r}"
    if parts.scheme == "https":
        return _check_https(url, parts, timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.0\r\nHost: {parts.netloc}\r\n"
               "User-Agent: stackha-check\r\nConnection: close\r\n\r\n").encode("latin-1")
    head = b""
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
            sock.sendall(request)
            while b"\n" not in head and len(head) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
    except (OSError, ValueError) as exc:
        return f"{url}: {exc.__class__.__name__}: {exc}"
    line = head.split(b"\n", 1)[0].decode("latin-1").strip()
    fields = line.split(None, 2)
    if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        return f"{url}: BadStatusLine: {line!r}"
    status = int(fields[1])
    return None if 200 <= status < 400 else f"{url}: HTTP {status}"


def _check_https(url: str, parts: urllib.parse.SplitResult, timeout: float) -> str | None:
    import http.client

    connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path or "/", headers={"User-Agent": "stackha-check"})
        status = connection.getresponse().status
    except (OSError, http.client.HTTPException) as exc:
        return f"{url}: {exc.__class__.__name__}: {exc}"
    finally:
        connection.close()
    return None if 200 <= status < 400 else f"{url}: HTTP {status}"


def check_tcp(host: str, port: int, timeout: float = 1.0) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"


def check_mysql_greeting(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Connect and read the server's first packet (Protocol::HandshakeV10): no login, no
    query, so it costs a connect and a read on both sides; ``check_mysql`` does the login. An
    ERR packet there (too many connections, host blocked) is unhealthy with the server's own
    words."""
    try:
        connection = Connection.connect(host, port, timeout)
    except MysqlError as exc:
        return exc.message
    try:
        connection.greeting()
    except MysqlError as exc:
        if exc.from_server:
            return f"{host}:{port}: server refused: {exc.code} {exc.message}"
        return exc.message
    finally:
        connection.close(goodbye=False)
    return None


def check_mysql(host: str, port: int, user: str, password: str, timeout: float = 1.0,
                database: str | None = None) -> str | None:
    """A MySQL-protocol login and a trivial query, as a client would do it."""
    try:
        connection = Connection.open(host, port, user, password, database, timeout)
    except MysqlError as exc:
        return f"{host}:{port}: login as {user} failed: {exc.message}"
    try:
        rows = connection.query("select 1").rows
    except MysqlError as exc:
        return f"{host}:{port}: query failed: {exc.message}"
    finally:
        connection.close()
    row = rows[0] if rows else None
    return None if row and str(row[0]) == "1" else f"{host}:{port}: unexpected answer {row}"
