"""``stackha keygen``: the coordinator's Ed25519 signing key pair."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stackha.cli.output import EXIT_OK, CommandError, emit
from stackha.trust.signing import PRIVATE_SUFFIX, PUBLIC_SUFFIX, KeyFileError, write_keypair


def cmd_keygen(args: argparse.Namespace) -> int:
    try:
        key = write_keypair(args.out)
    except KeyFileError as exc:
        raise CommandError(str(exc)) from exc
    emit(f"key id {key.key_id}")
    emit(f"  private: {args.out}{PRIVATE_SUFFIX} (0600: the coordinator's only; "
         "--signing-key or $STACKHA_SIGNING_KEY)")
    emit(f"  public:  {args.out}{PUBLIC_SUFFIX} (copy to every node: --trusted-key)")
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing versions")
    p.add_argument("--out", type=Path, required=True, metavar="PREFIX",
                   help=f"writes PREFIX{PRIVATE_SUFFIX} and PREFIX{PUBLIC_SUFFIX}; never "
                        "overwrites")
    p.set_defaults(func=cmd_keygen)
