"""`stackha drill --load N`: the load generator starts N busy loops and stops every one."""

from __future__ import annotations

import os
import time

from stackha.lab.drill.load import CpuLoad


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def cpu_ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().split(") ", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_load_starts_its_processes_at_normal_priority_and_stops_them():
    with CpuLoad(2) as load:
        pids = load.pids
        assert len(pids) == 2 and all(alive(p) for p in pids)
        assert all(os.getpriority(os.PRIO_PROCESS, p) == os.nice(0) for p in pids)
        deadline = time.monotonic() + 10
        while not all(cpu_ticks(p) > 0 for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert all(cpu_ticks(p) > 0 for p in pids)  # busy: they burn CPU
    assert load.pids == [] and not any(alive(p) for p in pids)


def test_a_process_that_ignores_sigterm_is_killed():
    load = CpuLoad(1, ["python3", "-c", "import signal, time\n"
                       "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                       "while True: time.sleep(0.01)\n"]).start()
    pid = load.pids[0]
    time.sleep(0.3)
    load.stop(timeout=0.2)
    assert not alive(pid)


def test_zero_processes_is_no_load():
    with CpuLoad(0) as load:
        assert load.pids == []
