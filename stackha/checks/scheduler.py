"""Every health check of the node, scheduled by the agent in one place; node verdicts go to
keepalived's track files, realserver verdicts to the director.

Before, keepalived forked a Python `stackha check` per check every second (about 8 % of a core
per nginx node, and a 1 s interval), and the director probed its realservers on a thread and a
pool of its own. Here one thread keeps the schedule of every check (each at its own interval:
0.1 s by default for the node's, a loopback GET being a connect, a write and a read), applies
fall and rise, and on a change of verdict rewrites the check's track file (0 healthy, 1 failed)
and tells the check's group. Between probes the thread sleeps on an event: nothing else wakes
it.

Probes run on a small pool of worker threads, at most one in flight per check: a probe that
hangs until its timeout (a blackholed realserver, a MyCat that accepts and never greets) delays
no other check, so nginx dying on the master is still seen within its own interval.

A probe that fails is retried after a third of the interval, so the ``fall`` failures that
fail a check come quickly after a real death, while a single slow answer still counts once.

Checks come in groups (``configure(checks, group)`` replaces one group's): ``node``, the
checks the node's VRRP groups track, and ``lvs``, a director's realservers. A group has its
own ``on_change``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

Probe = Callable[[], "str | None"]  # None healthy, else a one-line reason
NODE = "node"
# Enough for the node's two checks and a director's realservers: threads are only made when
# every one is busy, so on a quiet node one or two exist.
WORKERS = 8


class TrackWriter(Protocol):
    """Where node verdicts go: keepalived's track files (stackha.keepalived.trackfile)."""

    def write(self, name: str, value: int, force: bool = False) -> bool: ...


@dataclass(frozen=True)
class Check:
    name: str
    probe: Probe
    interval: float
    fall: int = 2
    rise: int = 2
    track: str | None = None  # the track file written on a change of verdict
    # None: unknown until the first result, which decides at once (a fresh director must
    # neither start empty nor forward to a realserver it has not seen answer).
    initial: bool | None = True


@dataclass(frozen=True)
class Verdict:
    healthy: bool | None  # None: no result yet (only for checks with initial None)
    reason: str  # "ok" or the last failure
    against: int = 0  # results in a row against the verdict, not yet enough to change it


ChangeCallback = Callable[[str, Verdict], None]


class _State:
    def __init__(self, check: Check, group: str):
        self.check = check
        self.group = group
        self.healthy = check.initial  # True: ``fall`` failures are needed to fail
        self.run = 0  # failures (healthy) or passes (failed) in a row against the verdict
        self.reason = "not checked yet" if check.initial is None else "ok"
        self.last = "ok"
        self.busy = False  # a probe of it is in flight
        self.token = 0  # of its one live entry in the schedule; other entries are stale

    def record(self, reason: str | None) -> bool:
        """One probe's result; returns whether the verdict changed."""
        self.last = reason or "ok"
        if self.healthy is None:  # the first result decides
            self.healthy, self.run, self.reason = reason is None, 0, reason or "ok"
            return True
        agrees = (reason is None) == self.healthy
        self.run = 0 if agrees else self.run + 1
        if self.healthy and reason is None:
            self.reason = "ok"
        needed = self.check.fall if self.healthy else self.check.rise
        if self.run < needed:
            return False
        self.healthy, self.run = not self.healthy, 0
        self.reason = "ok" if self.healthy else (reason or "failed")
        return True

    def verdict(self) -> Verdict:
        return Verdict(self.healthy, self.reason, self.run)


