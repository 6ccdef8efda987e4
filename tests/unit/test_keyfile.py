"""Ed25519 key files (stackha.trust.keyfile): what OpenSSL and the cryptography package write
loads, what either reads back is what stackha wrote, and anything else is refused by name."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from stackha.trust import keyfile
from stackha.trust.signing import KeyFileError, generate, parse_private, parse_public
from stackha.trust.signing import private_pem as stackha_private_pem
from stackha.trust.signing import public_pem as stackha_public_pem
from testkit import skip_unless_ci

RAW = serialization.Encoding.Raw


def _theirs() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def test_keys_the_cryptography_package_writes_load_with_the_same_key():
    private = _theirs()
    seed = private.private_bytes(RAW, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
    public = private.public_key().public_bytes(RAW, serialization.PublicFormat.Raw)
    pem_private = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    pem_public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert bytes(parse_private(pem_private, "k.key").private) == seed
    assert bytes(parse_public(pem_public, "k.pub")) == public
    # What stackha writes is byte for byte what cryptography writes for the same key.
    assert keyfile.private_pem(seed) == pem_private
    assert keyfile.public_pem(public) == pem_public


def test_what_stackha_writes_the_cryptography_package_reads_and_a_signature_verifies():
    key = generate()
    theirs = serialization.load_pem_private_key(stackha_private_pem(key), password=None)
    public = serialization.load_pem_public_key(stackha_public_pem(key.public))
    assert isinstance(theirs, ed25519.Ed25519PrivateKey)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(key.private.sign(b"m").signature, b"m")  # raises when it does not verify


def test_a_key_made_by_openssl_genpkey_loads(tmp_path):
    if shutil.which("openssl") is None:  # Debian's openssl: every CI machine has it
        skip_unless_ci("needs the openssl command")
    private = tmp_path / "o.key"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(private)],
                   check=True)
    public = subprocess.run(["openssl", "pkey", "-in", str(private), "-pubout"], check=True,
                            capture_output=True).stdout
    key = parse_private(private.read_bytes(), str(private))
    assert bytes(parse_public(public, "o.pub")) == bytes(key.public)


@pytest.mark.parametrize(("data", "reason"), [
    (b"hello\n", "no '-----BEGIN PUBLIC KEY-----' line"),
    (b"\xff\xfe", "not ASCII"),
    (b"-----BEGIN PUBLIC KEY-----\nAAAA\n", "no '-----END PUBLIC KEY-----' line"),
    (b"-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n", "not base64"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     "'CERTIFICATE' block"),
    (keyfile.to_pem("PUBLIC KEY", keyfile.PUBLIC_DER_HEADER + b"\0" * 31), "form other"),
    (keyfile.to_pem("PUBLIC KEY", b"\x30\x03\x02\x01\x00"), "another algorithm"),
])
def test_what_is_not_an_ed25519_public_key_is_refused_by_name(data, reason):
    with pytest.raises(KeyFileError) as caught:
        parse_public(data, "bad.pub")
    assert str(caught.value).startswith("bad.pub: not a PEM public key (")
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_another_algorithm_or_an_encrypted_key_is_refused_by_name():
    p256 = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(KeyFileError, match="another algorithm"):
        parse_public(p256.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo), "p")
    with pytest.raises(KeyFileError, match="another algorithm"):
        parse_private(p256.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), "p")
    encrypted = _theirs().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(KeyFileError, match=r"k\.key: .*an encrypted private key"):
        parse_private(encrypted, "k.key")
