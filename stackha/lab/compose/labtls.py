"""The lab's TLS files, made by `stackha up` next to its credentials (compose/.stackha/tls/).

::

    tls/ca.pem, ca.key          the lab's CA (the key stays here, to issue more)
    tls/zk<N>/server.pem        member N's key and certificate (SAN: its address, zk<N>)
    tls/zk<N>/ca.pem            the CA that signs client certificates (its trust store)
    tls/<node>/                 each node's ca, client certificate and key, named as the
                                spec's zookeeper.tls names them; mounted where it says
    tls/coordinator/            the same for the coordinator on the docker host
    tls.env                     STACKHA_ZK_TLS_DIR=tls/coordinator, for push-config by hand

Made once and kept; a certificate is issued again only when its files are missing, another
CA signed it, or (servers) its SAN no longer names the member's address. Rotation: delete
``tls/`` (or one directory) and run `stackha up`, which restarts the containers it changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from stackha.lab.compose.backend import LabError
from stackha.lab.compose.certs import (
    Issued,
    alt_names_of,
    is_issued_by,
    make_ca,
    make_client_cert,
    make_server_cert,
)
from stackha.model.spec import StackSpec, ZookeeperTls
from stackha.store.connect import TLS_DIR_ENV

TLS_DIR = "tls"
TLS_ENV = "tls.env"
COORDINATOR = "coordinator"
SERVER_KEY_STORE = "server.pem"
SERVER_TRUST_STORE = "ca.pem"


@dataclass(frozen=True)
class ClientFiles:
    """The file names (in one directory) the spec's zookeeper.tls gives."""

    directory: str
    ca: str
    cert: str
    key: str


def client_files(tls: ZookeeperTls) -> ClientFiles:
    paths = [PurePosixPath(p) for p in (tls.ca, tls.cert, tls.key) if p]
    if tls.cert is None or tls.key is None:
        raise LabError("zookeeper.tls: the lab's ensemble requires client certificates: give "
                       "cert and key")
    if len({p.parent for p in paths}) != 1:
        raise LabError("zookeeper.tls: the lab mounts one directory per node: give ca, cert "
                       "and key in the same directory")
    names = [p.name for p in paths]
    if len(set(names)) != 3:
        raise LabError("zookeeper.tls: ca, cert and key must be three different files")
    return ClientFiles(str(paths[0].parent), *names)


def _write(path: Path, data: bytes, mode: int = 0o600) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _ca(root: Path) -> tuple[Issued, bool]:
    cert, key = _read(root / "ca.pem"), _read(root / "ca.key")
    if cert and key:
        return Issued(cert, key), False
    ca = make_ca("stackha lab CA")
    _write(root / "ca.key", ca.key)
    _write(root / "ca.pem", ca.cert, 0o644)
    return ca, True


def _server(root: Path, ca: Issued, name: str, address: str) -> bool:
    directory = root / name
    store = _read(directory / SERVER_KEY_STORE)
    wanted = {address, name}
    if (store and set(alt_names_of(store)) == wanted and is_issued_by(store, ca.cert)
            and _read(directory / SERVER_TRUST_STORE) == ca.cert):
        return False
    issued = make_server_cert(ca, name, sorted(wanted))
    # The container's ZooKeeper (root) reads both; the key store holds the private key.
    _write(directory / SERVER_KEY_STORE, issued.key_store)
    _write(directory / SERVER_TRUST_STORE, ca.cert, 0o644)
    return True


def _client(root: Path, ca: Issued, name: str, files: ClientFiles) -> bool:
    directory = root / name
    cert = _read(directory / files.cert)
    if (cert and _read(directory / files.key) and is_issued_by(cert, ca.cert)
            and _read(directory / files.ca) == ca.cert):
        return False
    issued = make_client_cert(ca, name)
    _write(directory / files.key, issued.key)
    _write(directory / files.cert, issued.cert, 0o644)
    _write(directory / files.ca, ca.cert, 0o644)
    return True


def lab_tls_files(spec: StackSpec, private: Path,
                  members: list[tuple[int, str]]) -> list[str]:
    """Make what is missing under ``private/tls``; returns what was (re)issued (CA, zk1,
    nginx1, ...), empty when everything was kept. ``members``: (myid, address)."""
    tls = spec.zookeeper.tls
    if tls is None:
        return []
    files = client_files(tls)
    root = private / TLS_DIR
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    ca, new_ca = _ca(root)
    made = ["CA"] if new_ca else []
    for myid, address in members:
        if _server(root, ca, f"zk{myid}", address):
            made.append(f"zk{myid}")
    for name in [COORDINATOR, *(n.name for n in spec.nodes)]:
        if _client(root, ca, name, files):
            made.append(name)
    _write(private / TLS_ENV, f"{TLS_DIR_ENV}={(root / COORDINATOR).resolve()}\n".encode())
    return made


def lab_tls_env(private: Path, environ: dict[str, str] | None = None) -> dict[str, str]:
    """What the host's coordinator needs to find its files (nothing without a tls/ dir, or
    when the environment already says)."""
    environ = dict(os.environ) if environ is None else environ
    directory = private / TLS_DIR / COORDINATOR
    if environ.get(TLS_DIR_ENV) or not directory.is_dir():
        return {}
    return {TLS_DIR_ENV: str(directory.resolve())}
