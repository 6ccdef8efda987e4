"""A CPU load generator for `stackha drill --load N`: N busy-loop processes on this host at
the drill's own (normal) priority, so the lab's containers, which share the host's CPUs, run
starved as on a busy machine. Started before a scenario's green wait, stopped after it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Sequence

log = logging.getLogger(__name__)

# Pure computation, no I/O: each process keeps one CPU busy for as long as it lives.
BUSY_LOOP = "while True:\n    pass\n"


class CpuLoad:
    """``processes`` busy loops; ``command`` replaces the Python loop (tests)."""

    def __init__(self, processes: int, command: Sequence[str] | None = None) -> None:
        self.processes = processes
        self.command = list(command) if command else [sys.executable, "-c", BUSY_LOOP]
        self._running: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._running]

    def start(self) -> CpuLoad:
        niceness = os.nice(0)
        if niceness != 0:
            # An unprivileged process cannot go back to 0: the load is as nice as the drill.
            log.warning("event=cpu_load_niceness nice=%d", niceness)
        for _ in range(self.processes - len(self._running)):
            self._running.append(subprocess.Popen(
                self.command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, start_new_session=True))
        log.info("event=cpu_load_start processes=%d nice=%d pids=%s", len(self._running),
                 niceness, ",".join(map(str, self.pids)))
        return self

    def stop(self, timeout: float = 5.0) -> None:
        running, self._running = self._running, []
        for process in running:
            if process.poll() is None:
                process.terminate()
        for process in running:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if running:
            log.info("event=cpu_load_stop processes=%d", len(running))

    def __enter__(self) -> CpuLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
