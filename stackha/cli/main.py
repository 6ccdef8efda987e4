"""The ``stackha`` command line: one parser, one module per command group (each has a
``register(sub)``), one error type and one way to print (``stackha.cli.output``)."""

from __future__ import annotations

import argparse
import sys

from stackha import __version__
from stackha.cli import (
    agent,
    config,
    control,
    drill,
    keys,
    lab,
    lvs,
    mycat,
    render,
    status,
    trust,
)
from stackha.cli.output import EXIT_FAIL, CommandError, report, say_error
from stackha.logs import setup_logging
from stackha.store.base import StoreError, VersionUnreadable

GROUPS = (config, keys, trust, agent, render, mycat, status, control, lab, drill, lvs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackha", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stackha {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except CommandError as exc:
        say_error(str(exc))
        return exc.code
    except VersionUnreadable as exc:
        report(exc.problems)
        return EXIT_FAIL
    except StoreError as exc:
        say_error(str(exc))
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
