"""``stackha render keepalived``: print (or write) what the agent would write."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from stackha.agent.vrrp import VrrpSettings, keepalived_conf
from stackha.cli.agent import add_vrrp_options, vrrp_settings
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit, write
from stackha.keepalived.render import UnsafeValue
from stackha.model.names import safe_file_name
from stackha.model.spec import StackSpec


def cmd_render_keepalived(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    vrrp = vrrp_settings(args, args.out or Path("."))
    if args.all:
        if args.out is None:
            raise CommandError("--all needs --out DIR")
        # Every name and every file is checked before the first write: a refused node must
        # not leave half of the files written, and no name may lead out of --out.
        out = args.out.resolve()
        rendered = {}
        for node in spec.nodes:
            if spec.groups_of(node.name):
                reason = safe_file_name(node.name)
                path = out / f"{node.name}.conf"
                if reason is not None or path.parent != out:
                    raise CommandError(f"node {node.name!r}: {reason or 'leaves --out'}: "
                                       "nothing written")
                rendered[path] = _render(spec, node.name, vrrp)
        out.mkdir(parents=True, exist_ok=True)
        for path, text in rendered.items():
            _write_no_follow(path, text)
            emit(f"wrote {path}")
        return EXIT_OK
    if not args.node:
        raise CommandError("give --node NAME or --all --out DIR")
    if spec.node(args.node) is None:
        raise CommandError(f"node {args.node} is not in the spec")
    write(_render(spec, args.node, vrrp))
    return EXIT_OK


def _write_no_follow(path: Path, text: str) -> None:
    """Write ``path`` itself: a symlink planted in --out must not redirect the write."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise CommandError(f"{path}: {exc.strerror} (a symlink is not followed)") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _render(spec: StackSpec, node: str, vrrp: VrrpSettings) -> str:
    try:
        return keepalived_conf(spec, node, vrrp)
    except UnsafeValue as exc:
        raise CommandError(str(exc)) from None


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
