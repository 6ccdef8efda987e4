"""Run the benchmark sections and print one report; also saved as bench/results.{md,json}.

Each section is a module with ``run(options) -> list[Table]``; a section that fails is
reported as failed and the others still run.
"""

from __future__ import annotations

import argparse
import compileall
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from bench.report import BenchOptions, Table, markdown

SECTIONS = {
    "propagation": "bench.propagation",   # issue 3: push -> applied on 1/10/100 agents, RSS
    "reload": "bench.reload_load",        # issue 8: 20 pushes under steady HTTP load
    "failover": "bench.failover",         # issue 4: outage, stackha vs classic timers, flaps
    "idle": "bench.idle",                 # issue 16: idle CPU and RSS per role
    "lab-idle": "bench.lab_idle",         # issue 16: the same in the compose lab, as deployed
    "drill": "bench.drill",               # issue 16: the drill with every CPU kept busy
}
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="comma-separated sections: " + ", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="fewer runs: a smoke test")
    parser.add_argument("--load-seconds", type=float, default=None,
                        help="length of the CPU-saturated flap test (default 600, quick 60)")
    parser.add_argument("--out", type=Path, default=HERE / "results",
                        help="path stem for the .md and .json report")
    args = parser.parse_args(argv)
    load = args.load_seconds if args.load_seconds is not None else (60.0 if args.quick else 600.0)
    options = BenchOptions(quick=args.quick, load_seconds=load)
    # The agents run from bytecode, as an installed stackha does (pip compiles at install).
    # Run from this source tree under PYTHONDONTWRITEBYTECODE, each agent would compile its
    # modules at every start instead: 2 MiB more resident and a slower start (measured).
    compileall.compile_dir(str(HERE.parent / "stackha"), quiet=1)
    tables: list[Table] = []
    failed: list[str] = []
    for name in [s.strip() for s in args.only.split(",") if s.strip()]:
        if name not in SECTIONS:
            parser.error(f"unknown section {name!r}")
        started = time.monotonic()
        print(f"== {name} ...", file=sys.stderr, flush=True)
        try:
            produced = importlib.import_module(SECTIONS[name]).run(options)
        except Exception:  # one broken section must not hide the others' figures
            traceback.print_exc()
            failed.append(name)
            continue
        for table in produced:
            print(markdown(table), flush=True)
        tables.extend(produced)
        print(f"== {name} done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    command = "make bench" + (" (quick)" if args.quick else "")
    header = (f"Measured with `{command}` on {time.strftime('%Y-%m-%d')}, "
              f"{platform.node()}, {platform.processor() or platform.machine()}.\n\n")
    args.out.with_suffix(".md").write_text(header + "\n".join(markdown(t) for t in tables))
    args.out.with_suffix(".json").write_text(json.dumps(
        {"command": command, "tables": [t.as_dict() for t in tables], "failed": failed},
        indent=2, default=str) + "\n")
    if failed:
        print("failed sections: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
