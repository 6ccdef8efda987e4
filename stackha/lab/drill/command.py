"""`stackha drill`: run the scenarios against the compose lab and print what each cost."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from stackha.lab.compose.backend import LabError
from stackha.lab.compose.commands import DEFAULT_COMPOSE_DIR, PRIVATE_DIR
from stackha.lab.compose.engine import docker_client
from stackha.lab.compose.secrets import load_lab_credentials
from stackha.lab.drill.lab import DrillLab, LabProblem
from stackha.lab.drill.report import render_json, render_table
from stackha.lab.drill.runner import DrillRunner
from stackha.lab.drill.scenarios import SCENARIOS, DrillOptions, by_name
from stackha.lab.drill.statuswatch import StatusReader

log = logging.getLogger(__name__)


def add_parser(sub: Any, common: Any, run: Any) -> None:
    names = ", ".join(s.name for s in SCENARIOS)
    p = sub.add_parser("drill", help="run faults against the running lab while clients use "
                                     "both VIPs, and print what each cost",
                       description=f"Scenarios: {names}.")
    common(p)
    p.add_argument("--scenario", action="append", metavar="NAME",
                   help="run this scenario (repeatable; default: all, in the listed order)")
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--json", action="store_true", help="the results as JSON on stdout")
    p.add_argument("--png-dir", type=Path, help="write drill-<scenario>.png timelines here")
    p.add_argument("--zk-outage", type=float, default=60.0, metavar="SECONDS",
                   help="how long zk-outage keeps ZooKeeper stopped (default 60)")
    p.add_argument("--probe-timeout", type=float, default=1.0, metavar="SECONDS",
                   help="a probe slower than this counts as failed (default 1)")
    p.add_argument("--max-hold", type=float, default=30.0, metavar="SECONDS",
                   help="longest a fault is held waiting for the data plane (default 30)")
    p.add_argument("--green-timeout", type=float, default=180.0, metavar="SECONDS",
                   help="how long to wait for status to be green after a heal (default 180)")
    p.add_argument("--compose-dir", type=Path, default=DEFAULT_COMPOSE_DIR,
                   help="the compose project's directory (default: compose/ of stackha)")
    p.add_argument("--project", default="stackha", help="compose project name")
    p.set_defaults(func=run)


def cmd_drill(args: argparse.Namespace, read_spec: Any, emit: Any, error: type[Exception]
              ) -> int:
    if args.list:
        for scenario in SCENARIOS:
            emit(f"{scenario.name:<22} {scenario.title}")
        return 0
    try:
        scenarios = by_name(args.scenario)
    except KeyError as exc:
        raise error(f"unknown scenario {exc.args[0]} (known: "
                    f"{', '.join(s.name for s in SCENARIOS)})") from exc
    os.environ.update(load_lab_credentials(args.compose_dir.resolve() / PRIVATE_DIR))
    spec = read_spec(args.configs)
    # A ZooKeeper outage is part of the drill: kazoo's reconnect warnings are expected.
    logging.getLogger("kazoo").setLevel(logging.ERROR)
    try:
        client = docker_client()
        lab = DrillLab(spec, client, args.project, args.configs.resolve())
    except (LabError, LabProblem) as exc:
        raise error(str(exc)) from exc
    if args.png_dir is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError as exc:
            raise error("--png-dir needs matplotlib: pip install 'stackha[drill]'") from exc
    options = DrillOptions(zk_outage=args.zk_outage, probe_timeout=args.probe_timeout,
                           max_hold=args.max_hold, green_timeout=args.green_timeout,
                           zk_override=args.zk)
    reader = StatusReader(spec, args.zk)
    runner = DrillRunner(lab, reader.document, options)
    results = []
    try:
        for scenario in scenarios:
            sys.stderr.write(f"stackha drill: {scenario.name}: {scenario.title} ...\n")
            results.append(runner.run(scenario))
    except KeyboardInterrupt:  # the running scenario healed on its way out: report the rest
        runner.stop.set()
        sys.stderr.write("stackha drill: interrupted; the scenarios that finished:\n")
    finally:
        reader.close()
    pngs = []
    if args.png_dir is not None:
        from stackha.lab.drill.timeline import render_all

        pngs = render_all(results, args.png_dir)
    if args.json:
        sys.stdout.write(render_json(results, asdict(options)))
    else:
        sys.stdout.write(render_table(results))
        for path in pngs:
            emit(f"timeline: {path}")
    bad = [r for r in results if r.ran and (r.green_after_heal is None or r.served_rejected)]
    return 1 if bad else 0
