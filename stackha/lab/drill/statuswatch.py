"""Reads `stackha status` from ZooKeeper every ``interval`` seconds during a scenario.

One coordinator session is kept while it works; when ZooKeeper stops answering the session
is dropped and a new one tried on the next reading (with a short connect timeout), so the
watch keeps its pace through a ZooKeeper outage and records it as unreachable readings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from stackha.lab.drill.analysis import StatusSample
from stackha.lab.drill.green import sample_of, status_document, unreachable
from stackha.model.spec import StackSpec
from stackha.store.base import StoreError
from stackha.store.connect import tls_settings, zk_hosts
from stackha.store.credentials import read_identity
from stackha.store.zookeeper import ZooKeeperStore

log = logging.getLogger(__name__)


class StatusReader:
    """The status document, read with the coordinator's credential.

    kazoo queues a request made while it reconnects until a server answers, so a read during
    a ZooKeeper outage would block for the whole outage: each read runs on its own thread and
    is given up after ``read_timeout`` (the session is closed, which fails the request kazoo
    holds back, and the next read opens a new session).
    """

    def __init__(self, spec: StackSpec, zk_override: str | None = None,
                 connect_timeout: float = 3.0, read_timeout: float = 5.0) -> None:
        self.spec = spec
        self.zk_override = zk_override
        self.connect_timeout = connect_timeout
        self.read_timeout = max(read_timeout, connect_timeout + 1.0)
        self._store: ZooKeeperStore | None = None
        self._lock = threading.Lock()

    def _open(self) -> ZooKeeperStore:
        zk = self.spec.zookeeper
        identity = read_identity(zk.coordinator_auth, "zookeeper.coordinator_auth")
        store = ZooKeeperStore(zk_hosts(self.spec, self.zk_override), zk.chroot,
                               self.spec.cluster, identity, timeout=zk.session_timeout,
                               connect_timeout=self.connect_timeout,
                               tls=tls_settings(self.spec))
        store.start()
        return store

    def document(self) -> dict:
        """Raises StoreError (with a one-line reason) when ZooKeeper does not answer."""
        with self._lock:
            box: dict[str, Any] = {"store": self._store}

            def read() -> None:
                try:
                    store = box["store"]
                    if store is None or not store.connected:
                        _close(store)
                        box["store"] = None
                        store = self._open()
                        if box.get("abandoned"):
                            _close(store)
                            return
                        box["store"] = store
                    # The reports' ages are taken when they were read, not after the wait.
                    box["value"] = (store.current_number(), store.statuses(),
                                    datetime.now(UTC))
                except Exception as exc:  # kazoo's timeouts are no KazooException
                    box["error"] = exc

            worker = threading.Thread(target=read, name="status-read", daemon=True)
            worker.start()
            worker.join(self.read_timeout)
            if worker.is_alive():
                box["abandoned"] = True
                _close(box["store"])  # fails the request kazoo holds back: the thread ends
                self._store = None
                raise StoreError(f"no answer within {self.read_timeout:g} s")
            if "error" in box:
                _close(box["store"])
                self._store = None
                exc = box["error"]
                raise StoreError(str(exc) or exc.__class__.__name__) from exc
            self._store = box["store"]
            current, raw, read_at = box["value"]
        return status_document(self.spec, current, raw, read_at)

    def close(self) -> None:
        with self._lock:
            _close(self._store)
            self._store = None


def _close(store: ZooKeeperStore | None) -> None:
    if store is None:
        return
    try:
        store.close()
    except Exception as exc:  # closing a broken session must not hide the reason
        log.debug("event=status_store_close_failed reason=%r", str(exc))


class StatusWatch:
    """A thread reading the status document; ``series()`` is every reading so far."""

    def __init__(self, read: Callable[[], dict], origin: float, interval: float = 0.25,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read, self.origin, self.interval, self.clock = read, origin, interval, clock
        self._series: list[StatusSample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="status-watch", daemon=True)

    def start(self) -> StatusWatch:
        self._thread.start()
        return self

    def stop(self) -> list[StatusSample]:
        self._stop.set()
        self._thread.join()
        return self.series()

    def series(self) -> list[StatusSample]:
        with self._lock:
            return list(self._series)

    def latest(self) -> StatusSample | None:
        with self._lock:
            return self._series[-1] if self._series else None

    def read_once(self) -> StatusSample:
        t = self.clock() - self.origin
        try:
            sample = sample_of(t, self.read())
        except StoreError as exc:
            sample = unreachable(t, str(exc))
        with self._lock:
            previous = self._series[-1] if self._series else None
            self._series.append(sample)
        if previous is None or previous.problems != sample.problems:
            log.info("event=status t=%.2f green=%s problems=%r", sample.t, sample.green,
                     "; ".join(sample.problems))
        return sample

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = self.clock()
            self.read_once()
            self._stop.wait(max(0.0, self.interval - (self.clock() - started)))

    def wait_green(self, timeout: float, stable: float = 2.0) -> float | None:
        """Block until status has been green for ``stable`` seconds, as read after this call
        began; returns when that green streak began (origin-relative, possibly before the
        call), or None after ``timeout``."""
        called = self.clock() - self.origin
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            series = self.series()
            streak_start = None
            for sample in series:
                streak_start = (streak_start if streak_start is not None else sample.t) \
                    if sample.green else None
            if streak_start is not None and series[-1].t >= called + stable \
                    and series[-1].t - streak_start >= stable:
                return streak_start
            if self._stop.wait(self.interval):
                return None
        return None

    def wait_for(self, predicate: Callable[[StatusSample], bool], timeout: float
                 ) -> StatusSample | None:
        """The first reading from now on that matches ``predicate``, or None."""
        deadline = self.clock() + timeout
        seen = len(self.series())
        while self.clock() < deadline:
            series = self.series()
            for sample in series[seen:]:
                if predicate(sample):
                    return sample
            seen = len(series)
            if self._stop.wait(self.interval / 2):
                return None
        return None
