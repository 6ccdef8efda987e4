"""The lab containers' entrypoint (compose/base/bin/stackha-lab-entrypoint), run for real with
a fake agent: an agent that exits 0 on its own SIGTERM (an in-container restart, as
`systemctl restart` would) is started again and keepalived is left alone; SIGTERM to the
entrypoint (docker stop) stops the agent, then its services (`--stop-services`: a graceful
failover), and the container ends; an agent that fails ends the container as before."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.processes import fake_program, own_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "compose/base/bin/stackha-lab-entrypoint"

FAKE_AGENT = """#!/bin/bash
# A stand-in for `stackha agent --config FILE`: says what it was asked, in order.
log="$FAKE_DIR/log"
if [ "${1:-}" = "--stop-services" ] || [ "${3:-}" = "--stop-services" ]; then
    echo stop-services >>"$log"; exit 0
fi
echo "start $$" >>"$log"
echo $$ >"$FAKE_DIR/agent.pid"
trap 'echo "term $$" >>"$log"; exit 0' TERM
while :; do sleep 0.05; done
"""



@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    agent = fake_program(tmp_path / "fake-agent", FAKE_AGENT)
    env = dict(os.environ, FAKE_DIR=str(tmp_path), STACKHA_LAB_SERVICES="")
    # Its own process group: killing the entrypoint alone would leave the fake agent looping.
    with own_group(["bash", str(ENTRYPOINT), str(agent), "--config", "x.yaml"],
                   env=env) as process:
        yield process, tmp_path


def log_lines(where: Path) -> list[str]:
    path = where / "log"
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def test_an_agent_stopped_alone_is_started_again_and_keepalived_left(lab):
    process, where = lab
    wait_for(lambda: log_lines(where) == ["start"])
    first = int((where / "agent.pid").read_text())
    os.kill(first, signal.SIGTERM)  # what the drill does: the agent process only
    wait_for(lambda: log_lines(where) == ["start", "term", "start"])
    second = int((where / "agent.pid").read_text())
    assert second != first and process.poll() is None
    assert "stop-services" not in log_lines(where)


def test_docker_stop_stops_the_agent_then_its_services(lab):
    process, where = lab
    wait_for(lambda: log_lines(where) == ["start"])
    process.send_signal(signal.SIGTERM)  # tini passes docker stop's SIGTERM to its child
    assert process.wait(timeout=10) == 0
    assert log_lines(where) == ["start", "term", "stop-services"]


def test_an_agent_that_fails_ends_the_container_with_its_services(lab):
    process, where = lab
    wait_for(lambda: log_lines(where) == ["start"])
    os.kill(int((where / "agent.pid").read_text()), signal.SIGKILL)  # a crash, not a stop
    assert process.wait(timeout=10) != 0
    assert log_lines(where)[-1] == "stop-services"
    assert log_lines(where).count("start") == 1
