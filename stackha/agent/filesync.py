"""One confd-style resource: a set of files, where they go, how to check, reload and verify.

``FileSync.apply`` never raises and never leaves a version half-applied:

* Names are checked up front (``unsafe_path_reason``, ``path_conflicts``), then the files are
  staged in a private directory and validated there.
* Everything under ``target`` is opened relative to directory file descriptors opened with
  ``O_NOFOLLOW | O_DIRECTORY``, one component at a time, and every create, rename and unlink
  goes through those descriptors. A local user who swaps a directory of the target for a
  symlink between our check and our write only makes the open fail (ELOOP/ENOTDIR): the
  agent never follows a link it did not create, so it cannot be steered outside ``target``.
  ``target`` itself is the administrator's setting and is followed as configured.
* Whole-set atomicity, chosen over per-file renames alone because a node killed half-way
  through must come back serving one version, not a mix. Before the first write a journal in
  the state directory holds the complete previous state of every touched path (content and
  mode, a symlink's target, or absence) and names the version being applied; it is written
  atomically, so its presence is the marker. It is removed only after the version was
  committed (``commit``: the agent saved it as last good) or after a completed rollback. On
  start, ``recover`` puts a journal's previous set back and reloads, unless the journal's
  version was already committed. A journal is cheaper than a second, swapped copy of the
  tree (services keep their own paths; only the touched files are copied) and works across
  file systems, the state directory being a different one from the target most of the time.
* New contents are written to temporary files first, all of them, before any rename: running
  out of space (ENOSPC) then fails before anything changed, and the refusal says so.

Failpoints (test-only): ``STACKHA_FAILPOINT=<step>`` makes the process SIGKILL itself at
that step, ``STACKHA_FAILPOINT=enospc@<step>`` makes the step fail with ENOSPC. Steps:
after_journal, after_first_rename, after_all_renames, after_reload, before_journal_clear
(and enospc@journal, enospc@write_temp). Unset in production: the check is one dict lookup.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import os
import secrets
import select
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stackha.model.bundle import file_mode, path_conflicts, unsafe_path_reason
from stackha.model.environment import child_environment
from stackha.model.retry import Retryable

log = logging.getLogger(__name__)

Validator = Callable[[Path], list[str]]
"""Given the staging directory holding the new files, returns reasons they are bad."""
HealthCheck = Callable[[], str | None]
"""Returns None when healthy, else the reason."""
Reload = Callable[[], str | None]
"""Makes the service pick up the files; returns None on success, else the reason."""

FAILPOINT_ENV = "STACKHA_FAILPOINT"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_PREFIX = ".stackha."


def failpoint(step: str) -> None:
    """Test-only fault injection (see the module docstring); does nothing unless set."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if not wanted:
        return
    if wanted == step:
        log.warning("event=failpoint step=%s action=sigkill", step)
        os.kill(os.getpid(), signal.SIGKILL)
    if wanted == f"enospc@{step}":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"failpoint {step}")


def describe(exc: BaseException) -> str:
    """One line for the status: what went wrong, never a traceback."""
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            text = f"no space left on device: {exc.filename or ''}"
        else:
            text = f"{exc.strerror or exc}: {exc.filename or ''}"
    elif isinstance(exc, ApplyError):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()).rstrip(": ")[:400]


