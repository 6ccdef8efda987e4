"""The real keepalived: config test, a supervised child process, and its notify FIFO."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import select
import shlex
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stackha.model.environment import child_environment

log = logging.getLogger(__name__)

KEEPALIVED = os.environ.get("STACKHA_KEEPALIVED", "keepalived")
_SCRIPT_LINE = re.compile(r'^\s*script\s+"([^"]+)"', re.MULTILINE)
_SCRIPT_USER = re.compile(r"^(\s*script_user\s+)\S+.*$", re.MULTILINE)


def insecure_path_reason(path: Path) -> str | None:
    """keepalived's script security refuses a script any non-root user could replace."""
    if not path.is_absolute():
        return f"{path}: script path must be absolute"
    if not path.exists():
        return f"{path}: script not found"
    for part in [path, *path.parents]:
        info = part.stat()
        if info.st_uid != 0 or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{path}: {part} is writable by a non-root user"
    return None


def config_test(text: str, keepalived: tuple[str, ...] = (KEEPALIVED,)) -> list[str]:
    """`keepalived --config-test` on ``text``; returns the reasons it is refused.

    keepalived 2.2.7 kills itself during -t whenever a script_user is in effect (fixed
    upstream in 2.2.8), so the copy under test runs scripts as root, and the script-security
    rule keepalived would apply at run time is checked here instead.
    """
    reasons = []
    for command in _SCRIPT_LINE.findall(text):
        reason = insecure_path_reason(Path(shlex.split(command)[0]))
        if reason:
            reasons.append(reason)
    tested = _SCRIPT_USER.sub(r"\g<1>root", text)
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="stackha-keepalived-") as tmp:
        tmp.write(tested)
        tmp.flush()
        try:
            done = subprocess.run([*keepalived, "--config-test", "-f", tmp.name, "-l"],
                                  capture_output=True, text=True, timeout=30)
        except FileNotFoundError:
            return [f"{KEEPALIVED} not found: install keepalived"]
        except subprocess.TimeoutExpired:
            return ["keepalived --config-test did not finish within 30 s"]
    if done.returncode != 0:
        output = [line.replace(tmp.name, "keepalived.conf").strip()
                  for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        reasons.append(f"keepalived --config-test exited {done.returncode}: "
                       + ("; ".join(output[-3:]) or "no output"))
    return reasons


PID_FILES = ("keepalived.pid", "keepalived-vrrp.pid", "keepalived-checkers.pid")


def _runs_keepalived_on(pid: int, config: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return argv[0].endswith(b"keepalived") and str(config).encode() in argv


def _pid_in(path: Path) -> int | None:
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid > 0 else None


def running_keepalived(run_dir: Path, config: Path) -> int | None:
    """The pid of the keepalived an earlier agent started on ``config``, if it still runs:
    its pid file names it and /proc says it is keepalived on that very file (a pid file alone
    may name a recycled pid)."""
    pid = _pid_in(run_dir / PID_FILES[0])
    return pid if pid is not None and _runs_keepalived_on(pid, config) else None


def stop_keepalived(run_dir: Path, config: Path, timeout: float = 10.0) -> int | None:
    """SIGTERM the keepalived left running on ``config`` (a master advertises priority 0, so
    its backup takes over at once) and wait for it; returns its pid, None if none ran."""
    pid = running_keepalived(run_dir, config)
    if pid is not None:
        log.info("event=keepalived_stopping pid=%d", pid)
        _terminate(pid, timeout)
    return pid


def config_digest(config: Path) -> str:
    try:
        return hashlib.sha256(config.read_bytes()).hexdigest()
    except OSError:
        return ""


LOADED_FILE = "keepalived.loaded"  # the digest of the file keepalived last (re)read


def _terminate(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM a process that is not our child, SIGKILL if it outlives ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


@dataclass
class KeepalivedProcess:
    """keepalived as a supervised child: restarted with backoff, reloaded with SIGHUP.

    An agent that stops ``detach``es: keepalived keeps running with its VRRP state and its
    track files' last values, and the next agent adopts it (pid file + /proc), reloading it
    only when the file on disk differs from the one it last read. ``stop`` gives it SIGTERM,
    so a master sends a priority-0 advert and its backup takes over after the skew time
    instead of three advert intervals.
    """

    config: Path
    run_dir: Path
    extra_args: tuple[str, ...] = ()
    on_exit: Callable[[int], None] | None = None
    # Called before each start, once an orphaned keepalived is stopped (see _clear_pid_files).
    before_spawn: Callable[[], None] | None = None
    max_backoff: float = 10.0

    def __post_init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._adopted: int | None = None  # a keepalived an earlier agent started
        self.adopted = False  # whether start() found one
        self.restarts = 0

    def command(self) -> list[str]:
        prefix = self.run_dir
        return [KEEPALIVED, "--dont-fork", "--log-console", "--log-detail",
                "--use-file", str(self.config),
                "--pid", str(prefix / PID_FILES[0]),
                "--vrrp_pid", str(prefix / PID_FILES[1]),
                "--checkers_pid", str(prefix / PID_FILES[2]),
                *self.extra_args]

    @property
    def running(self) -> bool:
        if self._adopted is not None:
            return _runs_keepalived_on(self._adopted, self.config)
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        if self._adopted is not None:
            return self._adopted
        return self._process.pid if self._process else None

    def _record_loaded(self) -> None:
        try:
            (self.run_dir / LOADED_FILE).write_text(config_digest(self.config) + "\n")
        except OSError as exc:
            log.warning("event=keepalived_loaded_write_failed reason=%r", exc.strerror)

    def _adopt(self) -> bool:
        """Take over a keepalived an earlier agent left running; SIGHUP it only if the file
        on disk is not the one it read (an agent stopped between writing and reloading)."""
        pid = running_keepalived(self.run_dir, self.config)
        if pid is None:
            return False
        self._adopted, self.adopted = pid, True
        try:
            loaded = (self.run_dir / LOADED_FILE).read_text().strip()
        except OSError:
            loaded = ""  # started by an agent that kept no record: assume it read this file
        changed = bool(loaded) and loaded != config_digest(self.config)
        log.info("event=keepalived_adopted pid=%d config_changed=%s", pid,
                 "yes" if changed else "no")
        if changed:
            self.reload()
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        self._adopt()
        self._thread = threading.Thread(target=self._supervise, name="keepalived",
                                        daemon=True)
        self._thread.start()

    def _clear_pid_files(self) -> None:
        """keepalived will not start while its pid files name a live process ("daemon is
        already running"). Left by a crash or a container restart they name a dead or
        unrelated pid: remove them. One naming a keepalived on our config is an orphan of an
        earlier agent: stop it first, or two would fight over the VIPs."""
        for name in PID_FILES:  # the parent first: its children go with it
            path = self.run_dir / name
            try:
                pid = int(path.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                path.unlink(missing_ok=True)
                continue
            if _runs_keepalived_on(pid, self.config):
                log.warning("event=keepalived_orphan_stopped pid=%d", pid)
                _terminate(pid)
            elif pid:
                log.info("event=keepalived_stale_pid_file file=%s pid=%d", name, pid)
            path.unlink(missing_ok=True)

    def _spawn(self) -> None:
        self._clear_pid_files()
        if self.before_spawn:
            self.before_spawn()
        log_file = open(self.run_dir / "keepalived.log", "ab")
        with self._lock:
            self._record_loaded()
            # Its own session: a signal to the agent's process group (Ctrl-C, a service
            # manager's) is not one to keepalived, which outlives a plain agent stop.
            self._process = subprocess.Popen(self.command(), stdout=log_file,
                                             stderr=subprocess.STDOUT,
                                             env=child_environment(os.environ),
                                             start_new_session=True)
        log_file.close()
        log.info("event=keepalived_started pid=%d", self._process.pid)

    def _wait_exit(self, pid: int) -> int | None:
        """Wait until ``pid`` ends (child or not: a pidfd says so) or the agent stops
        supervising; its exit code when it is our child, -1 when it is not, None if detached."""
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            fd = None
        try:
            while not self._stopping.is_set():
                if fd is None:
                    break
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    break
        finally:
            if fd is not None:
                os.close(fd)
        if self._stopping.is_set():
            return None
        process = self._process
        if process is not None and process.pid == pid:
            return process.wait()
        return -1

    def _supervise(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            started = time.monotonic()
            if self._adopted is not None:
                pid = self._adopted
            else:
                self._spawn()
                assert self._process is not None
                pid = self._process.pid
            code = self._wait_exit(pid)
            if code is None or self._stopping.is_set():
                break
            self._adopted = None
            self.restarts += 1
            log.warning("event=keepalived_exited code=%d restart_in=%.1f", code, backoff)
            if self.on_exit:
                self.on_exit(code)
            if time.monotonic() - started > 30:
                backoff = 0.5
            self._stopping.wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    def reload(self) -> str | None:
        with self._lock:
            pid = self.pid
            if pid is None or not self.running:
                return None  # the supervisor starts it with the new file anyway
            self._record_loaded()
            try:
                os.kill(pid, signal.SIGHUP)
            except ProcessLookupError:
                return None
        log.info("event=keepalived_reloaded pid=%d", pid)
        return None

    def detach(self, timeout: float = 10.0) -> None:
        """Stop supervising and leave keepalived running, VIPs and all, for the next agent."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        log.info("event=keepalived_left_running pid=%s", self.pid if self.running else "-")

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        with self._lock:
            process, adopted = self._process, self._adopted
        if adopted is not None:
            if _runs_keepalived_on(adopted, self.config):
                _terminate(adopted, timeout)
        elif process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        log.info("event=keepalived_stopped")


NOTIFY_STATES = frozenset({"MASTER", "BACKUP", "FAULT", "STOP", "DELETED"})
_NOTIFY = re.compile(r'^(INSTANCE|GROUP)\s+"?([^"\s]+)"?\s+(\w+)\s+(\d+)')


def parse_notify_line(line: str) -> tuple[str, str, int] | None:
    """``INSTANCE "web" MASTER 150`` -> ("web", "MASTER", 150); groups are ignored."""
    match = _NOTIFY.match(line.strip())
    if not match or match.group(1) != "INSTANCE" or match.group(3) not in NOTIFY_STATES:
        # MASTER_RX_LOWER_PRI (a master heard a lower priority) is an event, not a state.
        return None
    return match.group(2), match.group(3), int(match.group(4))


class NotifyFifo:
    """Reads keepalived's vrrp_notify_fifo and hands each instance transition on."""

    def __init__(self, path: Path, on_state: Callable[[str, str, int], None]):
        self.path = path
        self.on_state = on_state
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and not stat.S_ISFIFO(self.path.stat().st_mode):
            self.path.unlink()
        if not self.path.exists():
            os.mkfifo(self.path, 0o600)
        # Opened read-write so the reader never sees EOF when keepalived restarts.
        self._fd = os.open(self.path, os.O_RDWR)
        self._thread = threading.Thread(target=self._read, name="notify-fifo", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._fd is not None
        with os.fdopen(self._fd, "r", buffering=1, closefd=False) as stream:
            for line in stream:
                parsed = parse_notify_line(line)
                if parsed:
                    self.on_state(*parsed)
