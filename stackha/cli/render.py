"""``stackha render keepalived``: print (or write) what the agent would write."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stackha.agent.vrrp import keepalived_conf
from stackha.cli.agent import add_vrrp_options, vrrp_settings
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit, write
from stackha.model.names import safe_file_name


def cmd_render_keepalived(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    vrrp = vrrp_settings(args, args.out or Path("."))
    if args.all:
        if args.out is None:
            raise CommandError("--all needs --out DIR")
        args.out.mkdir(parents=True, exist_ok=True)
        for node in spec.nodes:
            if spec.groups_of(node.name):
                reason = safe_file_name(node.name)
                if reason is not None:
                    raise CommandError(f"node {node.name!r}: {reason}: not written")
                path = args.out / f"{node.name}.conf"
                path.write_text(keepalived_conf(spec, node.name, vrrp))
                emit(f"wrote {path}")
        return EXIT_OK
    if not args.node:
        raise CommandError("give --node NAME or --all --out DIR")
    if spec.node(args.node) is None:
        raise CommandError(f"node {args.node} is not in the spec")
    write(keepalived_conf(spec, args.node, vrrp))
    return EXIT_OK


def register(sub: Any) -> None:
    render = sub.add_parser("render", help="print what the agent would write").add_subparsers(
        dest="render_command", required=True)
    p = render.add_parser("keepalived", help="a node's keepalived.conf, as its agent writes it")
    add_common(p, zk=False)
    p.add_argument("--node")
    p.add_argument("--all", action="store_true", help="every node with a VRRP group")
    p.add_argument("--out", type=Path, help="directory for --all (one NODE.conf each)")
    add_vrrp_options(p)
    p.set_defaults(func=cmd_render_keepalived)
