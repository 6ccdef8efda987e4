"""``stackha init`` (create or take over the tree with its ACLs) and ``stackha credentials
issue NODE`` (a node's own ZooKeeper credential, its digest in the agent registry)."""

from __future__ import annotations

import argparse
from pathlib import Path

from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_OK, CommandError, emit
from stackha.store.connect import open_store, unregistered
from stackha.store.registry import REGISTRY_ENV, issue, read_registry, registry_path
from stackha.store.zookeeper import Identity


def _registry(args: argparse.Namespace) -> Path:
    path = registry_path(str(args.registry) if args.registry else None)
    if path is None:
        raise CommandError(f"no agent registry: give --registry FILE or set ${REGISTRY_ENV}")
    return path


def cmd_init(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    registry = _registry(args)
    store = open_store(spec, args.zk, "coordinator", registry=registry)
    try:
        if args.admin_credential_file is not None:
            # ZooKeeper's superuser passes every ACL check: it can take over a znode
            # whose squatter left the coordinator no right at all.
            store.add_auth(Identity.parse(_read(args.admin_credential_file),
                                          str(args.admin_credential_file)))
        changes = store.ensure_layout(take_over=True)
    finally:
        store.close()
    for line in changes:
        emit(f"changed: {line}")
    for node in unregistered(spec, read_registry(registry)):
        emit(f"warning: node {node} has no credential: its agent cannot report or read "
             f"(stackha credentials issue {node})")
    emit(f"{store.base}: owned by the coordinator ({len(changes)} change(s))")
    return EXIT_OK


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}") from exc


def cmd_issue(args: argparse.Namespace) -> int:
    registry = _registry(args)
    out = args.out or Path(f"{args.node}.credential")
    digest = issue(args.node, registry, out)
    emit(f"{out}: credential of node {args.node} (0600; give it to that node's agent only)")
    emit(f"{registry}: {args.node} {digest}")
    emit("then: stackha init (re-applies the ACLs), and restart the agent with the new file")
    return EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="create the ZooKeeper tree with its ACLs, or take it over")
    add_common(p)
    p.add_argument("--registry", type=Path, help=f"agent registry (default ${REGISTRY_ENV})")
    p.add_argument("--admin-credential-file", type=Path,
                   help="ZooKeeper superuser credential (user:password of its superDigest), "
                        "to take over znodes that shut the coordinator out")
    p.set_defaults(func=cmd_init)
    creds = sub.add_parser("credentials", help="per-node ZooKeeper credentials")
    creds_sub = creds.add_subparsers(dest="credentials_command", required=True)
    p = creds_sub.add_parser("issue", help="make NODE's credential (a new one rotates it)")
    p.add_argument("node")
    p.add_argument("--out", type=Path, help="credential file (default NODE.credential), 0600")
    p.add_argument("--registry", type=Path, help=f"agent registry (default ${REGISTRY_ENV})")
    p.set_defaults(func=cmd_issue)
