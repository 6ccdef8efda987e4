"""One confd-style resource: a set of files, where they go, how to check, reload and verify.

``FileSync.apply`` stages the files, validates the staged copy, writes each file atomically
(temporary file, fsync, rename, directory fsync), reloads, runs the health check, and puts the
previous files back — then reloads again — if anything after the first write fails.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stackha.model.bundle import file_mode, unsafe_path_reason

log = logging.getLogger(__name__)

Validator = Callable[[Path], list[str]]
"""Given the staging directory holding the new files, returns reasons they are bad."""
HealthCheck = Callable[[], str | None]
"""Returns None when healthy, else the reason."""
Reload = Callable[[], str | None]
"""Makes the service pick up the files; returns None on success, else the reason."""


def command_reload(command: list[str], timeout: float = 60) -> Reload:
    """A reload that runs ``command`` (no shell) and fails on a non-zero exit."""

    def reload() -> str | None:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"reload command failed: {exc}"
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return f"reload exited {done.returncode}: {detail[0]}"
        return None

    return reload


class UnsafePath(Exception):
    pass


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    ok: bool
    stage: str = ""  # where it failed: validate, write, reload, health
    reason: str = ""
    reload_seconds: float = 0.0
    rolled_back: bool = False


@dataclass
class FileSync:
    """Keeps ``target`` holding exactly ``files`` (paths relative to ``target``)."""

    name: str
    target: Path
    validate: Validator | None = None
    reload: Reload | None = None
    health: HealthCheck | None = None
    health_wait: float = 5.0
    # nginx and keepalived reload asynchronously: until the new workers run, the old ones
    # still answer, so a check right after the signal would approve the old configuration.
    settle: float = 0.0
    modes: Callable[[str], int] = file_mode
    managed_list: Path | None = None
    _managed: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.managed_list and self.managed_list.exists():
            self._managed = {line for line in self.managed_list.read_text().splitlines() if line}

    # safety -------------------------------------------------------------------------------
    def destination(self, relative: str) -> Path:
        """Where a file goes; refuses anything that could land outside ``target``."""
        reason = unsafe_path_reason(relative)
        if reason:
            raise UnsafePath(f"{relative}: {reason}")
        root = self.target.resolve()
        current = root
        for part in relative.split("/")[:-1]:
            current = current / part
            if current.is_symlink():
                raise UnsafePath(f"{relative}: passes through symlink {current}")
        final = root / relative
        if final.is_symlink():
            raise UnsafePath(f"{relative}: destination is a symlink")
        if os.path.commonpath([root, final.parent.resolve()]) != str(root):
            raise UnsafePath(f"{relative}: resolves outside {root}")
        return final

    def current_contents(self, paths: set[str]) -> dict[str, bytes | None]:
        result: dict[str, bytes | None] = {}
        for relative in paths:
            path = self.destination(relative)
            result[relative] = path.read_bytes() if path.is_file() else None
        return result

    # the steps ----------------------------------------------------------------------------
    def differs(self, files: Mapping[str, bytes]) -> bool:
        wanted = set(files)
        if wanted != self._managed and self._managed:
            return True
        try:
            now = self.current_contents(wanted)
        except UnsafePath:
            return True
        return any(now[p] != files[p] for p in wanted)

    def stage(self, files: Mapping[str, bytes], staging: Path) -> None:
        for relative, content in files.items():
            self.destination(relative)  # refuses unsafe paths before anything is written
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

    def write(self, contents: Mapping[str, bytes | None]) -> None:
        """Make every file hold its content (None: remove it), each change atomic."""
        for relative, content in sorted(contents.items()):
            path = self.destination(relative)
            if content is None:
                if path.exists():
                    path.unlink()
                    _fsync_dir(path.parent)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            _atomic_write(path, content, self.modes(relative))

    def run_reload(self) -> str | None:
        return self.reload() if self.reload else None

    def wait_healthy(self) -> str | None:
        if self.health is None:
            return None
        time.sleep(self.settle)
        deadline = time.monotonic() + self.health_wait
        reason = self.health()
        while reason and time.monotonic() < deadline:
            time.sleep(0.1)
            reason = self.health()
        return reason

    def _remember(self, paths: set[str]) -> None:
        self._managed = set(paths)
        if self.managed_list:
            _atomic_write(self.managed_list, "".join(f"{p}\n" for p in sorted(paths)).encode(),
                          0o644)

    def apply(self, files: Mapping[str, bytes]) -> ApplyResult:
        if not self.differs(files):
            self._remember(set(files))
            return ApplyResult(changed=False, ok=True)
        self.target.mkdir(parents=True, exist_ok=True)
        try:
            with tempfile.TemporaryDirectory(prefix=f".stackha-{self.name}-",
                                             dir=self.target.parent) as tmp:
                staging = Path(tmp)
                self.stage(files, staging)
                reasons = self.validate(staging) if self.validate else []
        except UnsafePath as exc:
            return ApplyResult(changed=False, ok=False, stage="validate", reason=str(exc))
        if reasons:
            return ApplyResult(changed=False, ok=False, stage="validate",
                               reason="; ".join(reasons))
        touched = set(files) | self._managed
        previous = self.current_contents(touched)
        new: dict[str, bytes | None] = {p: files.get(p) for p in touched}
        started = time.monotonic()
        stage, reason = "write", None
        try:
            self.write(new)
            stage, reason = "reload", self.run_reload()
            if reason is None:
                stage, reason = "health", self.wait_healthy()
        except OSError as exc:
            reason = f"{exc.strerror or exc}: {exc.filename or ''}".strip()
        elapsed = time.monotonic() - started
        if reason is None:
            self._remember(set(files))
            return ApplyResult(changed=True, ok=True, reload_seconds=elapsed)
        log.warning("event=rollback resource=%s stage=%s reason=%r", self.name, stage, reason)
        self.write(previous)
        again = self.run_reload()
        if again:
            log.error("event=rollback_reload_failed resource=%s reason=%r", self.name, again)
        return ApplyResult(changed=True, ok=False, stage=stage, reason=reason,
                           reload_seconds=elapsed, rolled_back=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _atomic_write(path: Path, content: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
