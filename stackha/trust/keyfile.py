"""Pure: Ed25519 keys as PEM text and back (RFC 8410), without a general ASN.1 library.

RFC 8410 gives each Ed25519 key exactly one DER encoding: a SubjectPublicKeyInfo is a fixed
12-byte header and the 32-byte key, an unencrypted PKCS#8 private key (version 0, no
attributes) a fixed 16-byte header and the 32-byte seed. So a key file is read by checking
the header and the length, nothing more; any other structure (another algorithm, an
encrypted key, a v2 key carrying its public half) is refused by name. This is what OpenSSL
(`openssl genpkey -algorithm ed25519`) and the cryptography package write.

Why not the cryptography package here: an agent loads the trusted key and nothing else of
it, and importing it costs an agent 9 MiB resident of its 30 MiB budget (measured with
VmRSS after `import cryptography.hazmat.primitives.serialization`, 2026-12-02).
"""

from __future__ import annotations

import base64
import binascii

# SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (32 bytes, no unused bits) }
PUBLIC_DER_HEADER = bytes.fromhex("302a300506032b6570032100")
# SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING { OCTET STRING (32) } }
PRIVATE_DER_HEADER = bytes.fromhex("302e020100300506032b657004220420")
KEY_BYTES = 32
PUBLIC_LABEL = "PUBLIC KEY"
PRIVATE_LABEL = "PRIVATE KEY"


class KeyFormatError(ValueError):
    """Text that is not the expected Ed25519 key; the message says what it is instead."""


def to_pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der).decode("ascii")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return ("\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----"])
            + "\n").encode("ascii")


def from_pem(data: bytes, label: str) -> bytes:
    """The DER inside the first BEGIN/END ``label`` block; text around it is ignored, as
    OpenSSL ignores it."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise KeyFormatError("not PEM text (not ASCII)") from exc
    begin, end = f"-----BEGIN {label}-----", f"-----END {label}-----"
    start = text.find(begin)
    if start < 0:
        other = text.find("-----BEGIN ")
        if other < 0:
            raise KeyFormatError(f"no '{begin}' line")
        found = text[other + 11:].split("-----", 1)[0][:40]
        raise KeyFormatError(f"a {found!r} block, not {label!r}")
    stop = text.find(end, start)
    if stop < 0:
        raise KeyFormatError(f"no '{end}' line")
    body = "".join(text[start + len(begin):stop].split())
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError("the PEM body is not base64") from exc


def public_pem(raw: bytes) -> bytes:
    return to_pem(PUBLIC_LABEL, PUBLIC_DER_HEADER + _key(raw))


def private_pem(seed: bytes) -> bytes:
    return to_pem(PRIVATE_LABEL, PRIVATE_DER_HEADER + _key(seed))


def parse_public_pem(data: bytes) -> bytes:
    """The raw 32-byte public key of an Ed25519 SubjectPublicKeyInfo PEM."""
    return _unwrap(from_pem(data, PUBLIC_LABEL), PUBLIC_DER_HEADER, "SubjectPublicKeyInfo")


def parse_private_pem(data: bytes) -> bytes:
    """The 32-byte seed of an unencrypted Ed25519 PKCS#8 PEM."""
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data:
        raise KeyFormatError("an encrypted private key (stackha reads unencrypted ones)")
    return _unwrap(from_pem(data, PRIVATE_LABEL), PRIVATE_DER_HEADER, "PKCS#8 private key")


def _unwrap(der: bytes, header: bytes, what: str) -> bytes:
    if len(der) == len(header) + KEY_BYTES and der.startswith(header):
        return der[len(header):]
    if b"\x06\x03\x2b\x65\x70" not in der[:16]:  # the Ed25519 OID's encoding
        raise KeyFormatError(f"not an Ed25519 {what} (another algorithm?)")
    raise KeyFormatError(f"an Ed25519 {what} in a form other than RFC 8410's "
                         f"({len(der)} bytes of DER)")


def _key(raw: bytes) -> bytes:
    if len(raw) != KEY_BYTES:
        raise KeyFormatError(f"an Ed25519 key is {KEY_BYTES} bytes, not {len(raw)}")
    return raw
