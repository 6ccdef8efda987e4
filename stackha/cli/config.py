"""``stackha validate``, ``push-config`` and ``config history|show|diff|rollback|repair``."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stackha.cli.options import add_all_at_once, add_common, add_signing, read_spec, signing_key
from stackha.cli.output import EXIT_INVALID, EXIT_OK, CommandError, emit, report, write
from stackha.coordinator.configset import load_configs
from stackha.coordinator.publish import (
    ConfigRejected,
    Coordinator,
    Signer,
    bundle_diff,
    mask_secrets,
    mycat_layout,
    publish_configs,
)
from stackha.model.problems import errors, warnings
from stackha.store.connect import open_store
from stackha.trust.signing import KeyFileError, load_trusted


def published_line(number: int | None, tail: str, canaries: Mapping[str, str]) -> str:
    staged = ", ".join(f"{node} ({role})" for role, node in sorted(canaries.items()))
    return (f"published version {number} {tail}"
            + (f"; canary first: {staged}" if staged else ""))


def _coordinator(args: argparse.Namespace, staged: bool = True,
                 signer: Signer | None = None) -> Coordinator:
    return Coordinator(open_store(read_spec(args.configs), args.zk, "coordinator"), staged,
                       signer)


def cmd_validate(args: argparse.Namespace) -> int:
    configset, problems = load_configs(args.configs)
    report(problems)
    if configset is None:
        raise CommandError(f"{args.configs}: {len(errors(problems))} error(s), nothing published",
                           EXIT_INVALID)
    _, layout_problems = mycat_layout(configset, args.configs)
    report(layout_problems)
    emit(f"{args.configs}: valid ({len(configset.bundle.files)} files, "
         f"{len(warnings(problems + layout_problems))} warning(s))")
    return EXIT_OK


def _damage(lines: tuple[str, ...], action: str) -> None:
    for line in lines:
        emit(f"damaged: {line}; {action}")


def cmd_push(args: argparse.Namespace) -> int:
    # A dry run publishes nothing and so needs no key.
    key = None if args.dry_run else signing_key(args)
    try:
        result = publish_configs(args.configs, args.zk, args.message or "",
                                 dry_run=args.dry_run, staged=not args.all_at_once,
                                 on_problems=report, signing_key=key)
    except ConfigRejected as exc:
        report(exc.problems)
        raise CommandError(str(exc), EXIT_INVALID) from exc
    _damage(result.damage, "publishing a good version over it")
    if result.diff:
        write(result.diff)
    if result.outcome == "unchanged":
        emit(f"unchanged: version {result.number} already holds this configuration")
    elif result.outcome == "dry-run":
        emit(f"dry run: would publish a new version after {result.previous or 'none'}")
    else:
        emit(published_line(result.number, f"(previous {result.previous or 'none'})",
                            result.canaries))
    if result.restart_needed:
        emit(f"note: MyCat reads server.xml <system> ({', '.join(result.restart_needed)}) only "
             "when it starts: restart the MyCat nodes, one at a time, for it to take effect")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args)
    try:
        current = coordinator.store.current_number()
        entries = coordinator.history()
    finally:
        coordinator.store.close()
    for entry in entries:
        if isinstance(entry, list):
            emit(f"  unreadable: {'; '.join(str(p) for p in entry)}")
            continue
        mark = "*" if entry.number == current else " "
        emit(f"{mark} {entry.number:>5}  {entry.created}  {entry.author}  "
             f"{entry.digest[:12]}  {entry.message}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args)
    try:
        number = args.version or coordinator.store.current_number()
        if not number:
            raise CommandError("no version has been published yet")
        version = coordinator.version(number)
    finally:
        coordinator.store.close()
    if args.file:
        if args.file not in version.bundle.files:
            raise CommandError(f"version {number} has no file '{args.file}'")
        text = version.bundle.files[args.file].content.decode("utf-8", errors="replace")
        write(text if args.show_secrets else mask_secrets(text))
        return EXIT_OK
    emit(f"version {version.number}  created {version.created}  by {version.author}")
    emit(f"message: {version.message}")
    emit(f"digest:  {version.digest}")
    for path, file in sorted(version.bundle.files.items()):
        emit(f"  {file.sha256[:16]}  {file.mode:04o}  {len(file.content):>7}  {path}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args)
    try:
        old, new = coordinator.version(args.a), coordinator.version(args.b)
    finally:
        coordinator.store.close()
    write(bundle_diff(old.bundle, new.bundle, f"v{args.a}", f"v{args.b}", args.show_secrets))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    key = signing_key(args)
    signer = None
    if key is not None:
        try:
            also = load_trusted(args.trusted_key or [])
        except KeyFileError as exc:
            raise CommandError(str(exc), EXIT_INVALID) from exc
        signer = Signer(key, read_spec(args.configs).cluster, also)
    coordinator = _coordinator(args, staged=not args.all_at_once, signer=signer)
    try:
        coordinator.store.ensure_layout()  # type: ignore[attr-defined]
        result = coordinator.rollback(args.version)
    except ConfigRejected as exc:
        report(exc.problems)
        raise CommandError(str(exc), EXIT_INVALID) from exc
    finally:
        coordinator.store.close()
    _damage(result.damage, "publishing a good version over it")
    if result.outcome == "unchanged":
        emit(f"unchanged: current version {result.number} already equals version "
             f"{args.version}")
    else:
        emit(published_line(result.number, f"equal to version {args.version}",
                            result.canaries))
    return EXIT_OK


def cmd_repair(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args, staged=False)
    try:
        result = coordinator.repair(dry_run=args.dry_run)
    finally:
        coordinator.store.close()
    for line in result.damage:
        emit(f"damaged: {line}")
    if result.changed:
        emit(f"repaired: current now points to "
             f"{f'version {result.after}' if result.after else 'no version'}")
    elif not result.damage:
        emit(f"no damage found (current version {result.before or 'none'})")
    elif args.dry_run or result.before is not None:
        emit(f"current left at {result.before or 'none'}"
             + (" (dry run)" if args.dry_run else ""))
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("validate", help="validate configs/ without publishing")
    add_common(p, zk=False)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("push-config", help="validate configs/ and publish a new version")
    add_common(p)
    p.add_argument("--dry-run", action="store_true", help="show the diff, publish nothing")
    p.add_argument("-m", "--message", default="", help="what this change is for")
    add_all_at_once(p)
    add_signing(p)
    p.set_defaults(func=cmd_push)

    config = sub.add_parser("config", help="published versions").add_subparsers(
        dest="config_command", required=True)
    p = config.add_parser("history", help="every version, oldest first; * marks current")
    add_common(p)
    p.set_defaults(func=cmd_history)
    p = config.add_parser("show", help="a version's files, or one file")
    add_common(p)
    p.add_argument("version", type=int, nargs="?")
    p.add_argument("file", nargs="?")
    p.add_argument("--show-secrets", action="store_true", help="do not mask passwords")
    p.set_defaults(func=cmd_show)
    p = config.add_parser("diff", help="unified diff between two versions")
    add_common(p)
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)
    p.add_argument("--show-secrets", action="store_true")
    p.set_defaults(func=cmd_diff)
    p = config.add_parser("rollback", help="publish a new version equal to an old one")
    add_common(p)
    p.add_argument("version", type=int)
    add_all_at_once(p)
    add_signing(p)
    p.add_argument("--trusted-key", type=Path, action="append", metavar="PATH",
                   help="a public key (or directory of *.pub) whose versions may be rolled "
                        "back to besides the signing key's own (after a rotation)")
    p.set_defaults(func=cmd_rollback)
    p = config.add_parser("repair", help="report damage in the store; point a bad current at "
                                         "the newest readable version")
    add_common(p)
    p.add_argument("--dry-run", action="store_true", help="report only, change nothing")
    p.set_defaults(func=cmd_repair)
