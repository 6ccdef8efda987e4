"""``stackha switchover`` and ``stackha maintenance``: planned moves without a spec push
(stackha.coordinator.control)."""

from __future__ import annotations

import argparse
from typing import Any

from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit
from stackha.coordinator.control import (
    NotConfirmed,
    SwitchoverRefused,
    clear_switchover,
    request_switchover,
    set_maintenance,
)
from stackha.model.control import Refused
from stackha.store.connect import open_store


def cmd_switchover(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    if args.clear and args.to:
        raise CommandError("--clear and --to: give one", 2)
    store = open_store(spec, args.zk, "coordinator")
    try:
        if args.clear:
            existed = clear_switchover(store, args.group)
            emit(f"group {args.group}: preferred holder cleared" if existed
                 else f"group {args.group}: had no preferred holder")
            return EXIT_OK
        try:
            result = request_switchover(store, spec, args.group, args.to, args.timeout)
        except (SwitchoverRefused, NotConfirmed) as exc:
            raise CommandError(f"switchover refused: {exc}" if isinstance(
                exc, SwitchoverRefused) else str(exc)) from exc
    finally:
        store.close()
    before = ", ".join(result.previous) or "nobody"
    emit(f"group {result.group}: MASTER on {result.to} (was {before}) after "
         f"{result.seconds:.2f} s; {result.to} stays the preferred holder until "
         f"`stackha switchover {result.group} --clear` or the next switchover")
    return EXIT_OK


def cmd_maintenance(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    on = args.state == "on"
    store = open_store(spec, args.zk, "coordinator")
    try:
        try:
            result = set_maintenance(store, spec, args.node, on, args.reason or "",
                                     args.drain_timeout, args.force)
        except Refused as exc:
            raise CommandError(f"maintenance refused: {exc}") from exc
    finally:
        store.close()
    if not result.confirmed:
        raise CommandError(f"{args.node}: maintenance {args.state} written, but its agent "
                           f"has not confirmed it ({result.state or 'no report'}); "
                           "`stackha status` shows where it is")
    if on:
        emit(f"{args.node}: in maintenance, {result.state} after {result.seconds:.2f} s")
    else:
        emit(f"{args.node}: out of maintenance after {result.seconds:.2f} s")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("switchover", help="move a VRRP group's VIPs to a healthy member")
    add_common(p)
    p.add_argument("group")
    p.add_argument("--to", metavar="NODE",
                   help="the member to move to (default: the best healthy non-master)")
    p.add_argument("--clear", action="store_true",
                   help="withdraw the group's preferred holder (moves nothing by itself)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the target to report MASTER (default 30)")
    p.set_defaults(func=cmd_switchover)
    p = sub.add_parser("maintenance", help="take a node out (VIPs, directors, MyCat) or back")
    add_common(p)
    p.add_argument("node")
    p.add_argument("state", choices=("on", "off"))
    p.add_argument("--reason", help="shown in stackha status")
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                   help="seconds the node waits for its connections to drain (default 30)")
    p.add_argument("--force", action="store_true",
                   help="also when no other member could take over a VIP it holds")
    p.set_defaults(func=cmd_maintenance)
