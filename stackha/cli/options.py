"""Options and inputs many commands share: ``--configs``, ``--zk`` and the stack spec."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from stackha.cli.output import EXIT_INVALID, CommandError, report
from stackha.model.bundle import SPEC_FILE, invalid_utf8_offset
from stackha.model.problems import errors
from stackha.model.spec import StackSpec, parse_spec
from stackha.trust.signing import SIGNING_KEY_ENV, KeyFileError, SigningKey, load_private


def add_common(parser: argparse.ArgumentParser, zk: bool = True) -> None:
    parser.add_argument("--configs", type=Path, default=Path("configs"),
                        help="directory with stackha.yaml, nginx/ and mycat/ (default configs/)")
    if zk:
        parser.add_argument("--zk", metavar="HOSTS",
                            help="ZooKeeper hosts, overriding the spec (also $STACKHA_ZK)")


def add_all_at_once(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-at-once", action="store_true",
                        help="no canary: every node applies the version at once")


def read_spec(configs: Path) -> StackSpec:
    path = configs / SPEC_FILE
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}", EXIT_INVALID) from exc
    offset = invalid_utf8_offset(data)
    if offset is not None:
        raise CommandError(f"{path}: byte {offset}: not valid UTF-8", EXIT_INVALID)
    spec, problems = parse_spec(data.decode("utf-8"), str(path))
    report(errors(problems))
    if spec is None:
        raise CommandError(f"{path}: {len(errors(problems))} error(s)", EXIT_INVALID)
    return spec


def add_signing(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--signing-key", type=Path, metavar="PATH",
                        help=f"the coordinator's private key (`stackha keygen`; also "
                             f"${SIGNING_KEY_ENV}); it never goes to ZooKeeper")
    parser.add_argument("--unsigned", action="store_true",
                        help="publish without a signature (only agents started with "
                             "--allow-unsigned apply it)")


def signing_key(args: argparse.Namespace) -> SigningKey | None:
    """The key to sign with; None only when ``--unsigned`` asks for it."""
    if args.unsigned:
        return None
    path = args.signing_key or (Path(os.environ[SIGNING_KEY_ENV])
                                if os.environ.get(SIGNING_KEY_ENV) else None)
    if path is None:
        raise CommandError(f"no signing key: give --signing-key PATH or ${SIGNING_KEY_ENV} "
                           "(make one with `stackha keygen --out PREFIX`), or --unsigned",
                           EXIT_INVALID)
    try:
        return load_private(path)
    except KeyFileError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from exc
