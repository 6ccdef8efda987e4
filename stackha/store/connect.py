"""Open the configuration store the spec describes, with the right credential."""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from types import MappingProxyType

from stackha.model.spec import StackSpec
from stackha.store.base import StoreError
from stackha.store.credentials import read_identity
from stackha.store.registry import Registry, read_registry, registry_path
from stackha.store.tls import TlsSettings
from stackha.store.treeacl import TreeAccess
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
def tree_access(spec: StackSpec, coordinator: Identity, registry: Registry) -> TreeAccess:
    """Who is who in this cluster's tree: the spec's nodes that the registry names."""
    nodes = {n.name: registry.digests[n.name] for n in spec.nodes if n.name in registry.digests}
    return TreeAccess(coordinator.acl_id, MappingProxyType(nodes),
                      MappingProxyType({n.name: n.roles for n in spec.nodes}))


def unregistered(spec: StackSpec, registry: Registry) -> list[str]:
    return [n.name for n in spec.nodes if n.name not in registry.digests]


def build_store(spec: StackSpec, zk_override: str | None, as_role: str,
                retry_forever: bool = False, credential_file: Path | None = None,
                registry: Path | None = None) -> ZooKeeperStore:
    """``as_role`` is ``coordinator`` or ``agent``: it picks the credential.
    ``credential_file``: the agent's own credential instead of the spec's ``agent_auth``.
    ``registry``: the agents' digest registry (default ``$STACKHA_AGENT_REGISTRY``)."""
    zk = spec.zookeeper
    if as_role == "agent" and credential_file is not None:
        identity: Identity | None = _read_file_identity(credential_file)
    else:
        credential = zk.coordinator_auth if as_role == "coordinator" else zk.agent_auth
        identity = read_identity(credential, f"zookeeper.{as_role}_auth")
    store = ZooKeeperStore(zk_hosts(spec, zk_override), zk.chroot, spec.cluster, identity,
                           timeout=zk.session_timeout, retry_forever=retry_forever,
                           tls=tls_settings(spec))
    path = registry_path(str(registry) if registry else None)
    if as_role == "coordinator" and identity is not None and path is not None:
        found = read_registry(path)
        store.access = tree_access(spec, identity, found)
        store.known_digests = tuple(found.digests.values())
    return store


def _read_file_identity(path: Path) -> Identity:
    try:
        return Identity.parse(path.read_text(), str(path))
    except OSError as exc:
        raise StoreError(f"cannot read credential file {path}: {exc.strerror}") from exc


def open_store(spec: StackSpec, zk_override: str | None, as_role: str,
               registry: Path | None = None) -> ZooKeeperStore:
    store = build_store(spec, zk_override, as_role, registry=registry)
    store.start()
    return store


def agent_identity(spec: StackSpec) -> Identity | None:
    return read_identity(spec.zookeeper.agent_auth, "zookeeper.agent_auth")
