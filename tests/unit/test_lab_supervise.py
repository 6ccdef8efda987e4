"""compose/base/bin/stackha-lab-supervise, run for real with a fake service: the lab's MyCat
(or stand-in) JVM is started again whenever it exits, as the MyCat release's wrapper does. A
MyCat that died in the lab stayed dead before (issue #17: in an e2e run one node refused
logins for the 19 minutes that followed a ZooKeeper outage, and nothing started it again)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.processes import fake_program, own_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
SUPERVISE = ROOT / "compose/base/bin/stackha-lab-supervise"

FAKE = """#!/bin/bash
echo "start $$" >>"$FAKE_DIR/log"
echo $$ >"$FAKE_DIR/service.pid"
echo "service log line $$" >"$FAKE_DIR/service.log"
trap 'echo "term $$" >>"$FAKE_DIR/log"; exit 0' TERM
while :; do sleep 0.05; done
"""



def starts(where: Path) -> list[str]:
    path = where / "log"
    return [line for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    fake = fake_program(tmp_path / "fake-service", FAKE)
    env = dict(os.environ, FAKE_DIR=str(tmp_path), STACKHA_SUPERVISE_RESTART_DELAY="0.1")
    with own_group(["bash", str(SUPERVISE), "mycat", str(tmp_path / "supervisor.pid"),
                    str(tmp_path / "service.log"), "--", str(fake)],
                   env=env, stderr=subprocess.PIPE, text=True) as process:
        yield process, tmp_path


def test_a_service_that_dies_is_started_again_and_its_log_tail_shown(supervised):
    process, where = supervised
    wait_for(lambda: len(starts(where)) == 1)
    assert int((where / "supervisor.pid").read_text()) == process.pid
    first = int((where / "service.pid").read_text())
    os.kill(first, signal.SIGKILL)  # the JVM dies
    wait_for(lambda: len(starts(where)) == 2)
    assert int((where / "service.pid").read_text()) != first
    assert process.poll() is None
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    err = process.stderr.read()
    assert "mycat exited" in err and f"service log line {first}" in err


def test_stopping_the_supervisor_stops_the_service_and_does_not_restart_it(supervised):
    process, where = supervised
    wait_for(lambda: len(starts(where)) == 1)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert [line.split()[0] for line in starts(where)] == ["start", "term"]
    assert not (where / "supervisor.pid").exists()