class CheckScheduler:
    """``configure`` sets a group's checks (the applied version says which), ``start`` the
    thread. ``tracks`` None: no check of this node writes a track file (no VRRP)."""

    def __init__(self, tracks: TrackWriter | None,
                 on_change: ChangeCallback | None = None,
                 clock: Callable[[], float] = time.monotonic, workers: int = WORKERS):
        self.tracks = tracks
        self.clock = clock
        self._callbacks: dict[str, ChangeCallback | None] = {NODE: on_change}
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._due: list[tuple[float, int, str]] = []  # (when, token, check)
        self._tokens = itertools.count(1)

    def configure(self, checks: Sequence[Check], group: str = NODE,
                  on_change: ChangeCallback | None = None) -> None:
        """Replace one group's checks (``on_change``: that group's callback; the node group's
        is the constructor's). A check that keeps its name keeps its verdict; its track file
        is rewritten at once, so a restarted agent corrects whatever the file held."""
        with self._lock:
            if group != NODE or on_change is not None:
                self._callbacks[group] = on_change
            old = self._states
            kept = {n: s for n, s in old.items() if s.group != group}
            for check in checks:
                if check.name in kept:
                    raise ValueError(f"check {check.name} is in group {kept[check.name].group}")
                state = _State(check, group)
                previous = old.get(check.name)
                if previous is not None and previous.group == group:
                    state.healthy, state.reason = previous.healthy, previous.reason
                kept[check.name] = state
                self._write(state, force=previous is None)
                self._schedule(state, self.clock())
            self._states = kept
        self._wake.set()

    def _schedule(self, state: _State, when: float) -> None:
        """Under the lock: the state's next probe at ``when`` (its earlier entry goes stale)."""
        state.token = next(self._tokens)
        heapq.heappush(self._due, (when, state.token, state.check.name))

    def verdicts(self, group: str = NODE) -> dict[str, Verdict]:
        with self._lock:
            return {name: s.verdict() for name, s in self._states.items() if s.group == group}

    def verdict(self, name: str) -> Verdict | None:
        with self._lock:
            state = self._states.get(name)
            return state.verdict() if state is not None else None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-checks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def run_once(self, group: str | None = None) -> None:
        """Probe every check (of ``group``) once, now, on the caller's thread (tests; the
        scheduler's thread does the same on its schedule)."""
        with self._lock:
            states = [s for s in self._states.values() if group is None or s.group == group]
        for state in states:
            self._probe(state)

    def _write(self, state: _State, force: bool = False) -> None:
        if state.check.track is None or self.tracks is None or state.healthy is None:
            return
        try:
            self.tracks.write(state.check.track, 0 if state.healthy else 1, force=force)
        except OSError as exc:
            log.error("event=track_write_failed check=%s reason=%r", state.check.name, str(exc))

    def _probe(self, state: _State) -> None:
        try:
            reason = state.check.probe()
        except Exception as exc:  # a probe's bug is a failed probe, never a dead thread
            reason = f"probe error: {exc.__class__.__name__}: {exc}"
        with self._lock:
            if self._states.get(state.check.name) is not state:
                return  # reconfigured meanwhile
            changed = state.record(reason)
            if changed:
                self._write(state)
            callback = self._callbacks.get(state.group)
        if changed:
            log.log(logging.INFO if state.healthy else logging.WARNING,
                    "event=health_check_%s check=%s reason=%r",
                    "passed" if state.healthy else "failed", state.check.name, state.reason)
            if callback is not None:
                callback(state.check.name, state.verdict())

    def _probe_in_worker(self, state: _State) -> None:
        try:
            self._probe(state)
        finally:
            interval = state.check.interval
            failing = state.healthy is not False and state.last != "ok"  # confirm it quickly
            with self._lock:
                state.busy = False
                if self._states.get(state.check.name) is state:
                    self._schedule(state, self.clock() + (interval / 3 if failing
                                                          else interval))
            self._wake.set()

    def _run(self) -> None:
        # SIGTERM must reach the main thread, which is the one waiting to act on it (stop
        # keepalived: the priority-0 advert). A signal the kernel hands to this thread, busy
        # every 0.1 s, reached the handler late: graceful failover measured 20-30 ms slower.
        # The workers are started from here and inherit the mask.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="check")
        while not self._stopping:
            start: list[_State] = []
            with self._lock:
                now = self.clock()
                while self._due and self._due[0][0] <= now:
                    _, token, name = heapq.heappop(self._due)
                    state = self._states.get(name)
                    if state is not None and state.token == token and not state.busy:
                        state.busy = True  # rescheduled by the worker when it is done
                        start.append(state)
                delay = self._due[0][0] - now if self._due else None
            for state in start:
                self._pool.submit(self._probe_in_worker, state)
            if start:
                continue  # the clock moved while submitting: look again before sleeping
            if self._wake.wait(delay):
                self._wake.clear()
