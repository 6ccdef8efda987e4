"""The node's health checks, run by the agent on one thread, results to keepalived's track files.

Before, keepalived forked a Python `stackha check` per check every second (about 8 % of a core
per nginx node, and a 1 s interval). Here one thread probes every check at its own interval
(0.1 s by default: a loopback GET is a connect, a write and a read), applies fall and rise,
and on a change of verdict rewrites the check's track file (0 healthy, 1 failed) and tells
the agent. Between probes the thread sleeps on an event: nothing else wakes it.

A probe that fails is retried after a third of the interval, so the ``fall`` failures that
fail a check come quickly after a real death, while a single slow answer still counts once.
Checks run one after another; a hung probe delays the others by at most its timeout.
"""

from __future__ import annotations

import heapq
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stackha.keepalived.trackfile import TrackFiles

log = logging.getLogger(__name__)

Probe = Callable[[], "str | None"]  # None healthy, else a one-line reason


@dataclass(frozen=True)
class Check:
    name: str
    probe: Probe
    interval: float
    fall: int = 2
    rise: int = 2
    track: str | None = None  # the track file written on a change of verdict


@dataclass(frozen=True)
class Verdict:
    healthy: bool
    reason: str  # "ok" or the last failure


class _State:
    def __init__(self, check: Check):
        self.check = check
        self.healthy = True  # a check starts healthy: ``fall`` failures are needed to fail
        self.run = 0  # failures (healthy) or passes (failed) in a row against the verdict
        self.reason = "ok"
        self.last = "ok"

    def record(self, reason: str | None) -> bool:
        """One probe's result; returns whether the verdict changed."""
        self.last = reason or "ok"
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


class CheckScheduler:
    """``configure`` sets the checks (the applied version says which), ``start`` the thread."""

    def __init__(self, tracks: TrackFiles,
                 on_change: Callable[[str, Verdict], None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.tracks = tracks
        self.on_change = on_change
        self.clock = clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def configure(self, checks: Sequence[Check]) -> None:
        """Replace the checks. A check that keeps its name keeps its verdict; its track file
        is rewritten at once, so a restarted agent corrects whatever the file held."""
        with self._lock:
            old = self._states
            self._states = {}
            for check in checks:
                state = _State(check)
                if check.name in old:
                    previous = old[check.name]
                    state.healthy, state.reason = previous.healthy, previous.reason
                self._states[check.name] = state
                self._write(state, force=check.name not in old)
        self._wake.set()

    def verdicts(self) -> dict[str, Verdict]:
        with self._lock:
            return {name: Verdict(s.healthy, s.reason) for name, s in self._states.items()}

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="health-checks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def run_once(self) -> None:
        """Probe every check once, now (tests; the thread does the same on its schedule)."""
        with self._lock:
            states = list(self._states.values())
        for state in states:
            self._probe(state)

    def _write(self, state: _State, force: bool = False) -> None:
        if state.check.track is None:
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
        if changed:
            log.log(logging.INFO if state.healthy else logging.WARNING,
                    "event=health_check_%s check=%s reason=%r",
                    "passed" if state.healthy else "failed", state.check.name, state.reason)
            if self.on_change is not None:
                self.on_change(state.check.name, Verdict(state.healthy, state.reason))

    def _run(self) -> None:
        # SIGTERM must reach the main thread, which is the one waiting to act on it (stop
        # keepalived: the priority-0 advert). A signal the kernel hands to this thread, busy
        # every 0.1 s, reached the handler late: graceful failover measured 20-30 ms slower.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        due: list[tuple[float, str]] = []
        generation: dict[str, _State] = {}
        while not self._stopping:
            with self._lock:
                if generation is not self._states:
                    generation = self._states
                    now = self.clock()
                    due = [(now, name) for name in generation]
                    heapq.heapify(due)
            if not due:
                self._wake.wait()
                self._wake.clear()
                continue
            when, name = due[0]
            delay = when - self.clock()
            if delay > 0:
                if self._wake.wait(delay):
                    self._wake.clear()
                    continue  # reconfigured or stopping: recompute the schedule
            heapq.heappop(due)
            state = generation.get(name)
            if state is None:
                continue
            self._probe(state)
            interval = state.check.interval
            failing = state.healthy and state.last != "ok"  # confirm a failure quickly
            heapq.heappush(due, (self.clock() + (interval / 3 if failing else interval), name))
