"""Issue 3: from `stackha push-config` to "applied" on N agents (N = 1, 10, 100) against one
real ZooKeeper, and the agents' resident memory at idle.

Per N: a fresh ZooKeeper, N real `stackha agent` processes (one per node of a generated spec),
one real nginx. Two kinds of version are pushed to the same agents:

- ``director``: the nodes have the director role, which carries no files (and the spec has no
  VRRP or LVS): each agent fetches the version, verifies every checksum, parses the spec,
  fsyncs last-good.json and reports. That is the propagation machinery alone.
- ``nginx``: the nodes have the nginx role and every push changes nginx.conf and index.html:
  each agent stages the files, runs the real `nginx -t` on them, writes them atomically, runs
  the reload command, waits until nginx's workers are new ones (/proc) and health-checks.
  node001 manages a real nginx with `nginx -s reload`; the others run `true` as reload
  command (N nginx instances could not all listen on the port the one pushed nginx.conf
  names) and health-check node001's nginx.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.lab import Lab, cpu_seconds, free_port, log, vm_rss_mib
from bench.report import BenchOptions, Table, median, percentile

AGENT_COUNTS = (1, 10, 100)
# Status writes are then the apply reports alone (see StatusWatch); the heartbeat only
# refreshes the status znode and plays no part in propagation.
HEARTBEAT = 3600.0
WORK = {
    "director": "director role, no files: fetch + verify version, fsync last-good, report",
    "nginx": "nginx role, pushed with --all-at-once: stage, real `nginx -t`, atomic writes, "
             "reload (node001: real `nginx -s reload`, others `true`), wait for new workers, "
             "health GET, report",
    "nginx staged": "the same, pushed as by default: the canary (node001, healthy, no VIP) "
                    "applies first, the others poll its status every 0.2 s and follow",
}
PUSH_ARGS = {"director": (), "nginx": ("--all-at-once",), "nginx staged": ()}


def run(options: BenchOptions) -> list[Table]:
    pushes = 2 if options.quick else 10
    rows: list[tuple[object, ...]] = []
    memory: list[tuple[object, ...]] = []
    background: list[str] = []
    for count in AGENT_COUNTS:
        log(f"propagation: {count} agent(s), {pushes} pushes per kind of version")
        before = os.getloadavg()[0]
        measured, rss, zk_rss, loads = _measure(count, pushes)
        background.append(f"N={count}: {before:.1f} / {median(loads):.1f}")
        for kind, (samples, last, from_start, walls, cpu) in measured.items():
            rows.append((count, kind, pushes, len(samples), *(round(v) for v in (
                percentile(samples, 0.5), percentile(samples, 0.99), median(last), max(last),
                percentile(from_start, 0.5), median(walls), median(cpu)))))
        memory.append((count, *(f"{v:.1f}" for v in (median(rss), max(rss), min(rss), zk_rss))))
    propagation = Table(
        "Propagation: push-config → applied on N agents (one real ZooKeeper)",
        ("agents", "version", "pushes", "samples", "p50 ms", "p99 ms", "last agent p50 ms",
         "last agent max ms", "from push start p50 ms", "push-config process p50 ms",
         "agent CPU ms per version"),
        tuple(rows),
        (
            "p50/p99/last agent: from the ZooKeeper commit of the push (mtime of config/current) "
            "to the ZooKeeper commit of the agent's status write reporting that version as "
            "applied (mtime of status/<node>); both are ZooKeeper's own timestamps, so the "
            "observer's watch delay does not count. p50/p99 are over all agent-push samples "
            "(nearest rank: with fewer than 100 samples p99 is the worst one); 'last agent' is "
            "the slowest agent of each push.",
            "'from push start': from the start of the `python -m stackha push-config` process "
            "(interpreter start, validation with `nginx -t`, connect, one transaction) to the "
            "same status write; 'push-config process' is that process's own wall time.",
            f"director: {WORK['director']}.",
            f"nginx: {WORK['nginx']}. The others cannot each run an nginx: the one pushed "
            "nginx.conf names one listen port. `nginx -t` on these files costs "
            f"{_nginx_t_cpu_ms():.1f} ms of CPU here, so every agent runs it, as a real node "
            "does.",
            f"nginx staged: {WORK['nginx staged']}. With one agent there is no canary.",
            "Each agent is a separate `python -m stackha agent` process started with "
            f"--heartbeat {HEARTBEAT:g} (status writes are then the apply reports alone); "
            "one version is pushed at a time and the next only after every agent applied it. "
            "ZooKeeper runs with maxClientCnxns=0 because all agents share 127.0.0.1.",
            "agent CPU ms per version: median over agents of the CPU time (user + system, "
            "with the agent's `nginx -t`/reload children) spent during the measured pushes, "
            "divided by the pushes; it includes the agent's idle cost over the time the "
            "pushes took. An agent parses a spec once per content (these pushes change "
            "nginx files only): before that, the 100-node stackha.yaml cost 6.5 ms of CPU "
            "per version and agent. All N agents share this "
            f"machine's {os.cpu_count()} CPU cores, so at N=100 the last agent finishes after "
            "roughly N x that CPU / cores; on real hosts each agent has its own CPU.",
            "Other jobs ran on this machine while measuring. 1-min load average before each "
            "N's agents started / median at the measured pushes (the latter includes the "
            "agents themselves): " + ", ".join(background) + ".",
        ))
    rss_table = Table(
        "Agent resident memory at idle",
        ("agents", "median VmRSS MiB", "max VmRSS MiB", "min VmRSS MiB", "ZooKeeper VmRSS MiB"),
        tuple(memory),
        ("VmRSS from /proc/PID/status of each agent's python process, read after all pushes "
         "of every kind and 3 s of idle (nginx role, having applied every version).",
         "ZooKeeper: the one java server (-Xmx256m, SerialGC) those agents were connected to."))
    return [propagation, rss_table]


def _measure(count: int, pushes: int) -> tuple[
        dict[str, tuple[list[float], list[float], list[float], list[float], list[float]]],
        list[float], float, list[float]]:
    lab = Lab.create(f"propagation-{count}")
    try:
        nodes = [f"node{i:03d}" for i in range(1, count + 1)]
        port = free_port()
        agent_configs = lab.root / "agent-configs"  # what each agent reads at start
        lab.write_spec([(n, "director") for n in nodes], port, agent_configs)
        lab.write_spec([(n, "director") for n in nodes], port)
        lab.write_nginx_files(port, "warm-up", "warm-up\n")
        watch = lab.watch_status(nodes)
        first = lab.push("bench: first version")
        real = lab.start_nginx(nodes[0], port)
        started = time.monotonic()
        for index, node in enumerate(nodes):
            if index == 0:
                lab.start_agent(node, agent_configs, real.prefix, real.reload_command(),
                                HEARTBEAT)
            else:
                lab.start_agent(node, agent_configs, lab.root / node / "nginx", "true",
                                HEARTBEAT)
        timeout = 60.0 + count
        watch.wait_applied(first.number, nodes, timeout, lab)
        log(f"{count} agent(s) up and on version {first.number} after "
            f"{time.monotonic() - started:.1f} s")
        measured = {}
        loads: list[float] = []
        pids = [agent.process.pid for agent in lab.agents]
        for kind in PUSH_ARGS:
            if kind == "nginx":
                lab.write_spec([(n, "nginx") for n in nodes], port)
                lab.write_nginx_files(port, "nginx warm-up", "nginx warm-up\n")
                warm = lab.push("bench: nginx role")
                watch.wait_applied(warm.number, nodes, timeout, lab)
            samples: list[float] = []
            last: list[float] = []
            from_start: list[float] = []
            walls: list[float] = []
            cpu_before = [cpu_seconds(pid) for pid in pids]
            for k in range(pushes):
                loads.append(os.getloadavg()[0])
                marker = f"{kind} push {k}"
                lab.write_nginx_files(port, marker, f"{marker}\n")
                push = lab.push(f"bench: {marker}", *PUSH_ARGS[kind])
                applied = watch.wait_applied(push.number, nodes, timeout, lab)
                latencies = [float(ms - push.commit_ms) for ms in applied.values()]
                samples += latencies
                last.append(max(latencies))
                from_start += [ms - push.started * 1000 for ms in applied.values()]
                walls.append(push.wall_seconds * 1000)
                log(f"{kind} v{push.number}: last of {count} after {max(latencies):.0f} ms")
            cpu = [(cpu_seconds(pid) - before) * 1000 / pushes
                   for pid, before in zip(pids, cpu_before, strict=True)]
            measured[kind] = (samples, last, from_start, walls, cpu)
        served = _fetch(f"http://127.0.0.1:{port}/version")
        expected = f"{list(PUSH_ARGS)[-1]} push {pushes - 1}\n"
        if served != expected:
            raise RuntimeError(f"node001's nginx serves {served!r}, expected {expected!r}")
        time.sleep(3)
        lab.check_agents_alive()
        rss = [vm_rss_mib(agent.process.pid) for agent in lab.agents]
        assert lab.zk is not None and lab.zk.process is not None
        zk_rss = vm_rss_mib(lab.zk.process.pid)
        return measured, rss, zk_rss, loads
    except Exception:
        for agent in lab.agents[:3]:
            log(f"--- {agent.node} agent log tail ---\n{agent.tail()}")
        raise
    finally:
        lab.close()


def _nginx_t_cpu_ms(runs: int = 20) -> float:
    """CPU time of one `nginx -t` on the example files (user + system of the child)."""
    with tempfile.TemporaryDirectory(prefix="stackha-bench-nginx-t-") as tmp:
        root = Path(tmp)
        shutil.copytree(Path(__file__).resolve().parent.parent / "configs" / "nginx", root,
                        dirs_exist_ok=True)
        (root / "logs").mkdir(exist_ok=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for _ in range(runs):
            subprocess.run(["nginx", "-t", "-q", "-e", "stderr", "-p", f"{root}/",
                            "-c", str(root / "nginx.conf")], check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1000 / runs


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return answer.read().decode()
    except OSError:
        return None
