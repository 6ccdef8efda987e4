"""Issue 16: what an agent costs at idle, per role: CPU (share of one core) and VmRSS.

- ``nginx``: the VRRP lab (testkit/vrrplab.py: two nginx nodes with real agents, real
  keepalived and nginx in network namespaces, one ZooKeeper); measured on the master
  nginx1, whose agent runs the node's health checks (or keepalived forks them).
- ``director``: a director-role agent on loopback (no files, no VRRP): ZooKeeper, the
  heartbeat and the event loop alone.

CPU is utime + stime from /proc/PID/stat over the sample window; keepalived's figure is the
sum over its processes including the check scripts they forked and reaped (cutime/cstime).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.failover import lab_identities
from bench.lab import Lab, cpu_seconds, free_port, log, vm_rss_mib
from bench.report import BenchOptions, Table
from testkit.netlab import keepalived_pids, wait_until
from testkit.vrrplab import VrrpLab

# The lab's agents beat every second (compose rendering); the same here.
HEARTBEAT = 1.0


def _own_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _sample(pids: dict[str, list[int]], seconds: float) -> dict[str, tuple[float, float]]:
    """name -> (percent of one core, VmRSS MiB of the first pid) over ``seconds``."""
    def total(name: str, group: list[int]) -> float:
        read = _own_cpu if name.endswith("agent") else cpu_seconds
        return sum(read(pid) for pid in group)

    before = {name: total(name, group) for name, group in pids.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (100.0 * (total(name, group) - before[name]) / elapsed,
                   sum(vm_rss_mib(pid) for pid in group))
            for name, group in pids.items()}


def _nginx_role(seconds: float) -> list[tuple[object, ...]]:
    lab_identities()  # run alone, idle comes before failover, which set them
    root = Path(tempfile.mkdtemp(prefix="stackha-bench-idle-"))
    lab = VrrpLab(root / "lab", heartbeat=HEARTBEAT)
    try:
        lab.setup()
        wait_until(lambda: lab.holder() == "nginx1", 60, what="nginx1 to be master")
        time.sleep(3.0)
        agent = lab.agents["nginx1"].pid
        found = _sample({"agent": [agent], "keepalived": keepalived_pids(lab.n1)}, seconds)
        conf = (lab.node_dir(lab.n1) / "keepalived" / "keepalived.conf").read_text()
        scripts = conf.count("vrrp_script ")
        return [("nginx (VRRP master)", "agent", *found["agent"], f"{scripts} vrrp_script(s)"),
                ("nginx (VRRP master)", "keepalived + its scripts", *found["keepalived"], "")]
    finally:
        lab.teardown()
        shutil.rmtree(root, ignore_errors=True)


def _director_role(seconds: float) -> list[tuple[object, ...]]:
    lab = Lab.create("idle")
    try:
        port = free_port()
        lab.write_spec([("director1", "director")], port)
        lab.write_nginx_files(port, "idle", "idle\n")
        watch = lab.watch_status(["director1"])
        number = lab.push("bench: idle").number
        agent = lab.start_agent("director1", lab.configs, lab.root / "director1" / "nginx",
                                "true", HEARTBEAT)
        watch.wait_applied(number, ["director1"], 60, lab)
        time.sleep(3.0)
        found = _sample({"agent": [agent.process.pid]}, seconds)
        return [("director (no LVS)", "agent", *found["agent"], "")]
    finally:
        lab.close()


def run(options: BenchOptions) -> list[Table]:
    seconds = 10.0 if options.quick else 20.0
    log(f"idle: sampling each role for {seconds:.0f} s")
    rows = _nginx_role(seconds) + _director_role(seconds)
    return [Table(
        "Idle cost per role (issue 16)",
        ("role", "process", "CPU % of a core", "VmRSS MiB", "note"),
        tuple((r[0], r[1], round(r[2], 2), round(r[3], 1), r[4]) for r in rows),
        (f"utime + stime from /proc/PID/stat over {seconds:.0f} s after 3 s of rest; "
         f"agents beat every {HEARTBEAT:g} s as in the lab. keepalived: its processes, with "
         "the check scripts they forked and reaped.",
         f"1-min load average at the end: {os.getloadavg()[0]:.1f} (other jobs share the "
         "machine)."))]
