"""Issue 16: what the compose lab's agents cost at idle, per role, as deployed: installed
from the wheelhouse into each container (bytecode compiled at install), with their HTTP
endpoints on, checking real nginx and the real MyCat. Beside them, what the lab itself runs
on a node: keepalived, nginx, MyCat (the release's JVM, or the stand-in).

Read from the host: ``docker top`` gives each container's processes as host PIDs, and
/proc/PID gives CPU (utime + stime, children reaped included for keepalived's and nginx's
families) and VmRSS. The lab is used as it is when it is up; otherwise `stackha up` starts it
and it is taken down again afterwards.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from statistics import mean

from bench.drill import compose_lab
from bench.lab import cpu_seconds, log, pss_mib, vm_rss_mib
from bench.report import BenchOptions, Table

NODE_LABEL = "stackha.node"  # on each node container (stackha/lab/compose/render.py)


def kind_of(args: str) -> str | None:
    """Pure: which of the node's programs a command line is (None: not one we report)."""
    program = args.split(" ", 1)[0].rsplit("/", 1)[-1]
    if " agent " in f"{args} " and (program.startswith("python") or program == "stackha"):
        return "agent"  # not tini or the entrypoint's shell, whose arguments name it too
    if args.startswith("keepalived") or "/keepalived " in f"{args} ":
        return "keepalived"
    if args.startswith("nginx:") or args.split(" ", 1)[0].endswith("nginx"):
        return "nginx"
    if "io.mycat.MycatStartup" in args:
        return "MyCat (release JVM)"
    if "stackha.lab.standin" in args or "mycat-standin" in args:
        return "MyCat stand-in"
    return None


def _programs() -> tuple[dict[tuple[str, str], list[int]], dict[str, str]]:
    """(node, program) -> host PIDs, and node -> its roles, from the lab's node containers."""
    import docker

    client = docker.from_env()
    found: dict[tuple[str, str], list[int]] = defaultdict(list)
    roles: dict[str, str] = {}
    for container in client.containers.list(filters={"label": NODE_LABEL}):
        node = container.labels[NODE_LABEL]
        roles[node] = container.labels.get("stackha.roles", "")
        top = client.api.top(container.id, ps_args="-eo pid,args")
        for pid, args in ((int(row[0]), row[1]) for row in top["Processes"]):
            kind = kind_of(args)
            if kind is not None:
                found[(node, kind)].append(pid)
    return found, roles


def measure(seconds: float) -> list[tuple[object, ...]]:
    """One row per (role, program): CPU and memory over ``seconds``, mean and max over the
    role's nodes."""
    programs, roles = _programs()
    log(f"lab-idle: sampling {len(programs)} process groups for {seconds:.0f} s")
    before = {key: sum(cpu_seconds(p) for p in pids) for key, pids in programs.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    by_role: dict[tuple[str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for (node, kind), pids in programs.items():
        cpu = 100.0 * (sum(cpu_seconds(p) for p in pids) - before[(node, kind)]) / elapsed
        # the agent and the JVM: one process; keepalived and nginx: their family
        by_role[(roles.get(node, "?"), kind)].append(
            (cpu, sum(vm_rss_mib(p) for p in pids), sum(pss_mib(p) for p in pids)))
    rows: list[tuple[object, ...]] = []
    for (role, kind), found in sorted(by_role.items(),
                                      key=lambda i: (i[0][0], i[0][1] != "agent", i[0][1])):
        cpus, rss, pss = zip(*found, strict=True)
        rows.append((role, kind, len(found), round(mean(cpus), 2), round(max(cpus), 2),
                     round(mean(rss), 1), round(max(rss), 1), round(mean(pss), 1)))
    return rows


def run(options: BenchOptions) -> list[Table]:
    seconds = 10.0 if options.quick else 30.0
    with compose_lab("lab-idle"):
        time.sleep(5.0)
        rows = measure(seconds)
    return [Table(
        "Idle cost in the compose lab, per role (issue 16)",
        ("roles", "process", "nodes", "CPU % of a core (mean)", "CPU % (max)",
         "VmRSS MiB (mean)", "VmRSS MiB (max)", "PSS MiB (mean)"),
        tuple(rows),
        (f"Over {seconds:.0f} s with the lab idle: agents beat every second, with their HTTP "
         "endpoints on and TLS to ZooKeeper, and check nginx and MyCat as the lab's spec "
         "says. keepalived and nginx: the sum of their processes (and of the children they "
         "reaped).",
         f"1-min load average at the end: {os.getloadavg()[0]:.1f}."))]
