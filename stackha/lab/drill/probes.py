"""Client probes: what a client of each VIP sees, one attempt every 10 ms.

A web probe is an HTTP GET on a fresh connection (no keep-alive), so every attempt asks the
VIP's current owner; a keep-alive web probe (``KeepAliveWebProbe``) keeps its connections open
and tells a request lost on a kept connection from a failed new one. A MySQL probe is
``select 1`` on a small pool of connections to the MySQL VIP that keeps logging in anew (see
``MysqlProbe``). A ``Prober`` starts one attempt per
``interval`` on a pool of worker threads, so an attempt that hangs until its timeout does not
hold up the next ones: while a VIP is unreachable the series keeps its resolution (up to
``max_in_flight`` attempts at once; beyond that a tick is skipped and counted).
"""

from __future__ import annotations

import http.client
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from stackha.lab.sqlclient import mysql_connect

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 0.01
DEFAULT_TIMEOUT = 1.0


@dataclass(frozen=True)
class Outcome:
    """One attempt's result. ``marked``: the answer carried a watched marker (the content of a
    configuration that must never be served); the attempt itself may still be ``ok``."""

    ok: bool
    error: str = ""
    marked: bool = False


@dataclass(frozen=True)
class Sample:
    """One attempt: started ``t`` seconds after the drill's origin, took ``duration``.
    ``lag``: how late it started after its tick was due, the client's own delay (a starved
    prober), which a failure must not be blamed on the lab without looking at."""

    t: float
    duration: float
    ok: bool
    error: str = ""
    marked: bool = False
    lag: float = 0.0


Probe = Callable[[], Outcome]


