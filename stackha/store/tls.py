"""TLS to ZooKeeper: the settings, and the connections kazoo opens with them.

kazoo's own TLS path trusts the system's CA bundle besides the one given (it calls
``load_default_certs``) and drops the handshake's error into its retry loop, so a wrong CA
looked like ZooKeeper being down until the connect timeout. Here the connection is made by a
kazoo handler of our own: it trusts only the configured CA, asks for TLS 1.2 or later, checks
the host name against the certificate's subjectAltName, and remembers each host's last
refusal so that the store can say in one line why it cannot connect.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler

from stackha.store.base import StoreError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsSettings:
    """PEM files on this host: the CA that signed the servers' certificates, and this client's
    certificate and key (both or neither)."""

    ca: str
    cert: str | None = None
    key: str | None = None
    check_hostname: bool = True

    def context(self) -> ssl.SSLContext:
        """A client context; every file problem is a one-line StoreError naming the file."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_verify_locations(cafile=self.ca)
        except (OSError, ssl.SSLError) as exc:
            raise StoreError(f"zookeeper.tls.ca: cannot load {self.ca}: {_reason(exc)}") from exc
        if self.cert and self.key:
            try:
                context.load_cert_chain(self.cert, self.key)
            except (OSError, ssl.SSLError) as exc:
                raise StoreError(f"zookeeper.tls: cannot load the client certificate {self.cert}"
                                 f" with key {self.key}: {_reason(exc)}") from exc
        return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        # The server's alerts about our certificate, said plainly: ZooKeeper sends "bad
        # certificate" for none and "certificate unknown" for one of a CA it does not trust.
        if "ALERT_BAD_CERTIFICATE" in exc.reason or "CERTIFICATE_REQUIRED" in exc.reason:
            return "the server refused this client's certificate: it requires one (none given?)"
        if "ALERT_CERTIFICATE_UNKNOWN" in exc.reason or "UNKNOWN_CA" in exc.reason:
            return ("the server refused this client's certificate: not signed by a CA it "
                    "trusts")
        return exc.reason.lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class TlsHandler(SequentialThreadingHandler):
    """kazoo's threading handler whose connections are TLS with our context.

    kazoo still passes its own TLS arguments; they are ignored: the settings are ours. The
    context is rebuilt for every connection, so replaced certificate files are used from the
    next reconnection on.
    """

    def __init__(self, settings: TlsSettings):
        super().__init__()
        self.settings = settings
        settings.context()  # fail now, in the caller, on a missing or broken file
        self._lock = threading.Lock()
        self._refusals: dict[str, str] = {}

    def refusals(self) -> dict[str, str]:
        """``host:port`` -> why the last TLS handshake with it failed (cleared on success)."""
        with self._lock:
            return dict(self._refusals)

    def create_connection(self, address: Any, hostname: str | None = None,
                          timeout: float | None = None, **_kazoo_tls: Any) -> socket.socket:
        where = f"{hostname or address[0]}:{address[1]}"
        raw = socket.create_connection(address, timeout)
        name = hostname or address[0]
        try:
            # As bytes when ASCII: ssl encodes a str name with the idna codec, whose import
            # (encodings.idna, stringprep) is 0.3 MiB resident for names that need none of it.
            tls = self.settings.context().wrap_socket(
                raw, server_hostname=name.encode("ascii") if name.isascii() else name)
        except StoreError as exc:
            raw.close()
            self._refused(where, str(exc))
            raise OSError(str(exc)) from exc
        except (ssl.SSLError, OSError) as exc:
            raw.close()
            if isinstance(exc, ssl.SSLError) or isinstance(exc, ConnectionResetError):
                self._refused(where, _reason(exc))
            raise
        tls.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._refusals.pop(where, None)
        return tls

    def _refused(self, where: str, reason: str) -> None:
        with self._lock:
            changed = self._refusals.get(where) != reason
            self._refusals[where] = reason
        if changed:  # once per host and reason: kazoo retries every few seconds
            log.warning("event=zk_tls_refused host=%s reason=%r", where, reason)
