"""The track files keepalived watches: one small writer, name -> integer value.

keepalived reads a ``track_file`` at start and again on every inotify event on it
(close-after-write, move, delete); it never polls and forks nothing. Each value is replaced
with a temporary file in the same directory and a rename, so keepalived never reads half a
number. The files live in a run directory (tmpfs): the agent rewrites every one at start,
so they need no fsync.

Used by the agent's health checks (``chk_<check>.track``), the canary's trial
(``trial.track``, ``yield.track``) and anything else that moves a node's VRRP priority.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")
# keepalived takes track file values as integers; value x weight is clamped later.
VALUE_RANGE = range(-254, 255)


class TrackFiles:
    """Writes ``<directory>/<name>`` atomically; rewrites only values that changed unless
    asked (a rename is an inotify event: keepalived recomputes priorities on each)."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._written: dict[str, int] = {}
        self._lock = threading.Lock()  # the check thread and the event loop both write

    def path(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"track file name {name!r}: letters, digits, '_', '.', '-' only")
        return self.directory / name

    def write(self, name: str, value: int, force: bool = False) -> bool:
        """Set ``name`` to ``value``; returns whether the file was rewritten."""
        if isinstance(value, bool) or not isinstance(value, int) or value not in VALUE_RANGE:
            raise ValueError(f"track file {name}: value {value!r} outside -254..254")
        path = self.path(name)
        with self._lock:
            if not force and self._written.get(name) == value:
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{name}.tmp")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
                with open(fd, "wb") as handle:
                    handle.write(f"{value}\n".encode())
                os.replace(tmp, path)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            self._written[name] = value
            return True

    def read(self, name: str) -> int | None:
        """The value on disk (None when missing or not a number)."""
        try:
            return int(self.path(name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
