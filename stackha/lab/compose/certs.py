"""Pure: a small certificate authority for the lab and the tests (PEM bytes in, PEM bytes out).

It makes a CA, server certificates whose subjectAltName lists every name and address clients
use (hostname checks compare against it), and client certificates. Nothing here touches the
disk: ``stackha.lab.compose.labtls`` writes the files. Keys are ECDSA P-256 in unencrypted
PKCS#8, which both Python's ``ssl`` and ZooKeeper's PEM key store loader read.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Long enough that a lab left running is not broken by expiry, short enough to be replaced.
DEFAULT_DAYS = 365


@dataclass(frozen=True)
class Issued:
    """A certificate and its private key, both PEM."""

    cert: bytes
    key: bytes

    @property
    def key_store(self) -> bytes:
        """Key then certificate in one PEM file: ZooKeeper's ``ssl.keyStore.type=PEM``."""
        return self.key + self.cert


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stackha"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _alt_names(names: Iterable[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def _validity(builder: x509.CertificateBuilder, now: datetime.datetime,
              days: int) -> x509.CertificateBuilder:
    # Backdated a little: a peer whose clock is a minute behind still accepts it.
    return (builder.not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days)))


def make_ca(common_name: str = "stackha lab CA", days: int = DEFAULT_DAYS,
            now: datetime.datetime | None = None) -> Issued:
    now = now or datetime.datetime.now(datetime.UTC)
    key = _new_key()
    name = _name(common_name)
    builder = _validity(x509.CertificateBuilder(), now, days)
    cert = (builder.subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                         crl_sign=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def _issue(ca: Issued, common_name: str, alt_names: Iterable[str], server: bool,
           days: int, now: datetime.datetime | None) -> Issued:
    now = now or datetime.datetime.now(datetime.UTC)
    ca_cert = x509.load_pem_x509_certificate(ca.cert)
    ca_key = serialization.load_pem_private_key(ca.key, password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _new_key()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (_validity(x509.CertificateBuilder(), now, days)
               .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    names = _alt_names(alt_names)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def make_server_cert(ca: Issued, common_name: str, alt_names: Iterable[str],
                     days: int = DEFAULT_DAYS, now: datetime.datetime | None = None) -> Issued:
    """``alt_names``: every DNS name and IP address clients connect to (the SAN)."""
    return _issue(ca, common_name, alt_names, server=True, days=days, now=now)


def make_client_cert(ca: Issued, common_name: str, days: int = DEFAULT_DAYS,
                     now: datetime.datetime | None = None) -> Issued:
    return _issue(ca, common_name, (), server=False, days=days, now=now)


def alt_names_of(cert_pem: bytes) -> tuple[str, ...]:
    """The SAN entries of a certificate as strings (for checks and tests)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    return tuple(str(v) for v in san.get_values_for_type(x509.DNSName)) + tuple(
        str(v) for v in san.get_values_for_type(x509.IPAddress))


def is_issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
