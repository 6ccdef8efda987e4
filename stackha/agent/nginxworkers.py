"""When a reloaded nginx serves: its master's workers, read from /proc.

`nginx -s reload` only signals the master; the old workers answer until the master has
started new ones and told the old ones to quit (they then close their listening sockets and
rename themselves "worker process is shutting down"). A health check before that approves
the old configuration. Instead of a fixed settle, the agent notes the master's serving
workers before the reload and waits until every serving worker is a new one.
"""

from __future__ import annotations

import logging
import os
import re
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
    master: int
    serving: frozenset[int]


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
    """The master's children (/proc/PID/task/PID/children needs CONFIG_PROC_CHILDREN,
    which not every kernel has: the parent field of every process's stat, then)."""
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


def workers(pid_file: Path) -> Workers | None:
    """The running master and its serving workers, or None when no master runs."""
    try:
        master = int(pid_file.read_text().split()[0])
        os.kill(master, 0)
    except (OSError, ValueError, IndexError):
        return None
    return Workers(master, frozenset(p for p in _children(master) if _serving(p)))


def wait_new_workers(pid_file: Path, before: Workers | None, timeout: float) -> bool:
    """Wait until the master's serving workers are all new (a master that was not running
    before: until it runs with workers). False when ``timeout`` passed first: nginx may not
    have reloaded (it keeps the old workers when the new configuration fails to load)."""
    deadline = time.monotonic() + timeout
    while True:
        now = workers(pid_file)
        if now is not None and now.serving:
            old = before.serving if before is not None and before.master == now.master else set()
            if not now.serving & old:
                return True
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

    def wait(self, token: object) -> None:
        pid_file, before = token if isinstance(token, tuple) else (pid_file_of(self.prefix),
                                                                   None)
        if before is None:
            # No master ran before the reload (the reload command starts nginx, or the pid
            # file is elsewhere): no old worker can answer for the new files, nothing to wait.
            log.info("event=nginx_workers_unknown pid_file=%s reason=%r", pid_file,
                     "no running master before the reload")
            return
        started = time.monotonic()
        if wait_new_workers(pid_file, before, self.timeout):
            log.debug("event=nginx_workers_new seconds=%.3f", time.monotonic() - started)
        else:
            log.warning("event=nginx_workers_unchanged pid_file=%s waited=%.1f", pid_file,
                        self.timeout)
