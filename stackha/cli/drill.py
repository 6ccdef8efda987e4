"""``stackha drill``: faults against the running lab while clients use both VIPs. The drill
lives in the optional extra ``stackha[lab]`` and is imported only when the command runs."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from stackha.cli.lab import add_lab_arguments
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import CommandError, emit


def cmd_drill(args: argparse.Namespace) -> int:
    try:
        from stackha.lab.drill.command import cmd_drill as run_drill
    except ImportError as exc:
        raise CommandError(f"the drill needs the optional extra: pip install 'stackha[lab]' "
                           f"({exc})") from exc
    return int(run_drill(args, read_spec, emit, CommandError))


def register(sub: Any) -> None:
    p = sub.add_parser("drill", help="run faults against the running lab while clients use "
                                     "both VIPs, and print what each cost",
                       description="`stackha drill --list` names the scenarios.")
    add_common(p)
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
    p.add_argument("--load", type=_processes, nargs="?", const=os.cpu_count() or 1, default=0,
                   metavar="N",
                   help="a loaded drill: keep N busy-loop processes (nice 0) running on this "
                        "host through each scenario (N omitted: one per CPU); the table says "
                        "so and checks the loaded run's targets")
    add_lab_arguments(p)
    p.set_defaults(func=cmd_drill)


def _processes(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: a number of processes") from None
    if not 0 <= value <= 256:
        raise argparse.ArgumentTypeError(f"{value}: between 0 and 256 processes")
    return value
