"""Knowing when a reloaded nginx serves its new configuration (issue 16), on the real nginx."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request

import pytest

from stackha.agent.nginxworkers import NginxReloadWatch, pid_file_of, wait_new_workers, workers
from testkit.localzk import free_port

pytestmark = pytest.mark.integration

CONF = """
user root;
pid run/nginx.pid;
worker_processes 2;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{ access_log off;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "{marker}\\n"; }} }} }}
"""


@pytest.fixture
def nginx(tmp_path):
    port = free_port()
    (tmp_path / "logs").mkdir()
    (tmp_path / "run").mkdir()
    (tmp_path / "nginx.conf").write_text(CONF.format(port=port, marker="v0"))
    command = ["nginx", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf")]
    subprocess.run(command, check=True)
    assert wait_new_workers(pid_file_of(tmp_path), None, 10)
    master = workers(pid_file_of(tmp_path))
    yield tmp_path, port, command
    # Not `nginx -s stop`: it parses nginx.conf first, and a test may have left it broken.
    if master is not None:
        os.kill(master.master, signal.SIGTERM)


def _get(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as answer:
        return answer.read().decode().strip()


def test_pid_file_comes_from_the_pid_directive(tmp_path):
    (tmp_path / "nginx.conf").write_text("worker_processes 1;\n  pid  run/x.pid ;\n")
    assert pid_file_of(tmp_path) == tmp_path / "run/x.pid"
    (tmp_path / "nginx.conf").write_text("pid /var/run/y.pid;\n")
    assert str(pid_file_of(tmp_path)) == "/var/run/y.pid"


def test_after_the_wait_every_answer_comes_from_the_new_configuration(nginx):
    """Asked right after `nginx -s reload`, the old workers still answer; after the wait
    for new workers, never."""
    prefix, port, command = nginx
    watch = NginxReloadWatch(prefix)
    for round_ in range(1, 16):
        (prefix / "nginx.conf").write_text(CONF.format(port=port, marker=f"v{round_}"))
        token = watch.before()  # as FileSync does: files written, reload next
        before = token[1]
        # Two workers configured; right after the previous round's wait the second may not
        # have started yet (the wait ends when every serving worker is new, not when all are).
        assert before is not None and before.serving
        subprocess.run([*command, "-s", "reload"], check=True)
        watch.wait(token)
        after = workers(pid_file_of(prefix))
        assert after is not None and not after.serving & before.serving
        assert _get(port) == f"v{round_}"


def test_a_reload_that_nginx_refuses_ends_the_wait_at_its_timeout(nginx):
    prefix, port, command = nginx
    pid_file = pid_file_of(prefix)
    before = workers(pid_file)
    assert before is not None and before.serving
    # passes no `nginx -t` here: the master keeps its old workers
    (prefix / "nginx.conf").write_text("pid run/nginx.pid; events {} http { server { "
                                       "listen 127.0.0.1:1 x; } }")
    subprocess.run([*command, "-s", "reload"], check=False)
    assert wait_new_workers(pid_file, before, 0.3) is False
    after = workers(pid_file)  # the same processes (one may have finished starting since)
    assert after is not None and (after.master, after.children) == (before.master,
                                                                     before.children)
    assert _get(port) == "v0"


def test_the_old_workers_are_retired_without_costing_the_master_a_worker(nginx):
    """nginx's master sleeps 100 ms between starting the new workers and telling the old ones
    to quit (ngx_process_cycle.c, "allow new processes to start"); the wait sends that QUIT
    itself as soon as a new worker serves. Done too early, or twice, the master would count
    a lost worker (respawn it, or run short): after every reload it must settle on exactly
    its two workers, all new, none of them an old one shutting down, and its log clean."""
    prefix, port, command = nginx
    pid_file = pid_file_of(prefix)
    watch = NginxReloadWatch(prefix)
    for round_ in range(1, 11):
        (prefix / "nginx.conf").write_text(CONF.format(port=port, marker=f"r{round_}"))
        token = watch.before()
        before = token[1]
        assert before is not None
        subprocess.run([*command, "-s", "reload"], check=True)
        retired = watch.wait(token)
        assert retired, "the wait sent no QUIT: the old workers quit on the master's timer"
        assert retired <= before.children
        assert _get(port) == f"r{round_}"
        assert _settles_on_two_new_workers(pid_file, before)


def _settles_on_two_new_workers(pid_file, before, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = workers(pid_file)
        if (now is not None and len(now.serving) == 2 and not now.serving & before.children
                and len(_all_children(now.master)) == 2):
            time.sleep(0.3)  # the master's own QUIT, 100 ms after its new workers, is past
            again = workers(pid_file)
            return again == now and len(_all_children(now.master)) == 2
        time.sleep(0.02)
    return False


def _all_children(master: int) -> list[int]:
    with open(f"/proc/{master}/task/{master}/children") as handle:
        return [int(p) for p in handle.read().split()]
