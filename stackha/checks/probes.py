"""Health probes shared by `stackha check` and the agent. Each returns None when healthy,
otherwise a one-line reason. No shell is ever involved."""

from __future__ import annotations

import socket
import time
import urllib.parse
from typing import Any


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


# The greeting is one packet; the longest seen (MySQL 8 with a long version string and the
# caching_sha2 plugin name) is under 120 bytes. Anything claiming more is not a greeting.
_GREETING_MAX = 1024


def check_mysql_greeting(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Connect and read the server's first packet (Protocol::HandshakeV10): protocol version
    10, a NUL-terminated server version, connection id, salt. No login, no query, so it costs
    a connect and a read on both sides; ``check_mysql`` does the login. An ERR packet there
    (too many connections, host blocked) is unhealthy with the server's own words."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            header = _read_exactly(sock, 4, deadline)
            length = int.from_bytes(header[:3], "little")
            if not 0 < length <= _GREETING_MAX or header[3] != 0:
                return f"{host}:{port}: not a MySQL greeting: {header!r}"
            payload = _read_exactly(sock, length, deadline)
    except EOFError as exc:
        return f"{host}:{port}: closed before the greeting ended ({exc})"
    except OSError as exc:
        return f"{host}:{port}: {exc.strerror or exc}"
    return _greeting_problem(payload, f"{host}:{port}")


def _read_exactly(sock: socket.socket, count: int, deadline: float) -> bytes:
    data = b""
    while len(data) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError(f"{len(data)} of {count} bytes")
        data += chunk
    return data


def _greeting_problem(payload: bytes, where: str) -> str | None:
    if payload[0] == 0xFF:
        code = int.from_bytes(payload[1:3], "little")
        message = payload[3:].decode("utf-8", "replace")
        return f"{where}: server refused: {code} {message.lstrip('#')}"
    if payload[0] != 10:
        return f"{where}: not a MySQL greeting: protocol version {payload[0]}"
    end = payload.find(b"\x00", 1)
    # after the version: connection id (4), salt part 1 (8), filler (1), capabilities (2)
    if end < 2 or len(payload) < end + 1 + 4 + 8 + 1 + 2:
        return f"{where}: not a MySQL greeting: {payload[:40]!r}"
    try:
        payload[1:end].decode("ascii")
    except UnicodeDecodeError:
        return f"{where}: not a MySQL greeting: server version {payload[1:end]!r}"
    return None


def mysql_connect(**options: Any) -> Any:
    """``pymysql.connect`` as every login stackha makes it (checks, the MyCat manager, the
    drill, the stand-in): without TLS. MyCat 1.6 has none, and pymysql's "preferred" TLS
    made a default context per login, loading the system's CA bundle: 36 ms of CPU each
    (measured against the lab's MyCat; the login itself takes under 1 ms)."""
    import pymysql

    return pymysql.connect(ssl_disabled=True, **options)


def check_mysql(host: str, port: int, user: str, password: str, timeout: float = 1.0,
                database: str | None = None) -> str | None:
    """A MySQL-protocol login and a trivial query, as a client would do it."""
    import pymysql

    try:
        connection = mysql_connect(host=host, port=port, user=user, password=password,
                                   database=database, connect_timeout=timeout,
                                   read_timeout=timeout, write_timeout=timeout)
    except pymysql.MySQLError as exc:
        return f"{host}:{port}: login as {user} failed: {exc.args[-1] if exc.args else exc}"
    try:
        with connection.cursor() as cursor:
            cursor.execute("select 1")
            row = cursor.fetchone()
        return None if row and str(row[0]) == "1" else f"{host}:{port}: unexpected answer {row}"
    except pymysql.MySQLError as exc:
        return f"{host}:{port}: query failed: {exc.args[-1] if exc.args else exc}"
    finally:
        connection.close()
