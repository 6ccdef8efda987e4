"""``stackha status``: every node's applied version, VRRP state, health and report age
(ClusterView)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from stackha.cli.lab import add_lab_arguments
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit, write
from stackha.model.cluster import ClusterView
from stackha.store.connect import open_store


def _refuse_if_lab_down(args: argparse.Namespace, hosts: str) -> None:
    """Lab addresses without the lab's bridge would go out by the default route."""
    from stackha.lab.compose.bridge import lab_down_reason, zookeeper_addresses

    reason = lab_down_reason(zookeeper_addresses(args.zk or hosts),
                             args.compose_dir.resolve() / "compose.yaml")
    if reason is not None:
        raise CommandError(reason)


def cmd_status(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
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
    p.add_argument("--json", action="store_true")
    p.add_argument("--containers", action="store_true",
                   help="also the lab's containers (Docker), before the agents' table")
    add_lab_arguments(p)
    p.set_defaults(func=cmd_status)
