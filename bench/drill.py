"""Issue 16: the drill on a busy host, as a bench section: `stackha drill --load` against the
compose lab (every scenario, or four short ones with --quick), one row per scenario and the
loaded run's targets.

The lab is used as it is when it is up; otherwise `stackha up` starts it (its MyCat nodes
run the release in $STACKHA_MYCAT_TARBALL, as `make up` passes it) and it is taken down
again afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.lab import ROOT, log
from bench.report import BenchOptions, Table

QUICK = ("nginx-stopped", "zk-outage", "bad-config", "bad-config-health")
DRILL_TIMEOUT = 3600


def _stackha(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stackha", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout, env=dict(os.environ))


def _lab_up() -> bool:
    done = _stackha("status", "--json", timeout=60)
    if done.returncode != 0:
        return False
    doc = json.loads(done.stdout)
    return doc.get("current_version") is not None and all(
        n.get("reporting") for n in doc.get("nodes", []))


@contextmanager
def compose_lab(section: str) -> Iterator[None]:
    """The lab as it is when it is up; otherwise `stackha up` for the section, and down
    again (volumes too) after it."""
    started_here = not _lab_up()
    if started_here:
        log(f"{section}: the lab is not up; stackha up")
        done = _stackha("up", timeout=1800)
        if done.returncode != 0:
            raise RuntimeError(f"stackha up failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    try:
        yield
    finally:
        if started_here:
            _stackha("down", "--volumes", timeout=600)


def _figures(probe: dict[str, Any] | None) -> tuple[str, str]:
    if not probe:
        return "-", "-"
    longest = probe.get("longest_outage_s") or 0.0
    return (f"{longest:.2f} s" if longest else "none", f"{probe['failed']}/{probe['sent']}")


def rows_of(doc: dict[str, Any]) -> list[tuple[object, ...]]:
    """Pure: the drill's JSON document as table rows."""
    rows: list[tuple[object, ...]] = []
    for scenario in doc.get("scenarios", []):
        if not scenario.get("ran"):
            rows.append((scenario["name"], "not run", "-", "-", "-",
                         scenario.get("not_run") or "-", "-"))
            continue
        web = _figures(scenario["probes"].get("web"))
        sql = _figures(scenario["probes"].get("sql"))
        green = scenario.get("green_after_heal_s")
        served = scenario.get("served_rejected_config")
        rows.append((scenario["name"], *web, *sql,
                     f"{green:.1f} s" if green is not None else "NOT GREEN",
                     "-" if served is None else ("YES" if served else "no")))
    return rows


def run(options: BenchOptions) -> list[Table]:
    with compose_lab("drill"):
        args = ["drill", "--load", "--json"]
        for name in QUICK if options.quick else ():
            args += ["--scenario", name]
        log(f"drill: stackha {' '.join(args)}")
        done = _stackha(*args, timeout=DRILL_TIMEOUT)
        if not done.stdout.strip():
            raise RuntimeError(f"stackha drill printed nothing: {done.stderr[-2000:]}")
        doc = json.loads(done.stdout)
    load = doc.get("options", {}).get("load")
    clients = doc.get("options", {}).get("client_priority") or "normal priority"
    lags = [p.get("client_lag_max_s") or 0.0 for s in doc.get("scenarios", []) if s.get("ran")
            for p in s.get("probes", {}).values()]
    notes = [f"`stackha drill --load --json`: {load} busy loops at nice 0 (one per CPU) "
             "through every scenario, on top of the lab itself.",
             f"The drill's clients (the probes of both VIPs) ran at {clients}, as the failover "
             "bench's probe: on a real site they are other machines, and at normal priority "
             "a starved prober's late attempts queued for its pooled MySQL connections and "
             "failed as 'pool: no connection free' (stackha/lab/drill/priority.py). Its "
             f"attempts started at most {max(lags, default=0.0):.2f} s late in this run."]
    notes += [f"target {'met' if t['met'] else 'MISSED'}: {t['target']} ({t['detail']})"
              for t in doc.get("run_targets", [])]
    return [Table("Drill on a busy host (every CPU kept busy)",
                  ("scenario", "web outage", "web failed/sent", "sql outage",
                   "sql failed/sent", "green after heal", "rejected config served"),
                  tuple(rows_of(doc)), tuple(notes))]
