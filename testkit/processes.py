"""Driving real scripts in tests: a fake program to run, the script in a process group of
its own (killed whole at the end, so nothing it started outlives the test), and polling for
a condition (no timing is asserted by it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(interval)


def fake_program(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@contextmanager
def own_group(argv: list[str], **popen: Any) -> Iterator[subprocess.Popen]:
    process = subprocess.Popen(argv, start_new_session=True, **popen)
    try:
        yield process
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