@dataclass(frozen=True)
class CommandReload:
    """A reload that runs ``command`` (no shell) and fails on a non-zero exit or after
    ``timeout`` seconds. ``quick`` is the same with ``retry_timeout``: after the command hung
    once, the rollback must not wait a full timeout on it again."""

    command: tuple[str, ...]
    timeout: float = 20.0
    retry_timeout: float = 5.0

    def __call__(self) -> str | None:
        return self.run(self.timeout)

    def quick(self) -> str | None:
        return self.run(min(self.timeout, self.retry_timeout))

    def run(self, timeout: float) -> str | None:
        # Output goes to a file, not a pipe: a daemon the command leaves behind keeps a pipe
        # open, and waiting for its end would outlast any timeout.
        with tempfile.TemporaryFile() as output:
            try:
                process = subprocess.Popen(list(self.command), stdout=output,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                           env=child_environment(os.environ))
            except OSError as exc:
                return f"reload command failed: {describe(exc)}"
            try:
                code = wait_exit(process, timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                return f"reload timed out after {timeout:g} s"
            output.seek(0)
            text = output.read().decode("utf-8", "replace").strip()
        if code != 0:
            detail = text.splitlines()[-1:] or ["no output"]
            return f"reload exited {code}: {detail[0]}"
        return None


def wait_exit(process: subprocess.Popen[bytes], timeout: float) -> int:
    """``process.wait(timeout)`` without its polling: Popen sleeps up to 50 ms between
    checks, which cost 8-25 ms after each reload (strace of an agent on this VM). A pidfd
    becomes readable the moment the process exits."""
    try:
        handle = os.pidfd_open(process.pid)
    except OSError:  # exited and reaped already, or a kernel without pidfds
        return process.wait(timeout=timeout)
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
    finally:
        os.close(handle)
    if not ready:
        raise subprocess.TimeoutExpired(process.args, timeout)
    return process.wait()


def command_reload(command: list[str], timeout: float = 20.0,
                   retry_timeout: float = 5.0) -> CommandReload:
    return CommandReload(tuple(command), timeout, retry_timeout)


class ApplyError(Exception):
    """A refusal: the message is the one-line reason."""


class UnsafePath(ApplyError):
    pass


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    ok: bool
    stage: str = ""  # where it failed: validate, write, reload, health, internal
    reason: str = ""
    reload_seconds: float = 0.0
    rolled_back: bool = False
    rollback_problem: str = ""  # why the rollback itself did not complete, if it did not
    # The reason names a passing condition of the service (stackha.model.retry.Retryable):
    # the version may be tried again later.
    retryable: bool = False


# How a rollback's problem starts when the previous files could not all be put back.
_FILES_NOT_RESTORED = "restoring files"


# previous states ------------------------------------------------------------------------
@dataclass(frozen=True)
class File:
    content: bytes
    mode: int


@dataclass(frozen=True)
class Link:
    target: str


Entry = File | Link | None  # None: the path does not exist


def _entry_json(entry: Entry) -> dict[str, Any]:
    if entry is None:
        return {"kind": "absent"}
    if isinstance(entry, Link):
        return {"kind": "link", "target": entry.target}
    return {"kind": "file", "mode": entry.mode,
            "content": base64.b64encode(entry.content).decode()}


def _entry_of(raw: Any) -> Entry:
    if not isinstance(raw, dict) or raw.get("kind") == "absent":
        return None
    if raw.get("kind") == "link":
        return Link(str(raw["target"]))
    return File(base64.b64decode(raw["content"]), int(raw["mode"]) & 0o7777)


@dataclass(frozen=True)
class Journal:
    """The previous state of every path a version touches, and that version's number."""

    resource: str
    version: int
    previous: Mapping[str, Entry]
    managed: frozenset[str]

    def to_json(self) -> bytes:
        return json.dumps({"format": 1, "resource": self.resource, "version": self.version,
                           "managed": sorted(self.managed),
                           "previous": {p: _entry_json(e) for p, e in self.previous.items()}},
                          sort_keys=True).encode()

    @classmethod
    def parse(cls, data: bytes) -> Journal:
        raw = json.loads(data.decode("utf-8"))
        previous = {str(p): _entry_of(e) for p, e in raw["previous"].items()}
        for path in previous:
            reason = unsafe_path_reason(path)
            if reason:
                raise ValueError(f"journal names {path!r}: {reason}")
        return cls(str(raw["resource"]), int(raw["version"]), previous,
                   frozenset(_safe_names(raw.get("managed", []))))


def _safe_names(names: Iterable[Any]) -> set[str]:
    return {n for n in names if isinstance(n, str) and unsafe_path_reason(n) is None}


# the target tree, by directory descriptors ----------------------------------------------
class _Tree:
    """``target`` and its subdirectories as descriptors; never follows a link under it."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self._dirs: dict[str, int] = {"": os.open(root, os.O_RDONLY | os.O_DIRECTORY
                                                  | os.O_CLOEXEC)}
        self._touched: set[int] = set()

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *_exc: object) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def directory(self, relative: str, create: bool) -> int | None:
        """The descriptor of ``relative`` (a directory path), None if absent and not
        created. Descriptors are kept: a directory swapped after we opened it changes
        nothing for us, we keep writing into the one we checked."""
        if relative in self._dirs:
            return self._dirs[relative]
        parent_path, _, name = relative.rpartition("/")
        parent = self.directory(parent_path, create)
        if parent is None:
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.mkdir(name, 0o755, dir_fd=parent)
            except FileExistsError:
                pass
            self._touched.add(parent)
            fd = self._open_dir(name, parent, relative)
        except OSError as exc:
            raise self._not_a_dir(exc, relative) from exc
        self._dirs[relative] = fd
        return fd

    def _open_dir(self, name: str, parent: int, relative: str) -> int:
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise self._not_a_dir(exc, relative) from exc

    @staticmethod
    def _not_a_dir(exc: OSError, relative: str) -> Exception:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return UnsafePath(f"{relative}: is a symlink or not a directory on this node")
        return exc

    def read(self, relative: str) -> Entry:
        parent_path, _, name = relative.rpartition("/")
        parent = self.directory(parent_path, create=False)
        if parent is None:
            return None
        try:
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return Link(os.readlink(name, dir_fd=parent))
        if stat.S_ISDIR(info.st_mode):
            raise ApplyError(f"{relative}: is a directory on this node")
        if not stat.S_ISREG(info.st_mode):
            raise ApplyError(f"{relative}: is not a regular file on this node")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=parent)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ApplyError(f"{relative}: is not a regular file on this node")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
        finally:
            os.close(fd)
        return File(b"".join(chunks), stat.S_IMODE(info.st_mode))

    def temp_file(self, relative: str, content: bytes, mode: int) -> tuple[int, str]:
        """A new file holding ``content`` next to ``relative``, under a short random name
        (a long target name must not make the temporary name too long)."""
        parent = self.directory(relative.rpartition("/")[0], create=True)
        assert parent is not None
        temp = f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(temp, dir_fd=parent)
            raise
        os.close(fd)
        return parent, temp

    def temp_link(self, relative: str, target: str) -> tuple[int, str]:
        parent = self.directory(relative.rpartition("/")[0], create=True)
        assert parent is not None
        temp = f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
        os.symlink(target, temp, dir_fd=parent)
        return parent, temp

    def discard(self, parent: int, temp: str) -> None:
        try:
            os.unlink(temp, dir_fd=parent)
        except OSError as exc:
            log.warning("event=temp_discard_failed name=%s reason=%r", temp, describe(exc))

    def install(self, parent: int, temp: str, relative: str) -> None:
        # rename() replaces a symlink at the destination itself, never what it points to.
        os.rename(temp, relative.rpartition("/")[2], src_dir_fd=parent, dst_dir_fd=parent)
        self._touched.add(parent)

    def remove(self, relative: str) -> None:
        parent = self.directory(relative.rpartition("/")[0], create=False)
        if parent is None:
            return
        try:
            os.unlink(relative.rpartition("/")[2], dir_fd=parent)  # a link itself, not its target
        except FileNotFoundError:
            return
        self._touched.add(parent)

    def sweep_temps(self, relative_dir: str) -> None:
        """Remove temporary files a killed apply left in ``relative_dir``."""
        try:
            fd = self.directory(relative_dir, create=False)
        except UnsafePath:
            return
        if fd is None:
            return
        for name in os.listdir(fd):
            if name.startswith(_TEMP_PREFIX) and name.endswith(".tmp"):
                os.unlink(name, dir_fd=fd)
                self._touched.add(fd)

    def sync(self) -> None:
        for fd in self._touched:
            os.fsync(fd)
        self._touched.clear()


def write_state_file(path: Path, content: bytes) -> None:
    """Replace a file of the agent's own state (0700 directory) atomically and durably,
    0600 from the start: last-good.json and the journals hold files with passwords."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_managed_list(path: Path) -> set[str]:
    """The managed-file list, read tolerantly: JSON (current format), or the old one path a
    line; whatever is not a safe relative path is ignored rather than trusted."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return set()
    except OSError as exc:
        log.warning("event=managed_list_unreadable path=%s reason=%r", path, describe(exc))
        return set()
    try:
        raw = json.loads(data.decode("utf-8"))
        names = raw.get("files", []) if isinstance(raw, dict) else []
    except (UnicodeDecodeError, ValueError):
        names = data.decode("utf-8", "replace").splitlines()
    found = _safe_names(names)
    ignored = len(names) - len(found)
    if ignored:
        log.warning("event=managed_list_entries_ignored path=%s count=%d", path, ignored)
    return found


class ReloadWatch(Protocol):
    """Knows when a reloaded service runs its new configuration."""

    def before(self) -> object: ...

    def wait(self, token: object) -> object: ...


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
    # ``reloaded`` knows when they run (see nginxworkers.py); else a fixed ``settle``.
    settle: float = 0.0
    reloaded: ReloadWatch | None = None
    modes: Callable[[str], int] = file_mode
    managed_list: Path | None = None
    _managed: set[str] = field(default_factory=set)
    _held: Journal | None = None  # applied, not yet committed by the caller

    def __post_init__(self) -> None:
        if self.managed_list:
            self._managed = read_managed_list(self.managed_list)

    @property
    def journal_path(self) -> Path | None:
        return self.managed_list.with_suffix(".journal") if self.managed_list else None

    # safety -------------------------------------------------------------------------------
    def destination(self, relative: str) -> Path:
        """Where a file goes; refuses a bad name or a path through a symlink (a check for
        callers: the writes themselves go through directory descriptors)."""
        reason = unsafe_path_reason(relative)
        if reason:
            raise UnsafePath(f"{relative}: {reason}")
        with _Tree(self.target) as tree:
            parent = relative.rpartition("/")[0]
            if parent:
                tree.directory(parent, create=False)
            if isinstance(tree.read(relative), Link):
                raise UnsafePath(f"{relative}: destination is a symlink")
        return self.target / relative

    # the steps ----------------------------------------------------------------------------
    def stage(self, files: Mapping[str, bytes], staging: Path) -> None:
        for relative, content in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)

    def run_reload(self, after_timeout: bool = False) -> str | None:
        if self.reload is None:
            return None
        if after_timeout and isinstance(self.reload, CommandReload):
            return self.reload.quick()
        return self.reload()

    def wait_healthy(self, token: object = None) -> str | None:
        if self.health is None:
            return None
        if self.reloaded is not None:
            self.reloaded.wait(token)
        else:
            time.sleep(self.settle)
        deadline = time.monotonic() + self.health_wait
        reason = self.health()
        while reason and time.monotonic() < deadline:
            time.sleep(0.05)
            reason = self.health()
        return reason

    def _remember(self, paths: set[str]) -> None:
        if self.managed_list:  # always rewritten: it upgrades the old line format too
            write_state_file(self.managed_list, json.dumps(
                {"format": 1, "files": sorted(paths)}).encode())
        self._managed = set(paths)

    def _write_journal(self, journal: Journal) -> None:
        failpoint("journal")
        if self.journal_path is not None:
            write_state_file(self.journal_path, journal.to_json())

    def _clear_journal(self) -> None:
        if self.journal_path is not None:
            self.journal_path.unlink(missing_ok=True)

    def apply(self, files: Mapping[str, bytes], version: int = 0,
              hold: bool = False) -> ApplyResult:
        """Apply ``files``; never raises. With ``hold``, a success keeps its journal until
        ``commit`` (or ``rollback``), so several resources form one transaction."""
        try:
            return self._apply(files, version, hold)
        except Exception as exc:  # the last resort: a bug must be a refusal, not a crash
            log.exception("event=apply_internal_error resource=%s", self.name)
            return ApplyResult(changed=False, ok=False, stage="internal", reason=describe(exc))

    def _apply(self, files: Mapping[str, bytes], version: int, hold: bool) -> ApplyResult:
        for relative in sorted(files):
            reason = unsafe_path_reason(relative)
            if reason:
                return ApplyResult(False, False, "validate", f"refused path {relative!r}: {reason}")
        conflicts = path_conflicts(files)
        if conflicts:
            return ApplyResult(False, False, "validate", "; ".join(conflicts))
        try:
            tree = _Tree(self.target)
        except OSError as exc:
            return ApplyResult(False, False, "write", describe(exc))
        with tree:
            unchanged = self._unchanged(tree, files)
            if unchanged:
                self._remember(set(files))
                if hold:
                    self._held = None
                return ApplyResult(changed=False, ok=True)
            try:
                reasons = self._validate(files)
            except Exception as exc:  # a name the staging copy cannot hold, a checker bug
                reasons = [describe(exc)]
            if reasons:
                return ApplyResult(False, False, "validate", "; ".join(reasons))
            try:
                previous = self._previous(tree, set(files))
            except (ApplyError, OSError) as exc:
                return ApplyResult(False, False, "write", describe(exc))
            journal = Journal(self.name, version, previous, frozenset(self._managed))
            try:
                self._write_journal(journal)
            except OSError as exc:
                return ApplyResult(False, False, "write", f"journal: {describe(exc)}")
            failpoint("after_journal")
            return self._write_and_check(tree, files, journal, hold)

    def _unchanged(self, tree: _Tree, files: Mapping[str, bytes]) -> bool:
        if self._managed and set(files) != self._managed:
            return False
        try:
            return all(isinstance(e := tree.read(p), File) and e.content == files[p]
                       and e.mode == self.modes(p) for p, _ in files.items())
        except (ApplyError, OSError):
            return False

    def _validate(self, files: Mapping[str, bytes]) -> list[str]:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=f".stackha-{self.name}-",
                                         dir=self.target.parent) as tmp:
            staging = Path(tmp)
            self.stage(files, staging)
            return self.validate(staging) if self.validate else []

    def _previous(self, tree: _Tree, wanted: set[str]) -> dict[str, Entry]:
        previous: dict[str, Entry] = {}
        for relative in sorted(wanted):
            previous[relative] = tree.read(relative)
        for relative in sorted(self._managed - wanted):
            try:
                previous[relative] = tree.read(relative)
            except (ApplyError, OSError) as exc:
                # Became a directory or moved under a link: not ours to remove any more.
                log.warning("event=managed_file_left resource=%s path=%r reason=%r",
                            self.name, relative, describe(exc))
        return previous

    def _write_and_check(self, tree: _Tree, files: Mapping[str, bytes], journal: Journal,
                         hold: bool) -> ApplyResult:
        started = time.monotonic()
        stage, reason, installed = "write", None, False
        try:
            temps: list[tuple[int, str, str]] = []
            try:
                for relative in sorted(files):
                    wanted = File(files[relative], self.modes(relative))
                    if journal.previous.get(relative) != wanted:
                        parent, temp = tree.temp_file(relative, wanted.content, wanted.mode)
                        temps.append((parent, temp, relative))
                        failpoint("write_temp")
            except BaseException:
                for parent, temp, _ in temps:
                    tree.discard(parent, temp)
                raise
            installed = True
            for index, (parent, temp, relative) in enumerate(temps):
                tree.install(parent, temp, relative)
                if index == 0:
                    failpoint("after_first_rename")
            for relative in sorted(set(journal.previous) - set(files), reverse=True):
                if journal.previous[relative] is not None:
                    tree.remove(relative)
            tree.sync()
            failpoint("after_all_renames")
            token = self.reloaded.before() if self.reloaded and self.health else None
            stage, reason = "reload", self.run_reload()
            failpoint("after_reload")
            if reason is None:
                stage, reason = "health", self.wait_healthy(token)
        except Exception as exc:
            reason = describe(exc)
        elapsed = time.monotonic() - started
        if reason is None:
            self._remember(set(files))
            self._held = journal
            if not hold:
                self.commit()
            return ApplyResult(changed=True, ok=True, reload_seconds=elapsed)
        if not installed:
            # Nothing was renamed into place: the node still has every previous file.
            self._clear_journal()
            log.warning("event=apply_refused resource=%s stage=%s reason=%r", self.name,
                        stage, reason)
            return ApplyResult(changed=False, ok=False, stage=stage, reason=reason,
                               retryable=isinstance(reason, Retryable))
        log.warning("event=rollback resource=%s stage=%s reason=%r", self.name, stage, reason)
        problem = self._restore(tree, journal, after_timeout="timed out" in reason)
        return ApplyResult(changed=True, ok=False, stage=stage, reason=reason,
                           reload_seconds=elapsed, rolled_back=True, rollback_problem=problem,
                           # Files not put back: a retry could find them "unchanged" and
                           # report the version applied with no reload. (A reload after the
                           # rollback that goes unanswered too is the same passing condition.)
                           retryable=isinstance(reason, Retryable)
                           and not problem.startswith(_FILES_NOT_RESTORED))

    def _restore(self, tree: _Tree, journal: Journal, after_timeout: bool = False) -> str:
        """Put the journal's previous set back and reload; the journal goes only once that
        worked, so a failed or interrupted restore is tried again on the next start."""
        problem = ""
        try:
            for relative in sorted(journal.previous):
                entry = journal.previous[relative]
                if entry is None:
                    tree.remove(relative)
                    continue
                if isinstance(entry, Link):
                    parent, temp = tree.temp_link(relative, entry.target)
                else:
                    try:
                        now = tree.read(relative)
                    except ApplyError:
                        now = None
                    if now == entry:
                        continue
                    parent, temp = tree.temp_file(relative, entry.content, entry.mode)
                tree.install(parent, temp, relative)
            for directory in sorted({p.rpartition("/")[0] for p in journal.previous}):
                tree.sweep_temps(directory)
            tree.sync()
        except Exception as exc:
            problem = f"{_FILES_NOT_RESTORED}: {describe(exc)}"
        again = self.run_reload(after_timeout=after_timeout)
        if again:
            log.error("event=rollback_reload_failed resource=%s reason=%r", self.name, again)
            problem = problem or f"reload after rollback: {again}"
        if problem:
            log.error("event=rollback_incomplete resource=%s reason=%r", self.name, problem)
            return problem
        if self.managed_list:
            write_state_file(self.managed_list, json.dumps(
                {"format": 1, "files": sorted(journal.managed)}).encode())
        self._managed = set(journal.managed)
        self._held = None
        failpoint("before_journal_clear")
        self._clear_journal()
        return ""

    # transactions over several resources -------------------------------------------------
    def commit(self) -> None:
        """The version is kept: its journal is no longer needed."""
        if self._held is not None:
            failpoint("before_journal_clear")
        self._held = None
        self._clear_journal()

    def rollback(self) -> str:
        """Undo a held success (another resource of the same version failed)."""
        journal, self._held = self._held, None
        if journal is None:
            return ""
        try:
            with _Tree(self.target) as tree:
                return self._restore(tree, journal)
        except Exception as exc:
            return describe(exc)

    def recover(self, committed: int) -> int | None:
        """On start: a journal left by a killed agent. Returns the interrupted version's
        number when its previous files were put back, None when there was nothing to do."""
        path = self.journal_path
        if path is None or not path.exists():
            return None
        try:
            journal = Journal.parse(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # Written atomically, so only tampering gets here: nothing to trust in it.
            log.error("event=journal_unreadable resource=%s reason=%r", self.name, describe(exc))
            path.unlink(missing_ok=True)
            return None
        if journal.version and journal.version <= committed:
            log.info("event=journal_committed resource=%s version=%d", self.name,
                     journal.version)
            self._clear_journal()
            return None
        log.warning("event=journal_restore resource=%s version=%d", self.name, journal.version)
        try:
            with _Tree(self.target) as tree:
                problem = self._restore(tree, journal)
        except Exception as exc:
            problem = describe(exc)
        if problem:
            log.error("event=journal_restore_failed resource=%s reason=%r", self.name, problem)
        return journal.version
