"""``stackha up | down | logs``: the compose lab. Its code (docker, the stand-in) is the
optional extra ``stackha[lab]`` and is imported only inside these handlers."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stackha.cli.options import add_common, read_spec
from stackha.cli.output import CommandError, emit

# The repository's compose/ (a source checkout; the lab is run from one).
DEFAULT_COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
DEFAULT_PROJECT = "stackha"


def _lab(handler: Callable[[Any, argparse.Namespace], int]
         ) -> Callable[[argparse.Namespace], int]:
    """Import the lab when the command runs; its LabError becomes the CLI's CommandError."""

    def run(args: argparse.Namespace) -> int:
        try:
            from stackha.lab.compose import commands
            from stackha.lab.compose.backend import LabError
        except ImportError as exc:
            raise CommandError(f"the lab needs the optional extra: pip install 'stackha[lab]' "
                               f"({exc})") from exc
        try:
            return handler(commands, args)
        except LabError as exc:
            raise CommandError(str(exc)) from exc

    run.__name__ = handler.__name__
    return run


@_lab
def cmd_up(commands: Any, args: argparse.Namespace) -> int:
    return int(commands.cmd_up(args, read_spec(args.configs), emit))


@_lab
def cmd_down(commands: Any, args: argparse.Namespace) -> int:
    return int(commands.cmd_down(args, emit))


@_lab
def cmd_logs(commands: Any, args: argparse.Namespace) -> int:
    return int(commands.cmd_logs(args))


@_lab
def _containers(commands: Any, args: argparse.Namespace) -> Any:
    return commands.containers_view(args)


def containers_view(args: argparse.Namespace) -> tuple[str, list[dict[str, str]]]:
    """For `stackha status --containers`: the lab's containers as a table and as rows."""
    return _containers(args)  # type: ignore[return-value]


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compose-dir", type=Path, default=DEFAULT_COMPOSE_DIR,
                        help="the compose project's directory (default: compose/ of stackha)")
    parser.add_argument("--project", default=DEFAULT_PROJECT,
                        help="compose project name (default stackha)")


def register(sub: Any) -> None:
    p = sub.add_parser("up", help="the whole stack in docker compose on this machine")
    add_common(p, zk=False)
    add_lab_arguments(p)
    p.add_argument("--build", action="store_true", help="rebuild every image first")
    p.add_argument("--mycat-tarball", type=Path,
                   default=Path(v) if (v := os.environ.get("STACKHA_MYCAT_TARBALL")) else None,
                   help="a MyCat 1.6 release tarball (Mycat-server-*.tar.gz): the MyCat nodes "
                        "run it instead of mycat-standin (default $STACKHA_MYCAT_TARBALL, "
                        "else one already in compose/mycat/)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for every agent to be ready (default 600)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop the compose stack and remove its containers")
    add_lab_arguments(p)
    p.add_argument("--volumes", action="store_true", help="remove its volumes too")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("logs", help="the compose stack's logs, or one service's")
    add_lab_arguments(p)
    p.add_argument("service", nargs="?", help="a service or node name (default: all)")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, help="lines from the end of each log")
    p.set_defaults(func=cmd_logs)
