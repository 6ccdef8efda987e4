"""`stackha drill`: run the scenarios against the compose lab and print what each cost."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import asdict
from typing import Any

from stackha.lab.compose.backend import LabError
from stackha.lab.compose.bridge import lab_down_reason, zookeeper_addresses
from stackha.lab.compose.engine import docker_client
from stackha.lab.compose.labtls import lab_tls_env
from stackha.lab.compose.paths import PRIVATE_DIR, lab_compose_file
from stackha.lab.compose.secrets import load_lab_credentials
from stackha.lab.drill.lab import DrillLab, LabProblem
from stackha.lab.drill.priority import raise_client_priority
from stackha.lab.drill.report import render_json, render_table
from stackha.lab.drill.runner import DrillRunner
from stackha.lab.drill.scenarios import SCENARIOS, DrillOptions, by_name
from stackha.lab.drill.statuswatch import StatusReader

log = logging.getLogger(__name__)


def cmd_drill(args: argparse.Namespace, read_spec: Any, emit: Any, error: type[Exception]
              ) -> int:
    if args.list:
        for scenario in SCENARIOS:
            emit(f"{scenario.name:<26} {scenario.title}")
        return 0
    try:
        scenarios = by_name(args.scenario)
    except KeyError as exc:
        raise error(f"unknown scenario {exc.args[0]} (known: "
                    f"{', '.join(s.name for s in SCENARIOS)})") from exc
    # First, before any thread starts: every thread of the drill inherits it.
    client_priority = raise_client_priority()
    os.environ.update(load_lab_credentials(args.compose_dir.resolve() / PRIVATE_DIR))
    os.environ.update(lab_tls_env(args.compose_dir.resolve() / PRIVATE_DIR))
    spec = read_spec(args.configs)
    targets = zookeeper_addresses(args.zk or spec.zookeeper.hosts) + \
        [n.address for n in spec.nodes] + [v.ip for g in spec.vrrp_groups for v in g.vips]
    down = lab_down_reason(targets, lab_compose_file(args.compose_dir.resolve()))
    if down is not None:
        raise error(down)
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
                           zk_override=args.zk, load=getattr(args, "load", 0),
                           client_priority=client_priority)
    reader = StatusReader(spec, args.zk)
    runner = DrillRunner(lab, reader.document, options)
    results = []
    if options.load:
        sys.stderr.write(f"stackha drill: loaded run: {options.load} busy-loop process(es) "
                         f"through each scenario ({os.cpu_count()} CPUs), clients at "
                         f"{client_priority}\n")
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
