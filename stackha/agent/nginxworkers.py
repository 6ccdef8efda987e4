"""When a reloaded nginx serves: its master's workers, read from /proc.

`nginx -s reload` only signals the master; the old workers answer until the master has
started new ones and told the old ones to quit (they then close their listening sockets and
rename themselves "worker process is shutting down"). A health check before that approves
the old configuration. Instead of a fixed settle, the agent notes the master's serving
workers before the reload and waits until every serving worker is a new one.

The master itself sleeps 100 ms between starting the new workers and sending the old ones
QUIT (nginx's ngx_process_cycle.c, "allow new processes to start"): that sleep was most of an
apply (a 289 ms push -> applied had 105 ms of it, strace of the agent, bench/propagation's
setup). A worker names itself "worker process" only after its initialisation, listening
sockets included, so once one new worker carries that title the wait sends the old workers
the same QUIT itself. The master sends its own later (harmless twice): its signals are blocked
through that sleep, so an old worker that exited meanwhile is still its zombie, the master's
kill() succeeds and marks it exiting, and it is not respawned (tested against the real
nginx: the master settles on its configured workers every time).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Debian's nginx is built with this pid path; a `pid` directive overrides it.
DEFAULT_PID_FILE = Path("/run/nginx.pid")
_PID_DIRECTIVE = re.compile(rb"^\s*pid\s+([^\s;#]+)\s*;", re.MULTILINE)
_WORKER = b"nginx: worker process"
POLL = 0.005


@dataclass(frozen=True)
class Workers:
    """A master, its serving workers, and every child it had (workers still starting
    included: one forked just before a reload comes up on the old configuration)."""

    master: int
    serving: frozenset[int]
    children: frozenset[int]


def pid_file_of(prefix: Path, conf: str = "nginx.conf") -> Path:
    """The pid file the nginx.conf under ``prefix`` names (relative paths are the prefix's)."""
    try:
        text = (prefix / conf).read_bytes()
    except OSError:
        return DEFAULT_PID_FILE
    found = _PID_DIRECTIVE.search(text)
    if found is None:
        return DEFAULT_PID_FILE
    path = Path(os.fsdecode(found.group(1)))
    return path if path.is_absolute() else prefix / path


def _children(master: int) -> list[int]:
    """The master's children: /proc/PID/task/PID/children (one read; the master has one
    thread) where the kernel has CONFIG_PROC_CHILDREN, else the parent field of every
    process's stat (6 ms for 125 processes on this VM, under load)."""
    try:
        with open(f"/proc/{master}/task/{master}/children", "rb") as handle:
            return [int(pid) for pid in handle.read().split()]
    except (OSError, ValueError):
        pass
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat.rpartition(b")")[2].split()
        if len(fields) > 1 and fields[1] == str(master).encode():
            found.append(int(entry.name))
    return found


def _serving(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            title = handle.read()
    except OSError:
        return False
    return title.startswith(_WORKER) and b"shutting down" not in title


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rpartition(b")")[2].split()
        return int(fields[1])
    except (OSError, ValueError, IndexError):
        return None


def retire(master: int, pids: frozenset[int]) -> frozenset[int]:
    """Send QUIT (nginx's graceful worker shutdown) to those of ``pids`` that are still
    ``master``'s serving workers; the ones signalled. Each is checked through a pidfd opened
    first, so a pid reused meanwhile is never signalled."""
    sent = set()
    for pid in pids:
        try:
            handle = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            if _parent(pid) == master and _serving(pid):
                signal.pidfd_send_signal(handle, signal.SIGQUIT)
                sent.add(pid)
        except OSError:
            pass
        finally:
            os.close(handle)
    return frozenset(sent)


def workers(pid_file: Path) -> Workers | None:
    """The running master and its serving workers, or None when no master runs."""
    try:
        master = int(pid_file.read_text().split()[0])
        os.kill(master, 0)
    except (OSError, ValueError, IndexError):
        return None
    children = frozenset(_children(master))
    return Workers(master, frozenset(p for p in children if _serving(p)), children)


def wait_new_workers(pid_file: Path, before: Workers | None, timeout: float,
                     retired: set[int] | None = None) -> bool:
    """Wait until the master's serving workers are all new (a master that was not running
    before: until it runs with workers). False when ``timeout`` passed first: nginx may not
    have reloaded (it keeps the old workers when the new configuration fails to load).

    With ``retired`` (a set to fill), the old workers are sent QUIT as soon as a new one
    serves, instead of waiting out the master's 100 ms (see the module's doc)."""
    deadline = time.monotonic() + timeout
    while True:
        now = workers(pid_file)
        if now is not None and now.serving:
            old = (before.children if before is not None and before.master == now.master
                   else frozenset())
            still = now.serving & old
            if not still:
                return True
            if retired is not None and now.serving - old and not still <= retired:
                retired |= retire(now.master, frozenset(still - retired))
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)


@dataclass(frozen=True)
class NginxReloadWatch:
    """FileSync's reload watch for nginx: ``before`` just ahead of the reload command,
    ``wait`` after it."""

    prefix: Path
    timeout: float = 2.0

    def before(self) -> tuple[Path, Workers | None]:
        # The files are already in place: their pid directive is the one nginx will use.
        pid_file = pid_file_of(self.prefix)
        return pid_file, workers(pid_file)

    def wait(self, token: object) -> frozenset[int]:
        """Wait for the new workers; the old ones this wait sent QUIT."""
        pid_file, before = token if isinstance(token, tuple) else (pid_file_of(self.prefix),
                                                                   None)
        if before is None:
            # No master ran before the reload (the reload command starts nginx, or the pid
            # file is elsewhere): no old worker can answer for the new files, nothing to wait.
            log.info("event=nginx_workers_unknown pid_file=%s reason=%r", pid_file,
                     "no running master before the reload")
            return frozenset()
        started = time.monotonic()
        retired: set[int] = set()
        if wait_new_workers(pid_file, before, self.timeout, retired):
            log.debug("event=nginx_workers_new seconds=%.3f retired=%s",
                      time.monotonic() - started, ",".join(map(str, sorted(retired))) or "-")
        else:
            log.warning("event=nginx_workers_unchanged pid_file=%s waited=%.1f", pid_file,
                        self.timeout)
        return frozenset(retired)
