"""The drill's clients at a real-time priority (stackha/lab/drill/priority.py)."""

from __future__ import annotations

import os

from stackha.lab.drill import priority
from testkit import skip_unless_ci


def test_the_clients_ask_for_round_robin_reset_on_fork(monkeypatch):
    asked = []
    monkeypatch.setattr(os, "sched_setscheduler",
                        lambda pid, policy, param: asked.append((pid, policy,
                                                                 param.sched_priority)))
    assert priority.raise_client_priority() == "SCHED_RR 10"
    # pid 0: the calling thread, whose later threads inherit it; children start normal
    assert asked == [(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, 10)]


def test_without_the_right_the_report_says_the_clients_ran_at_normal_priority(monkeypatch):
    def refuse(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    said = priority.raise_client_priority()
    assert said.startswith("normal priority") and "not permitted" in said


def test_a_child_of_a_raised_thread_runs_at_normal_priority():
    import subprocess
    import sys
    import threading

    found: list[str] = []

    def raised() -> None:
        if not priority.raise_client_priority().startswith("SCHED_RR"):
            found.append("skip")
            return
        found.append(str(os.sched_getscheduler(0) & ~os.SCHED_RESET_ON_FORK))
        child = subprocess.run([sys.executable, "-c",
                                "import os; print(os.sched_getscheduler(0))"],
                               capture_output=True, text=True, check=True)
        found.append(child.stdout.strip())

    # its own thread: the raise applies to the calling thread only, not pytest's
    thread = threading.Thread(target=raised)
    thread.start()
    thread.join()
    if found == ["skip"]:
        # CI runs as root, where the drill raises its clients: there this must run
        skip_unless_ci("no right to real-time scheduling here", ci_has_it=os.geteuid() == 0)
    assert found == [str(os.SCHED_RR), str(os.SCHED_OTHER)]
