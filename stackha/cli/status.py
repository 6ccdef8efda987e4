"""``stackha status``: every node's applied version, VRRP state, health and report age
(ClusterView)."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from stackha.cli.lab import add_lab_arguments
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit, write
from stackha.model.cluster import TIME_FORMAT, ClusterView
from stackha.model.spec import StackSpec
from stackha.store.base import StoreError
from stackha.store.connect import open_store

CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


def _frame(spec: StackSpec, store: Any, as_json: bool) -> str:
    try:
        current, statuses = store.current_number(), store.statuses()
    except StoreError as exc:  # shown, and the next refresh tries again
        return json.dumps({"error": str(exc)}) + "\n" if as_json else f"stackha: {exc}\n"
    view = ClusterView.of(spec, current, statuses, datetime.now(UTC))
    # One line per document: a stream of JSON lines for scripts.
    return json.dumps(view.document()) + "\n" if as_json else view.table()


def watch(spec: StackSpec, args: argparse.Namespace) -> int:
    """Refresh every ``--interval`` seconds: in place on a terminal, else block after block
    (each headed by its time) for a log; ``--count`` ends it, Ctrl-C too."""
    if args.interval <= 0:
        raise CommandError("--interval: give a number of seconds above 0", 2)
    tty = sys.stdout.isatty()
    store = open_store(spec, args.zk, "coordinator")
    try:
        for n in itertools.count(1):
            frame = _frame(spec, store, args.json)
            stamp = datetime.now(UTC).strftime(TIME_FORMAT)
            if args.json:
                write(frame)
            elif tty:
                write(f"{CLEAR}stackha status, every {args.interval:g} s ({stamp}); Ctrl-C "
                      f"ends\n\n{frame}")
            else:
                write(f"--- {stamp}\n{frame}")
            sys.stdout.flush()
            if args.count and n >= args.count:
                break
            time.sleep(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return EXIT_OK


def _refuse_if_lab_down(args: argparse.Namespace, hosts: str) -> None:
    """Lab addresses without the lab's bridge would go out by the default route."""
    from stackha.lab.compose.bridge import lab_down_reason, zookeeper_addresses
    from stackha.lab.compose.paths import lab_compose_file

    reason = lab_down_reason(zookeeper_addresses(args.zk or hosts),
                             lab_compose_file(args.compose_dir.resolve()))
    if reason is not None:
        raise CommandError(reason)


def cmd_status(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    if args.watch:
        _refuse_if_lab_down(args, spec.zookeeper.hosts)
        return watch(spec, args)
    containers: list[dict[str, str]] | None = None
    if args.containers:  # the compose lab's containers, shown even when ZooKeeper is down
        from stackha.cli.lab import containers_view

        table, containers = containers_view(args)
        if not args.json:
            write(table + "\n")
    _refuse_if_lab_down(args, spec.zookeeper.hosts)
    store = open_store(spec, args.zk, "coordinator")
    try:
        current, statuses = store.current_number(), store.statuses()
        # Taken once the reports are in: each report's age is judged at reading it.
        view = ClusterView.of(spec, current, statuses, datetime.now(UTC))
    finally:
        store.close()
    if args.json:
        document = view.document()
        if containers is not None:
            document["containers"] = containers
        emit(json.dumps(document, indent=1))
    else:
        write(view.table())
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="every node's applied version, VRRP state and health")
    add_common(p)
    p.add_argument("--json", action="store_true",
                   help="the status document (README: its schema); with --watch one per line")
    p.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    p.add_argument("--interval", type=float, default=2.0,
                   help="seconds between refreshes with --watch (default 2)")
    p.add_argument("--count", type=int, default=0,
                   help="with --watch: stop after this many refreshes (0: never)")
    p.add_argument("--containers", action="store_true",
                   help="also the lab's containers (Docker), before the agents' table")
    add_lab_arguments(p)
    p.set_defaults(func=cmd_status)
