"""Open the configuration store the spec describes, with the right credential."""

from __future__ import annotations

import os
from pathlib import PurePath

from stackha.model.spec import StackSpec
from stackha.store.credentials import read_identity
from stackha.store.tls import TlsSettings
from stackha.store.zookeeper import Identity, ZooKeeperStore

TLS_DIR_ENV = "STACKHA_ZK_TLS_DIR"
"""Where this host keeps the files ``zookeeper.tls`` names, when not at the spec's paths:
the files are looked up there by their names (the lab's coordinator on the docker host)."""


def zk_hosts(spec: StackSpec, override: str | None) -> str:
    return override or os.environ.get("STACKHA_ZK") or spec.zookeeper.hosts


def tls_settings(spec: StackSpec) -> TlsSettings | None:
    tls = spec.zookeeper.tls
    if tls is None:
        return None
    directory = os.environ.get(TLS_DIR_ENV)

    def here(path: str | None) -> str | None:
        if path is None or not directory:
            return path
        return str(PurePath(directory) / PurePath(path).name)

    ca = here(tls.ca)
    assert ca is not None
    return TlsSettings(ca, here(tls.cert), here(tls.key), tls.verify_hostname)


def build_store(spec: StackSpec, zk_override: str | None, as_role: str,
                retry_forever: bool = False) -> ZooKeeperStore:
    """``as_role`` is ``coordinator`` or ``agent``: it picks the credential."""
    zk = spec.zookeeper
    credential = zk.coordinator_auth if as_role == "coordinator" else zk.agent_auth
    identity: Identity | None = read_identity(credential, f"zookeeper.{as_role}_auth")
    return ZooKeeperStore(zk_hosts(spec, zk_override), zk.chroot, spec.cluster, identity,
                          timeout=zk.session_timeout, retry_forever=retry_forever,
                          tls=tls_settings(spec))


def open_store(spec: StackSpec, zk_override: str | None, as_role: str) -> ZooKeeperStore:
    store = build_store(spec, zk_override, as_role)
    store.start()
    return store


def agent_identity(spec: StackSpec) -> Identity | None:
    return read_identity(spec.zookeeper.agent_auth, "zookeeper.agent_auth")
