"""stackha drill: the probes and their scheduler, against local stand-ins (no lab needed)."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator

import pytest

from stackha.lab.drill.analysis import probe_figures
from stackha.lab.drill.probes import (
    FRESH_ERROR,
    KEEPALIVE_ERROR,
    KeepAliveWebProbe,
    MysqlProbe,
    Outcome,
    Prober,
    WebProbe,
)


@pytest.fixture
def web_server() -> Iterator[tuple[str, int, dict]]:
    state = {"status": 200, "body": b"stackha demo"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(state["status"])
            self.end_headers()
            self.wfile.write(state["body"])

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_web_probe_ok_failed_and_marked(web_server):
    host, port, state = web_server
    probe = WebProbe(host, port, timeout=1.0)
    assert probe() == Outcome(True)
    probe.markers = (b"demo",)
    assert probe() == Outcome(True, "", marked=True)
    state["status"] = 503
    outcome = probe()
    assert not outcome.ok and outcome.error == "HTTP 503" and outcome.marked


def test_web_probe_refused_is_a_failure():
    outcome = WebProbe("127.0.0.1", 1, timeout=0.5)()
    assert not outcome.ok and "ConnectionRefusedError" in outcome.error


def test_prober_starts_an_attempt_every_interval_and_keeps_each_sample():
    calls: list[float] = []

    def probe() -> Outcome:
        calls.append(time.monotonic())
        return Outcome(len(calls) % 5 != 0, "boom" if len(calls) % 5 == 0 else "")

    origin = time.monotonic()
    prober = Prober("fake", probe, origin, interval=0.01).start()
    time.sleep(0.5)
    samples = prober.stop()
    assert 10 <= len(samples) <= 55  # 50 on an idle machine
    assert [s.t for s in samples] == sorted(s.t for s in samples)
    assert all(s.t >= 0 and s.duration >= 0 for s in samples)
    assert any(not s.ok and s.error == "boom" for s in samples)


def test_a_hanging_attempt_does_not_hold_up_the_next_ones():
    release = threading.Event()
    started = threading.Semaphore(0)

    def probe() -> Outcome:
        if not release.is_set():
            started.release()
            release.wait(5)
            return Outcome(False, "TimeoutError: timed out")
        return Outcome(True)

    prober = Prober("slow", probe, time.monotonic(), interval=0.01, max_in_flight=8).start()
    for _ in range(8):
        assert started.acquire(timeout=5)
    deadline = time.monotonic() + 5
    while prober.skipped < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    time.sleep(0.1)
    samples = prober.stop()
    # 8 attempts hung at once, the ticks beyond that were skipped, none queued up behind
    assert sum(not s.ok for s in samples) == 8
    assert prober.skipped >= 3 and sum(s.ok for s in samples) >= 1


def test_a_sample_carries_how_late_its_attempt_started():
    # A starved client: its workers run 0.25 s after their tick was due (the clock each
    # worker reads is that far ahead of the scheduler's).
    def clock() -> float:
        late = threading.current_thread().name.startswith("probe-starved")
        return time.monotonic() + (0.25 if late else 0.0)

    prober = Prober("starved", lambda: Outcome(True), time.monotonic(), interval=0.01,
                    clock=clock).start()
    time.sleep(0.1)
    samples = prober.stop()
    assert samples and all(0.24 <= s.lag < 1.0 for s in samples)
    figures = probe_figures(samples)
    assert figures.lag_max >= figures.lag_p99 >= 0.24
    assert figures.to_dict()["client_lag_max_s"] >= 0.24


def test_an_exception_in_a_probe_is_a_failed_sample():
    def probe() -> Outcome:
        raise RuntimeError("bug")

    prober = Prober("raising", probe, time.monotonic(), interval=0.01).start()
    time.sleep(0.05)
    samples = prober.stop()
    assert samples and all(not s.ok and s.error == "RuntimeError: bug" for s in samples)


def test_recent_ok():
    outcomes = iter([Outcome(False)] * 3 + [Outcome(True)] * 1000)
    origin = time.monotonic()
    prober = Prober("r", lambda: next(outcomes), origin, interval=0.01).start()
    assert prober.recent_ok(since=100.0) is None
    time.sleep(0.2)
    assert prober.recent_ok(since=0.0) is False
    assert prober.recent_ok(since=time.monotonic() - origin - 0.1) is True
    prober.stop()


class FakeCursor:
    def __init__(self, connection: FakeConnection) -> None:
        self.connection = connection

    def __enter__(self) -> FakeCursor:
        return self

    def __exit__(self, *args: object) -> None:
        pass

    def execute(self, sql: str) -> None:
        import pymysql

        assert sql == "select 1"
        if self.connection.broken:
            raise pymysql.err.OperationalError(2013, "Lost connection to MySQL server")
        self.connection.queries += 1

    def fetchone(self) -> tuple:
        return (1,)


class FakeConnection:
    def __init__(self) -> None:
        self.broken = False
        self.closed = False
        self.queries = 0

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def close(self) -> None:
        self.closed = True


def test_mysql_probe_reuses_a_connection_then_logs_in_anew(monkeypatch):
    made: list[FakeConnection] = []

    def login(self) -> FakeConnection:
        made.append(FakeConnection())
        return made[-1]

    monkeypatch.setattr(MysqlProbe, "_login", login)
    probe = MysqlProbe("vip", 8066, "app", "pw", "shop", max_uses=3, pool=2)
    assert all(probe().ok for _ in range(7))
    assert [c.queries for c in made] == [3, 3, 1]
    assert [c.closed for c in made] == [True, True, False]
    made[-1].broken = True
    outcome = probe()
    assert not outcome.ok and outcome.error.startswith("select 1: Lost connection")
    assert made[-1].closed
    assert probe().ok and len(made) == 4
    probe.close()
    assert made[-1].closed


def test_mysql_probe_login_failure(monkeypatch):
    import pymysql

    def login(self) -> FakeConnection:
        raise pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'vip'")

    monkeypatch.setattr(MysqlProbe, "_login", login)
    outcome = MysqlProbe("vip", 8066, "app", "pw")()
    assert not outcome.ok and outcome.error == "login: Can't connect to MySQL server on 'vip'"


def test_mysql_probe_waits_for_a_pooled_connection_then_fails(monkeypatch):
    gate = threading.Event()

    def login(self) -> FakeConnection:
        gate.wait(5)
        return FakeConnection()

    monkeypatch.setattr(MysqlProbe, "_login", login)
    probe = MysqlProbe("vip", 8066, "app", "pw", timeout=0.2, pool=1)
    first = threading.Thread(target=probe)
    first.start()
    time.sleep(0.05)
    outcome = probe()  # the only slot is logging in: no connection within the timeout
    assert not outcome.ok and outcome.error.startswith("pool: no connection free")
    gate.set()
    first.join()
    assert probe().ok and probe.logins == 0  # the first attempt's connection, reused


# keep-alive ---------------------------------------------------------------------------------

@pytest.fixture
def keepalive_server() -> Iterator[tuple[str, int, dict]]:
    """HTTP/1.1 with keep-alive; ``state["connections"]`` counts the connections accepted and
    ``state["close_after"]`` makes the server answer one request then drop the connection
    without a word (as when a VIP moves and the new holder resets it)."""
    state: dict = {"connections": 0, "drop": False, "close_header": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            state["connections"] += 1

        def do_GET(self) -> None:
            if state["drop"]:
                self.close_connection = True
                return
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            if state["close_header"]:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.1", server.server_address[1], state
    server.shutdown()
    server.server_close()


def test_keepalive_probe_reuses_its_connection(keepalive_server):
    host, port, state = keepalive_server
    probe = KeepAliveWebProbe(host, port, timeout=1.0, pool=1)
    outcomes = [probe() for _ in range(5)]
    assert all(o.ok for o in outcomes)
    assert state["connections"] == 1 and probe.connects == 1
    probe.close()


def test_keepalive_probe_tells_a_failed_reused_connection_from_a_failed_fresh_one(
        keepalive_server):
    host, port, state = keepalive_server
    probe = KeepAliveWebProbe(host, port, timeout=1.0, pool=1)
    assert probe().ok
    state["drop"] = True
    reused = probe()
    assert not reused.ok and reused.error.startswith(KEEPALIVE_ERROR)
    fresh = probe()  # the broken connection was dropped: this one is new, and fails too
    assert not fresh.ok and fresh.error.startswith(FRESH_ERROR)
    state["drop"] = False
    assert probe().ok and probe.connects == 3
    probe.close()


def test_keepalive_probe_follows_a_servers_connection_close_without_failing(keepalive_server):
    host, port, state = keepalive_server
    state["close_header"] = True
    probe = KeepAliveWebProbe(host, port, timeout=1.0, pool=1)
    assert all(probe().ok for _ in range(3))
    assert probe.connects == 3
    probe.close()


def test_keepalive_probe_closes_a_connection_after_max_uses(keepalive_server):
    host, port, _state = keepalive_server
    probe = KeepAliveWebProbe(host, port, timeout=1.0, pool=1, max_uses=2)
    assert all(probe().ok for _ in range(4))
    assert probe.connects == 2
    probe.close()


def test_keepalive_probe_refused_is_a_fresh_failure():
    outcome = KeepAliveWebProbe("127.0.0.1", 1, timeout=0.5)()
    assert not outcome.ok and outcome.error.startswith(FRESH_ERROR)
