"""Pure: Ed25519 signatures over the parts of a configuration version.

A version is signed per part: ``spec`` (stackha.yaml, which every node reads), ``nginx`` and
``mycat`` (the files under those prefixes). A node verifies exactly the parts it reads, so a
store that lets a node read only its own roles' files (one child per role) still lets it check
everything it applies. Each signature covers a canonical byte string that binds the cluster,
the version number, the part, the signing key's id and the (path, sha256) of every file of the
part in sorted order: a valid part replayed as another version, into another cluster or as
another part does not verify, and neither does a part with a file added, dropped or changed.

Keys are PEM files: the private key PKCS#8 (unencrypted, mode 0600), the public key
SubjectPublicKeyInfo (stackha.trust.keyfile reads and writes them). The Ed25519 arithmetic
is libsodium's, through PyNaCl: an agent verifies with it at 3.6 MiB resident where the
cryptography package cost 12 (VmRSS after each import alone, 2026-12-02). A key id is the
first 16 hex digits of the sha256 of the raw 32-byte public key. Nothing here touches
ZooKeeper; keys come from the local filesystem only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from nacl import signing as ed25519
from nacl.exceptions import BadSignatureError

from stackha.model.bundle import ROLE_PREFIXES, SPEC_FILE, Bundle, PartSignature
from stackha.trust import keyfile

SPEC_PART = "spec"
PARTS = (SPEC_PART, *sorted(ROLE_PREFIXES))
# Changing the layout of the signed bytes means a new tag: old signatures then fail cleanly.
DOMAIN = b"stackha signed part v1\n"
# Where the coordinator's commands look for the private key when --signing-key is not given.
SIGNING_KEY_ENV = "STACKHA_SIGNING_KEY"
PRIVATE_SUFFIX = ".key"
PUBLIC_SUFFIX = ".pub"


class KeyFileError(Exception):
    """A key file that cannot be used; the message names the file and the reason."""


def key_id(public: ed25519.VerifyKey) -> str:
    return hashlib.sha256(bytes(public)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: ed25519.SigningKey

    @property
    def public(self) -> ed25519.VerifyKey:
        return self.private.verify_key

    @property
    def key_id(self) -> str:
        return key_id(self.public)


@dataclass(frozen=True)
class TrustedKeys:
    """The public keys a node accepts, by key id (more than one while keys rotate)."""

    keys: Mapping[str, ed25519.VerifyKey]

    @classmethod
    def of(cls, keys: Iterable[ed25519.VerifyKey]) -> TrustedKeys:
        return cls(MappingProxyType({key_id(k): k for k in keys}))

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.keys))


def part_files(bundle: Bundle, part: str) -> dict[str, str]:
    """(path -> sha256) of the files a part covers, as the bundle at hand holds them."""
    if part == SPEC_PART:
        return {SPEC_FILE: bundle.files[SPEC_FILE].sha256} if SPEC_FILE in bundle.files else {}
    return {path: f.sha256 for path, f in bundle.for_role(part).items()}


def canonical(cluster: str, number: int, part: str, signer: str,
              files: Mapping[str, str]) -> bytes:
    """The bytes a part's signature covers. JSON with sorted keys, no whitespace and ASCII
    escapes has one encoding per value, so signer and verifier always agree byte for byte."""
    body = {"cluster": cluster, "version": number, "part": part, "key_id": signer,
            "files": [[path, files[path]] for path in sorted(files)]}
    return DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=True).encode("ascii")


def sign_parts(key: SigningKey, cluster: str, number: int,
               bundle: Bundle) -> dict[str, PartSignature]:
    """Every part's signature, empty parts included: a signed empty part says the version
    has no such files, so files added to it later do not verify."""
    signer = key.key_id
    return {part: PartSignature(signer, base64.b64encode(key.private.sign(
                canonical(cluster, number, part, signer, part_files(bundle, part))).signature
                ).decode())
            for part in PARTS}


def verify_part(trusted: TrustedKeys, cluster: str, number: int, part: str, bundle: Bundle,
                signatures: Mapping[str, PartSignature]) -> str | None:
    """Why ``part`` of version ``number`` must not be applied, or None when it verifies.

    ``number`` and ``cluster`` are what the node knows (the version it asked for, its own
    cluster), never what the document claims."""
    found = signatures.get(part)
    if found is None:
        return f"{part} part is unsigned"
    if found.key_id not in trusted.keys:
        shown = found.key_id if found.key_id.isalnum() and len(found.key_id) <= 64 else "?"
        return (f"{part} part is signed by unknown key {shown} (trusted: "
                f"{', '.join(trusted.ids)})")
    try:
        raw = base64.b64decode(found.signature, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 64:
        return f"{part} part has a malformed signature (not 64 bytes of base64)"
    message = canonical(cluster, number, part, found.key_id, part_files(bundle, part))
    try:
        trusted.keys[found.key_id].verify(message, raw)
    except BadSignatureError:
        return (f"{part} part: bad signature by key {found.key_id}: its files, version number "
                f"{number} or cluster {cluster} are not what was signed")
    return None


def verify_parts(trusted: TrustedKeys, cluster: str, number: int, parts: Iterable[str],
                 bundle: Bundle, signatures: Mapping[str, PartSignature]) -> str | None:
    """The first reason among ``parts`` (spec first), or None when all verify."""
    for part in sorted(set(parts), key=lambda p: (p != SPEC_PART, p)):
        reason = verify_part(trusted, cluster, number, part, bundle, signatures)
        if reason is not None:
            return reason
    return None


# keys on disk --------------------------------------------------------------------------------
def generate() -> SigningKey:
    return SigningKey(ed25519.SigningKey.generate())


def private_pem(key: SigningKey) -> bytes:
    return keyfile.private_pem(bytes(key.private))


def public_pem(public: ed25519.VerifyKey) -> bytes:
    return keyfile.public_pem(bytes(public))


def parse_private(data: bytes, where: str) -> SigningKey:
    try:
        return SigningKey(ed25519.SigningKey(keyfile.parse_private_pem(data)))
    except keyfile.KeyFormatError as exc:
        raise KeyFileError(f"{where}: not an unencrypted Ed25519 PEM private key ({exc})") \
            from exc


def parse_public(data: bytes, where: str) -> ed25519.VerifyKey:
    try:
        return ed25519.VerifyKey(keyfile.parse_public_pem(data))
    except keyfile.KeyFormatError as exc:
        raise KeyFileError(f"{where}: not a PEM public key ({exc})") from exc


def write_keypair(prefix: Path) -> SigningKey:
    """PREFIX.key (0600, created exclusively: never overwrites) and PREFIX.pub (0644)."""
    key = generate()
    private, public = _with_suffix(prefix, PRIVATE_SUFFIX), _with_suffix(prefix, PUBLIC_SUFFIX)
    for path in (private, public):
        if path.exists():
            raise KeyFileError(f"{path}: exists; not overwriting a key")
    for path, data, mode in ((private, private_pem(key), 0o600),
                             (public, public_pem(key.public), 0o644)):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except OSError as exc:
            raise KeyFileError(f"{path}: cannot create: {exc.strerror}") from exc
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    return key


def _with_suffix(prefix: Path, suffix: str) -> Path:
    return prefix.with_name(prefix.name + suffix)


def load_private(path: Path) -> SigningKey:
    """A signing key file; refused when others may read it (as ssh refuses such keys)."""
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read signing key: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"{path}: signing key is accessible by others (mode "
                        f"{stat.S_IMODE(mode):04o}); chmod 600 it")
    return parse_private(data, str(path))


def load_trusted(paths: Iterable[Path]) -> TrustedKeys:
    """Public keys from files, or from every ``*.pub`` of a directory."""
    keys: list[ed25519.VerifyKey] = []
    for path in paths:
        files = sorted(path.glob(f"*{PUBLIC_SUFFIX}")) if path.is_dir() else [path]
        if path.is_dir() and not files:
            raise KeyFileError(f"{path}: no *{PUBLIC_SUFFIX} public key in this directory")
        for file in files:
            try:
                data = file.read_bytes()
            except OSError as exc:
                raise KeyFileError(f"{file}: cannot read public key: {exc.strerror}") from exc
            keys.append(parse_public(data, str(file)))
    return TrustedKeys.of(keys)
