"""stackha.checks.mysqlwire from the server's side: what a MySQL server, MyCat 1.6, or a
hostile or broken one sends, and what the agent's checks and manager client make of it. The
real servers (MariaDB, MyCat 1.6.6.1) are in tests/integration/test_mycat_real.py."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from pymysql import _auth

from stackha.checks import mysqlwire
from stackha.checks.mysqlwire import (
    CANNOT_CONNECT,
    SERVER_LOST,
    Connection,
    MysqlError,
    parse_greeting,
    scramble,
)
from stackha.checks.probes import check_mysql
from stackha.mycat.manager import ManagerClient, ManagerError, ManagerNoAnswer, ManagerUnavailable

SALT = b"abcdefgh" + b"ijklmnopqrst"


def _packet(sequence: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "little") + bytes([sequence & 0xFF]) + payload


def _greeting_v10(plugin: bool = True) -> bytes:
    caps = 0xF7FF | (0x0008_0000 if plugin else 0) | 0x8000
    body = (b"\x0a" + b"5.7.99-test\x00" + (7).to_bytes(4, "little") + SALT[:8] + b"\x00"
            + (caps & 0xFFFF).to_bytes(2, "little") + b"\x21" + b"\x02\x00"
            + (caps >> 16).to_bytes(2, "little") + bytes([21]) + bytes(10) + SALT[8:] + b"\x00")
    return body + (b"mysql_native_password\x00" if plugin else b"")


def _greeting_mycat16() -> bytes:
    # MyCat 1.6's HandshakePacket: 13 zero bytes where V10 has the upper capabilities, the
    # salt length and the reserved bytes, then the rest of the salt and a NUL; no plugin.
    return (b"\x0a" + b"5.6.29-mycat-1.6.6.1-release\x00" + (1).to_bytes(4, "little")
            + SALT[:8] + b"\x00" + (0xF7CF).to_bytes(2, "little") + b"\x21\x02\x00"
            + bytes(13) + SALT[8:] + b"\x00")


def _lenenc(data: bytes | None) -> bytes:
    if data is None:
        return b"\xfb"
    assert len(data) < 0xFB
    return bytes([len(data)]) + data


def _column(name: str, kind: int) -> bytes:
    return (b"".join(_lenenc(x) for x in (b"def", b"", b"", b"", name.encode(), name.encode()))
            + b"\x0c" + b"\x21\x00" + (20).to_bytes(4, "little") + bytes([kind])
            + b"\x00\x00" + b"\x00" + b"\x00\x00")


EOF_PACKET = b"\xfe\x00\x00\x02\x00"
OK_PACKET = b"\x00\x00\x00\x02\x00\x00\x00"


def _result_set(columns: list[tuple[str, int]], rows: list[list[bytes | None]]) -> bytes:
    out, seq = [], 1
    for payload in ([bytes([len(columns)])] + [_column(n, k) for n, k in columns]
                    + [EOF_PACKET] + [b"".join(_lenenc(v) for v in row) for row in rows]
                    + [EOF_PACKET]):
        out.append(_packet(seq, payload))
        seq += 1
    return b"".join(out)


def _read_packet(sock: socket.socket) -> bytes:
    header = b""
    while len(header) < 4:
        chunk = sock.recv(4 - len(header))
        if not chunk:
            return b""
        header += chunk
    length = int.from_bytes(header[:3], "little")
    data = b""
    while len(data) < length:
        data += sock.recv(length - len(data))
    return data


Script = Callable[[socket.socket, list[bytes]], None]


@pytest.fixture
def server() -> Iterator[Callable[[Script], int]]:
    """A one-connection server running ``script(sock, received)``; yields its port."""
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []

    def start(script: Script) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def serve() -> None:
            conn, _ = listener.accept()
            with conn:
                try:
                    script(conn, [])
                except OSError:
                    pass

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        threads.append(thread)
        return listener.getsockname()[1]

    yield start
    for listener in listeners:
        listener.close()


def _logs_in(greeting: bytes, answer: bytes = OK_PACKET, expect_password: str = "pw"):
    def script(sock: socket.socket, received: list[bytes]) -> None:
        sock.sendall(_packet(0, greeting))
        login = _read_packet(sock)
        received.append(login)
        salt = parse_greeting(greeting).salt
        if scramble(expect_password, salt) not in login:
            sock.sendall(_packet(2, b"\xff\x15\x04#28000Access denied for user"))
            return
        sock.sendall(_packet(2, answer))
        query = _read_packet(sock)
        if query == b"\x03select 1":
            sock.sendall(_result_set([("1", 0x08)], [[b"1"]]))
        elif query.startswith(b"\x03show"):
            sock.sendall(_result_set([("NAME", 0xFD), ("RS_CODE", 0x03), ("NOTE", 0xFD)],
                                     [[b"dn0", b"1", None], [b"dn1", b"-1", b"x"]]))
        elif query.startswith(b"\x03reload"):
            sock.sendall(_packet(1, OK_PACKET))
        _read_packet(sock)  # COM_QUIT
    return script


def test_the_scramble_is_mysql_native_passwords_over_the_passwords_utf8_bytes():
    # pymysql's function is the oracle for the algorithm; pymysql.connect itself encodes a
    # password as latin-1, this client as UTF-8 (the connection's charset, utf8).
    for password in ("pw", "pässwörd", "x" * 80):
        assert scramble(password, SALT) == _auth.scramble_native_password(
            password.encode(), SALT)
    assert scramble("", SALT) == b""


def test_a_v10_greeting_and_mycat_16s_own_give_the_same_salt():
    assert parse_greeting(_greeting_v10()).salt == SALT
    assert parse_greeting(_greeting_v10()).plugin == b"mysql_native_password"
    mycat = parse_greeting(_greeting_mycat16())
    assert mycat.salt == SALT and mycat.plugin == b"" and "mycat" in mycat.server_version


@pytest.mark.parametrize("greeting", [_greeting_v10(), _greeting_v10(plugin=False),
                                      _greeting_mycat16()])
def test_the_check_logs_in_and_reads_select_1(server, greeting):
    port = server(_logs_in(greeting))
    assert check_mysql("127.0.0.1", port, "app", "pw", timeout=2) is None


def test_a_wrong_password_is_the_servers_refusal_with_its_words(server):
    port = server(_logs_in(_greeting_mycat16()))
    reason = check_mysql("127.0.0.1", port, "app", "wrong", timeout=2)
    assert reason == f"127.0.0.1:{port}: login as app failed: Access denied for user"


def test_the_manager_client_reads_rows_with_names_types_and_nulls(server):
    port = server(_logs_in(_greeting_mycat16()))
    rows = ManagerClient("127.0.0.1", port, "app", "pw", timeout=2).heartbeat()
    assert rows == [{"NAME": "dn0", "RS_CODE": 1, "NOTE": None},
                    {"NAME": "dn1", "RS_CODE": -1, "NOTE": "x"}]


def test_a_command_answered_with_ok_gives_no_rows(server):
    port = server(_logs_in(_greeting_mycat16()))
    ManagerClient("127.0.0.1", port, "app", "pw", timeout=2).reload_config()


def test_a_refused_login_on_the_manager_port_is_a_manager_error_not_unavailable(server):
    port = server(_logs_in(_greeting_mycat16()))
    with pytest.raises(ManagerError) as refused:
        ManagerClient("127.0.0.1", port, "app", "wrong", timeout=2).version()
    assert not isinstance(refused.value, ManagerUnavailable) and refused.value.code == 1045


def test_an_auth_plugin_other_than_native_password_is_named(server):
    port = server(_logs_in(_greeting_v10(), answer=b"\xfecaching_sha2_password\x00" + SALT))
    reason = check_mysql("127.0.0.1", port, "app", "pw", timeout=2)
    assert "asks for the auth plugin 'caching_sha2_password'" in reason


def test_an_auth_switch_to_native_password_answers_the_new_salt(server):
    new_salt = b"ZYXWVUTSRQPONMLKJIHG"

    def script(sock: socket.socket, received: list[bytes]) -> None:
        sock.sendall(_packet(0, _greeting_v10()))
        _read_packet(sock)
        sock.sendall(_packet(2, b"\xfemysql_native_password\x00" + new_salt + b"\x00"))
        if _read_packet(sock) != scramble("pw", new_salt):
            sock.sendall(_packet(4, b"\xff\x15\x04#28000wrong switch answer"))
            return
        sock.sendall(_packet(4, OK_PACKET))
        _read_packet(sock)
        sock.sendall(_result_set([("1", 0x08)], [[b"1"]]))

    assert check_mysql("127.0.0.1", server(script), "app", "pw", timeout=2) is None


# How long a hostile server keeps a connection: far beyond the client's 1 s, so that "gave up
# by itself" holds with a wide margin on a busy host (not a timing measurement).
HOSTILE_FOR = 10.0


def _hostile(after_login: bytes | None = None, greeting: bytes | None = None,
             drip: bytes | None = None) -> Script:
    def script(sock: socket.socket, received: list[bytes]) -> None:
        if drip is not None:
            for byte in drip:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
            return
        sock.sendall(greeting if greeting is not None else _packet(0, _greeting_mycat16()))
        if after_login is None:
            time.sleep(HOSTILE_FOR)
            return
        _read_packet(sock)
        sock.sendall(_packet(2, OK_PACKET))
        _read_packet(sock)
        sock.sendall(after_login)
        time.sleep(HOSTILE_FOR)
    return script


ENDLESS_ROWS = _result_set([("1", 0x08)], [[b"1"]] * 2000)[:-9]  # no closing EOF


@pytest.mark.parametrize(("script", "code"), [
    # before the login ends: CANNOT_CONNECT
    (_hostile(greeting=b"\xff\xff\xff\x00" + b"x" * 100), CANNOT_CONNECT),  # 16 MiB claimed
    (_hostile(greeting=_packet(0, b"\x09old protocol\x00")), CANNOT_CONNECT),
    (_hostile(greeting=_packet(0, b"\x0a5.7\x00\x01\x02")), CANNOT_CONNECT),  # truncated
    (_hostile(greeting=_packet(0, b"\x0a5.7")), CANNOT_CONNECT),  # no NUL anywhere
    (_hostile(), CANNOT_CONNECT),  # greets, then never answers the login
    (_hostile(drip=_packet(0, _greeting_mycat16())), CANNOT_CONNECT),  # 4 s of drip, 1 s due
    # after it: SERVER_LOST
    (_hostile(after_login=_packet(1, b"\xfe" + b"\xff" * 8)), SERVER_LOST),  # 2**64 columns
    (_hostile(after_login=_packet(1, b"\x02") + _packet(2, b"\x03def")), SERVER_LOST),
    (_hostile(after_login=_result_set([("a", 0xFD)], [[b"1", b"2"]])), SERVER_LOST),
    (_hostile(after_login=_packet(1, b"\x01") + _packet(2, _column("a", 3))
              + _packet(3, b"\x03\xff\xff")), SERVER_LOST),  # a row where the EOF is due
    (_hostile(after_login=ENDLESS_ROWS), SERVER_LOST),  # rows, and then nothing
])
def test_a_hostile_or_broken_server_costs_one_timeout_and_a_clean_error(server, script, code):
    port = server(script)
    started = time.monotonic()
    with pytest.raises(MysqlError) as failed:
        Connection.open("127.0.0.1", port, "app", "pw", timeout=1).query("select 1")
    assert failed.value.code == code
    assert time.monotonic() - started < HOSTILE_FOR - 2  # gave up by itself, not the server


def test_no_manager_port_is_unavailable_and_no_answer_is_no_answer(server):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ManagerUnavailable) as unavailable:
        ManagerClient("127.0.0.1", closed, "app", "pw", timeout=1).version()
    assert not isinstance(unavailable.value, ManagerNoAnswer)
    port = server(_hostile(after_login=b""))
    with pytest.raises(ManagerNoAnswer):
        ManagerClient("127.0.0.1", port, "app", "pw", timeout=0.5).reload_config()


def test_a_packet_over_the_limit_is_refused_before_it_is_read(server, monkeypatch):
    monkeypatch.setattr(mysqlwire, "MAX_PACKET", 64)
    port = server(_hostile(after_login=_result_set([("a", 0xFD)], [[b"x" * 100]])))
    with pytest.raises(MysqlError) as failed:
        Connection.open("127.0.0.1", port, "app", "pw", timeout=1).query("show @@x")
    assert "over 64" in failed.value.message


def _endless(row: bytes) -> Script:
    def script(sock: socket.socket, received: list[bytes]) -> None:
        sock.sendall(_packet(0, _greeting_mycat16()))
        _read_packet(sock)
        sock.sendall(_packet(2, OK_PACKET))
        _read_packet(sock)
        sock.sendall(_packet(1, b"\x01") + _packet(2, _column("a", 0xFD)) + _packet(3, EOF_PACKET))
        seq = 4
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            sock.sendall(_packet(seq, row))
            seq += 1
    return script


def test_an_endless_result_is_cut_at_the_byte_budget_not_held_in_memory(server):
    # 1 MB rows without end: before the budget the client held 1.3 GiB after its 1 s.
    row = b"\xfd" + (1_000_000).to_bytes(3, "little") + b"x" * 1_000_000
    port = server(_endless(row))
    with pytest.raises(MysqlError) as failed:
        Connection.open("127.0.0.1", port, "app", "pw", timeout=5).query("show @@x")
    assert failed.value.code == SERVER_LOST and "answer over" in failed.value.message


def test_one_deadline_covers_the_login_and_the_query(server):
    def slow(sock: socket.socket, received: list[bytes]) -> None:
        time.sleep(0.6)
        sock.sendall(_packet(0, _greeting_mycat16()))
        _read_packet(sock)
        sock.sendall(_packet(2, OK_PACKET))
        _read_packet(sock)
        time.sleep(0.6)
        sock.sendall(_result_set([("1", 0x08)], [[b"1"]]))

    port = server(slow)
    reason = check_mysql("127.0.0.1", port, "app", "pw", timeout=1.0)
    assert reason is not None and "timed out" in reason  # each phase alone was in time


def test_a_server_error_numbered_like_a_client_code_stays_the_servers(server):
    def script(sock: socket.socket, received: list[bytes]) -> None:
        sock.sendall(_packet(0, _greeting_mycat16()))
        _read_packet(sock)
        sock.sendall(_packet(2, OK_PACKET))
        _read_packet(sock)
        sock.sendall(_packet(1, b"\xff\xdd\x07#HY000Unknown command"))  # server error 2013
        _read_packet(sock)

    port = server(script)
    with pytest.raises(ManagerError) as failed:
        ManagerClient("127.0.0.1", port, "app", "pw", timeout=2).version()
    assert not isinstance(failed.value, ManagerUnavailable)
    assert failed.value.message == "Unknown command" and failed.value.code == 2013
