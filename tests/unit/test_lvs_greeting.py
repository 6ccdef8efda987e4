"""The director's cheap MySQL check: connect and parse the server greeting, no login,
against a throwaway loopback server that sends a real-format greeting or garbage."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from stackha.checks.probes import check_mysql_greeting


def greeting(version: bytes = b"5.6.29-mycat-1.6.7.6-release-20220524173810",
             protocol: int = 10) -> bytes:
    """A Protocol::HandshakeV10 packet as MyCat 1.6 and MySQL 5.x send it."""
    payload = (bytes([protocol]) + version + b"\x00" + struct.pack("<I", 42)
               + b"abcdefgh" + b"\x00" + struct.pack("<H", 0xF7FF) + b"\x21"
               + struct.pack("<H", 2) + struct.pack("<H", 0x8000) + b"\x15" + b"\x00" * 10
               + b"ijklmnopqrst\x00" + b"mysql_native_password\x00")
    return struct.pack("<I", len(payload))[:3] + b"\x00" + payload


ERROR = b"\xff\x10\x04Too many connections"
ERROR_PACKET = struct.pack("<I", len(ERROR))[:3] + b"\x00" + ERROR


@contextmanager
def serving(data: bytes | None, chunk: int = 0, close: bool = False) -> Iterator[int]:
    """Accept one connection and send ``data`` (in ``chunk``-byte pieces when set), or stay
    silent when None; then wait for the login (as a server does) or ``close``. Yields the
    port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    done = threading.Event()

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            if data is not None:
                step = chunk or len(data) or 1
                for start in range(0, len(data), step):
                    conn.sendall(data[start:start + step])
            if not close:
                done.wait(5)

    worker = threading.Thread(target=answer, daemon=True)
    worker.start()
    try:
        yield listener.getsockname()[1]
    finally:
        done.set()
        worker.join(5)
        listener.close()


def test_a_real_greeting_is_healthy_even_in_pieces():
    with serving(greeting()) as port:
        assert check_mysql_greeting("127.0.0.1", port, 1.0) is None
    with serving(greeting(), chunk=3) as port:  # TCP may deliver the packet in pieces
        assert check_mysql_greeting("127.0.0.1", port, 1.0) is None


def test_garbage_is_unhealthy_and_named():
    with serving(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        reason = check_mysql_greeting("127.0.0.1", port, 1.0)
    assert reason is not None and f"127.0.0.1:{port}:" in reason and "greeting" in reason
    with serving(greeting(protocol=9)) as port:
        assert "protocol version 9" in (check_mysql_greeting("127.0.0.1", port, 1.0) or "")
    with serving(greeting()[:20], close=True) as port:  # cut short: the server closed mid-packet
        assert "closed" in (check_mysql_greeting("127.0.0.1", port, 1.0) or "")
    with serving(b"mycat2\n") as port:  # the lab's name server: not MySQL at all
        assert check_mysql_greeting("127.0.0.1", port, 1.0) is not None


def test_an_error_packet_says_what_the_server_said():
    with serving(ERROR_PACKET) as port:
        reason = check_mysql_greeting("127.0.0.1", port, 1.0)
    assert reason == f"127.0.0.1:{port}: server refused: 1040 Too many connections"


def test_silence_and_refusal_are_unhealthy():
    with serving(None) as port:
        assert "timed out" in (check_mysql_greeting("127.0.0.1", port, 0.2) or "")
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert check_mysql_greeting("127.0.0.1", port, 0.5) is not None
