"""The lab's signing key pair: made once by `stackha up` next to the lab's credentials.

``signing.key`` (0600) stays on the host and signs every push (`stackha up`, and
`push-config` after `. lab.env`); ``signing.pub`` is mounted read-only into every agent
container, which pins it with ``--trusted-key``."""

from __future__ import annotations

from pathlib import Path

from stackha.lab.compose.backend import LabError
from stackha.trust.signing import PRIVATE_SUFFIX, PUBLIC_SUFFIX, KeyFileError, write_keypair

NAME = "signing"
PRIVATE = NAME + PRIVATE_SUFFIX
PUBLIC = NAME + PUBLIC_SUFFIX


def lab_signing_key(directory: Path) -> Path:
    """The private key's path, the pair made when there is none yet."""
    private, public = directory / PRIVATE, directory / PUBLIC
    if private.exists() and public.exists():
        return private
    if private.exists() or public.exists():
        raise LabError(f"{directory}: only one of {PRIVATE} and {PUBLIC} exists; remove it "
                       "to make a new pair (then restart the agents: they pin the public key)")
    directory.mkdir(parents=True, exist_ok=True)
    try:
        write_keypair(directory / NAME)
    except KeyFileError as exc:
        raise LabError(str(exc)) from exc
    return private