class WebProbe:
    """HTTP GET ``path`` on ``host:port``; ok is a 2xx/3xx answer within ``timeout``.

    ``markers`` may be set at any time (one assignment, atomic): an answer whose body holds
    one of them is ``marked``.
    """

    def __init__(self, host: str, port: int = 80, path: str = "/",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.markers: tuple[bytes, ...] = ()

    def __call__(self) -> Outcome:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.request("GET", self.path, headers={"User-Agent": "stackha-drill",
                                                          "Connection": "close"})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return Outcome(False, f"{exc.__class__.__name__}: {exc}")
        finally:
            connection.close()
        marked = any(m in body for m in self.markers)
        if not 200 <= response.status < 400:
            return Outcome(False, f"HTTP {response.status}", marked)
        return Outcome(True, "", marked)


KEEPALIVE_ERROR = "keep-alive"
FRESH_ERROR = "fresh"


class _PooledProbe:
    """A probe over a pool of connections: at most ``pool`` attempts at once, each waiting at
    most ``timeout`` for a free slot (subclasses set both, and ``_slots``)."""

    timeout: float
    _slots: threading.BoundedSemaphore

    def __call__(self) -> Outcome:
        if not self._slots.acquire(timeout=self.timeout):
            return Outcome(False, "pool: no connection free within the timeout")
        try:
            return self._attempt()
        finally:
            self._slots.release()

    _idle: queue.SimpleQueue[tuple[Any, int]]

    def _attempt(self) -> Outcome:
        raise NotImplementedError

    @staticmethod
    def _close_connection(connection: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Close every idle connection of the pool."""
        while True:
            try:
                connection, _ = self._idle.get_nowait()
            except queue.Empty:
                return
            self._close_connection(connection)


class KeepAliveWebProbe(_PooledProbe):
    """HTTP GET ``path`` as a browser or an HTTP client library sends it: on a small pool of
    persistent (HTTP/1.1 keep-alive) connections, so a VIP move shows what it does to
    connections already open, not only to new ones.

    An attempt takes an idle connection, or opens one when the pool (``pool``) has room.
    A failure says which: ``keep-alive …`` on a connection that had already answered (a
    request lost on a kept connection), ``fresh …`` on one opened for it. A failed connection
    is dropped; one the server closes (``Connection: close``) or that served ``max_uses``
    requests is closed without a failure (below nginx's keepalive_requests, 1000). Nothing is
    retried: a client library that retries idempotent requests would hide what this counts.
    """

    def __init__(self, host: str, port: int = 80, path: str = "/",
                 timeout: float = DEFAULT_TIMEOUT, pool: int = 4, max_uses: int = 500) -> None:
        self.host, self.port, self.path, self.timeout = host, port, path, timeout
        self.max_uses = max_uses
        self._slots = threading.BoundedSemaphore(pool)
        self._idle: queue.SimpleQueue[tuple[http.client.HTTPConnection, int]] = \
            queue.SimpleQueue()
        self.connects = 0

    def _attempt(self) -> Outcome:
        try:
            connection, uses = self._idle.get_nowait()
            kind = KEEPALIVE_ERROR
        except queue.Empty:
            connection, uses = self._connect(), 0
            kind = FRESH_ERROR
            if isinstance(connection, Outcome):
                return connection
        try:
            connection.request("GET", self.path, headers={"User-Agent": "stackha-drill"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            return Outcome(False, f"{kind} {exc.__class__.__name__}: {exc}")
        if not 200 <= response.status < 400:
            connection.close()
            return Outcome(False, f"{kind} HTTP {response.status}")
        if response.will_close or uses + 1 >= self.max_uses:
            connection.close()
        else:
            self._idle.put((connection, uses + 1))
        return Outcome(True)

    def _connect(self) -> http.client.HTTPConnection | Outcome:
        self.connects += 1
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            return Outcome(False, f"{FRESH_ERROR} {exc.__class__.__name__}: {exc}")
        return connection

    @staticmethod
    def _close_connection(connection: Any) -> None:
        connection.close()


class MysqlProbe(_PooledProbe):
    """``select 1`` through the MySQL VIP, as a client with a small connection pool sees it.

    A full login per attempt (every 10 ms) is more than a MyCat node (and certainly the
    Python stand-in, tens of ms per login) should be asked to absorb, so attempts share a
    pool of at most ``pool`` connections: an attempt takes an idle one, or logs in anew
    (MySQL-protocol handshake, login, schema) when the pool has room, or waits for one
    (within ``timeout``, else it failed: the client could not query). A connection that
    failed is dropped, and each is closed after ``max_uses`` queries, so fresh logins keep
    going through the VIP all the time. Logins and queries each have ``timeout``.
    """

    def __init__(self, host: str, port: int, user: str, password: str,
                 database: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 pool: int = 4, max_uses: int = 50) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.database, self.timeout, self.max_uses = database, timeout, max_uses
        self._slots = threading.BoundedSemaphore(pool)
        self._idle: queue.SimpleQueue[tuple[Any, int]] = queue.SimpleQueue()
        self.logins = 0

    def _login(self) -> Any:
        self.logins += 1
        return mysql_connect(
            host=self.host, port=self.port, user=self.user, password=self.password,
            database=self.database, connect_timeout=self.timeout,
            read_timeout=self.timeout, write_timeout=self.timeout, autocommit=True)

    def _attempt(self) -> Outcome:
        import pymysql

        try:
            connection, uses = self._idle.get_nowait()
        except queue.Empty:
            try:
                connection, uses = self._login(), 0
            except pymysql.MySQLError as exc:
                return Outcome(False, f"login: {exc.args[-1] if exc.args else exc}")
        try:
            with connection.cursor() as cursor:
                cursor.execute("select 1")
                row = cursor.fetchone()
        except pymysql.MySQLError as exc:
            _close(connection)
            return Outcome(False, f"select 1: {exc.args[-1] if exc.args else exc}")
        if not row or str(row[0]) != "1":
            _close(connection)
            return Outcome(False, f"select 1 answered {row!r}")
        if uses + 1 >= self.max_uses:
            _close(connection)
        else:
            self._idle.put((connection, uses + 1))
        return Outcome(True)

    @staticmethod
    def _close_connection(connection: Any) -> None:
        _close(connection)


def _close(connection: Any) -> None:
    try:
        connection.close()
    except Exception as exc:  # already broken: nothing to give back
        log.debug("event=probe_close_failed reason=%r", str(exc))


class Prober:
    """Runs ``probe`` every ``interval`` seconds until stopped; keeps every ``Sample``."""

    def __init__(self, name: str, probe: Probe, origin: float,
                 interval: float = DEFAULT_INTERVAL, max_in_flight: int = 64,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name, self.probe, self.origin, self.interval = name, probe, origin, interval
        self.max_in_flight, self.clock = max_in_flight, clock
        self.skipped = 0
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight,
                                        thread_name_prefix=f"probe-{name}")
        self._thread = threading.Thread(target=self._schedule, name=f"prober-{name}",
                                        daemon=True)

    def start(self) -> Prober:
        log.info("event=probe_start probe=%s interval_ms=%.0f", self.name, self.interval * 1000)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self._pool.shutdown(wait=True)
        close = getattr(self.probe, "close", None)
        if close is not None:
            close()
        samples = self.samples()
        log.info("event=probe_stop probe=%s sent=%d failed=%d skipped=%d", self.name,
                 len(samples), sum(not s.ok for s in samples), self.skipped)
        return samples

    def samples(self) -> list[Sample]:
        """Every finished attempt so far, in order of start."""
        with self._lock:
            return sorted(self._samples, key=lambda s: s.t)

    def recent_ok(self, since: float) -> bool | None:
        """Whether every attempt started after ``since`` (origin-relative) succeeded; None
        when none has finished yet."""
        recent = [s for s in self.samples() if s.t >= since]
        return all(s.ok for s in recent) if recent else None

    def _schedule(self) -> None:
        due = self.clock()
        while not self._stop.is_set():
            with self._lock:
                room = self._in_flight < self.max_in_flight
                if room:
                    self._in_flight += 1
                else:
                    self.skipped += 1
            if room:
                self._pool.submit(self._attempt, due)
            due += self.interval
            delay = due - self.clock()
            if delay < -self.interval:  # fell behind (a slow machine): no burst to catch up
                due = self.clock()
            elif delay > 0:
                self._stop.wait(delay)

    def _attempt(self, due: float) -> None:
        started = self.clock()
        try:
            outcome = self.probe()
        except Exception as exc:  # a probe must never kill its worker: it is a failure
            outcome = Outcome(False, f"{exc.__class__.__name__}: {exc}")
        sample = Sample(t=started - self.origin, duration=self.clock() - started,
                        ok=outcome.ok, error=outcome.error[:200], marked=outcome.marked,
                        lag=max(0.0, started - due))
        with self._lock:
            self._samples.append(sample)
            self._in_flight -= 1


def stop_all(probers: Sequence[Prober]) -> dict[str, list[Sample]]:
    return {p.name: p.stop() for p in probers}
