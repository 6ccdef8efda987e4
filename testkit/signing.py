"""The harnesses' signing key pair, and signing of raw version documents tests write.

One key pair per test process, in a private temporary directory: pushes sign with the private
key (``$STACKHA_SIGNING_KEY``, ``--signing-key``), agents pin the public one
(``--trusted-key``)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from stackha.model.bundle import PartSignature, parse_version
from stackha.trust.signing import SigningKey, sign_parts, write_keypair


@dataclass(frozen=True)
class KeyPair:
    private: Path
    public: Path
    key: SigningKey


def make_keypair(directory: Path, name: str = "coordinator") -> KeyPair:
    directory.mkdir(parents=True, exist_ok=True)
    key = write_keypair(directory / name)
    return KeyPair(directory / f"{name}.key", directory / f"{name}.pub", key)


@functools.cache
def harness_keys() -> KeyPair:
    directory = Path(tempfile.mkdtemp(prefix="stackha-test-keys-"))
    atexit.register(shutil.rmtree, directory, True)
    return make_keypair(directory)


def sign_document(document: bytes, number: int, cluster: str,
                  key: SigningKey | None = None) -> bytes:
    """``document`` as version ``number`` of ``cluster``, signed as a coordinator would. A
    document that does not parse is returned as it is (the node refuses it before any
    signature matters)."""
    version, _ = parse_version(document, "raw")
    if version is None:
        return document
    signatures = sign_parts(key or harness_keys().key, cluster, number, version.bundle)
    raw = json.loads(document)
    raw["signatures"] = {part: _entry(s) for part, s in signatures.items()}
    return json.dumps(raw, indent=1, sort_keys=True).encode()


def _entry(signature: PartSignature) -> dict[str, str]:
    return {"key_id": signature.key_id, "signature": signature.signature}
