"""The ``stackha`` command line: one parser, one module per command group (each has a
``register(sub)``), one error type and one way to print (``stackha.cli.output``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from stackha import __version__
from stackha.cli.output import EXIT_FAIL, CommandError, report, say_error
from stackha.logs import setup_logging
from stackha.store.base import StoreError, VersionUnreadable

# The command groups (stackha.cli.NAME), in the order `stackha --help` lists them.
GROUPS = ("config", "keys", "trust", "agent", "render", "mycat", "status", "control", "lab",
          "drill", "lvs")
# Which group registers each top-level command, so that a command imports its own group only:
# the long-running `stackha agent` then holds none of the coordinator's, the lab's or the
# drill's code (0.5 MiB of its 30 MiB budget, VmRSS measured 2026-12-02). Help, a typo or no
# command registers every group. tests/unit/test_cli_commands.py keeps this table true.
COMMANDS = {
    "validate": "config", "push-config": "config", "config": "config",
    "keygen": "keys", "init": "trust", "credentials": "trust", "agent": "agent",
    "render": "render", "mycat": "mycat", "status": "status", "switchover": "control",
    "maintenance": "control", "up": "lab", "down": "lab", "logs": "lab", "drill": "drill",
    "realserver": "lvs", "lvs": "lvs",
}


def groups_for(argv: Sequence[str]) -> tuple[str, ...]:
    """The groups to register for ``argv``: the command's own, or all of them. The top-level
    options take no value, so the first word that is not an option is the command."""
    command = next((word for word in argv if not word.startswith("-")), None)
    group = COMMANDS.get(command or "")
    return (group,) if group is not None else GROUPS


def build_parser(groups: Sequence[str] = GROUPS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackha", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stackha {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in groups:
        importlib.import_module(f"stackha.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    args = build_parser(groups_for(words)).parse_args(words)
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
