"""Writing MyCat's own ZooKeeper layout (``/mycat/<clusterId>``) and its reload command.

The layout's znodes go into the same multi-op transaction that publishes the stackha version
(see ``ZooKeeperStore.publish``): MyCat's layout and stackha's current version can never
disagree, and a coordinator that loses the race on ``current`` writes nothing at all. Inside
the transaction the znodes keep MyCat's order (dataHost, dataNode, schema, ...): ZooKeeper
delivers the watch events of one transaction in operation order, after the whole transaction
is visible, so every reload MyCat starts reads the complete new layout. Only znodes whose
data changes are written, so MyCat reloads only for what changed.

MyCat 1.6 connects to ZooKeeper without credentials, so the layout cannot be digest-protected
for reading the way stackha's own tree is. The coordinator's digest identity owns everything;
MyCat hosts are admitted by address (ZooKeeper's ``ip`` scheme): read-only on configuration,
and allowed to create and delete below the few directories MyCat uses at run time.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.client import TransactionRequest as Transaction
from kazoo.exceptions import BadVersionError, NoAuthError, NodeExistsError, NoNodeError
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions

from stackha.model.problems import Problem
from stackha.model.spec import StackSpec
from stackha.mycat.zklayout import (
    CONF_INITIALIZED,
    RELOAD_COMMAND,
    RUNTIME_DIRS,
    Layout,
    build_layout,
)
from stackha.store.base import ConcurrentChange, StoreError

log = logging.getLogger(__name__)

CONFIG_DIRS = ("schema", "server", "rules", "sequences", "sequences/common",
               "sequences/cluster", "cache")
# Directories whose children stackha owns completely: children it no longer writes go away.
OWNED_DIRS = ("sequences/common", "sequences/cluster")
RELOAD_ATTEMPTS = 3


@dataclass(frozen=True)
class MycatZkTarget:
    """Where the layout goes and which MyCat hosts may read it (ZooKeeper ``ip`` ids)."""

    base: str
    readers: tuple[str, ...]
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class MycatLayoutWrite:
    """MyCat's layout to publish along with a stackha version."""

    target: MycatZkTarget
    layout: Layout


def target_of(spec: StackSpec) -> MycatZkTarget | None:
    settings = spec.mycat_zookeeper
    if settings is None or not settings.enabled:
        return None
    if settings.readers:
        networks = settings.readers
    else:
        networks = tuple(ipaddress.IPv4Network(f"{node.address}/32") for node in spec.nodes
                         if "mycat" in node.roles)
    readers = tuple(str(n.network_address) if n.prefixlen == 32 else str(n) for n in networks)
    return MycatZkTarget(settings.base_path, readers, spec.mycat_nodes())


def layout_write_for(spec: StackSpec, files: Mapping[str, bytes]
                     ) -> tuple[MycatLayoutWrite | None, list[Problem]]:
    """Pure: the layout a bundle's files give, when the spec enables MyCat's ZooKeeper mode.
    The problems are warnings about settings the layout cannot carry (or errors)."""
    target = target_of(spec)
    if target is None:
        return None, []
    layout, problems = build_layout(files, target.nodes)
    return (MycatLayoutWrite(target, layout) if layout is not None else None), problems


@dataclass(frozen=True)
class LayoutAcls:
    read: list[ACL]      # configuration znodes and directories
    base: list[ACL]      # the cluster node: MyCat may add children (locks, markers)
    runtime: list[ACL]   # directories MyCat creates and deletes children in
    command: list[ACL]   # command/<myid>: MyCat may overwrite it (its own `zk` command)


def layout_acls(owner: ACL | None, readers: Iterable[str]) -> LayoutAcls:
    if owner is None:
        return LayoutAcls(OPEN_ACL_UNSAFE, OPEN_ACL_UNSAFE, OPEN_ACL_UNSAFE, OPEN_ACL_UNSAFE)
    ids = [Id("ip", r) for r in readers]

    def with_readers(perms: int) -> list[ACL]:
        return [owner, *(ACL(perms, i) for i in ids)]

    read, write = Permissions.READ, Permissions.WRITE
    create, delete = Permissions.CREATE, Permissions.DELETE
    return LayoutAcls(read=with_readers(read), base=with_readers(read | create),
                      runtime=with_readers(read | write | create | delete),
                      command=with_readers(read | write))


def _join(base: str, relative: str) -> str:
    return f"{base}/{relative}" if relative else base


def _ensure_acl(client: KazooClient, path: str, acl: list[ACL]) -> None:
    """ACLs are set when a znode is created; a changed ``readers`` list must reach the
    znodes that already exist (ZooKeeper cannot change ACLs inside a transaction)."""
    for _attempt in range(3):
        current, stat = client.get_acls(path)
        if set(current) == set(acl):
            return
        try:
            client.set_acls(path, acl, version=stat.aversion)
        except BadVersionError:
            continue  # another coordinator changed it meanwhile: look again
        except NoAuthError as exc:
            raise StoreError(f"{path}: not allowed to change its ACL (created by someone "
                             "else?)") from exc
        log.info("event=mycat_layout_acl_changed path=%s", path)
        return
    raise ConcurrentChange(f"{path}: its ACL keeps changing under other coordinators")


def _create_if_missing(client: KazooClient, path: str, acl: list[ACL],
                       owned: bool = True) -> None:
    try:
        client.create(path, b"", acl=acl)
    except NodeExistsError:
        if owned:
            _ensure_acl(client, path, acl)


def ensure_skeleton(client: KazooClient, target: MycatZkTarget, acls: LayoutAcls) -> None:
    """The directories of the layout, each with its ACL. Idempotent; data comes later."""
    parts = target.base.strip("/").split("/")
    for depth in range(1, len(parts)):
        # /mycat may be shared with other clusters: created if missing, otherwise left alone.
        _create_if_missing(client, "/" + "/".join(parts[:depth]), acls.read, owned=False)
    _create_if_missing(client, target.base, acls.base)
    for directory in CONFIG_DIRS:
        _create_if_missing(client, _join(target.base, directory), acls.read)
    for directory in RUNTIME_DIRS:
        _create_if_missing(client, _join(target.base, directory), acls.runtime)


Op = Callable[[Transaction], None]


@dataclass(frozen=True)
class LayoutPlan:
    """What one publication does to the layout: operations for the shared transaction."""

    ops: tuple[Op, ...]
    written: tuple[str, ...]
    deleted: tuple[str, ...]
    size: int


def plan_layout(client: KazooClient, target: MycatZkTarget, layout: Layout,
                acls: LayoutAcls) -> LayoutPlan:
    """Compare the layout with what ZooKeeper holds and plan the writes, in layout order.

    Every write is guarded by the version it was planned against (or by the node's absence):
    a concurrent change makes the whole transaction fail instead of being overwritten.
    """
    ensure_skeleton(client, target, acls)
    ops: list[Op] = []
    written: list[str] = []
    size = 0
    wanted = [(z.path, z.data) for z in layout.znodes] + [(CONF_INITIALIZED, b"")]
    for relative, data in wanted:
        path = _join(target.base, relative)
        # The cluster node carries data too, but keeps the ACL ensure_skeleton gave it.
        acl = acls.base if path == target.base else acls.read
        try:
            current, stat = client.get(path)
        except NoNodeError:
            ops.append(lambda t, p=path, d=data, a=acl: t.create(p, d, acl=a))
        else:
            _ensure_acl(client, path, acl)
            if current == data:
                continue
            ops.append(lambda t, p=path, d=data, v=stat.version: t.set_data(p, d, version=v))
        written.append(relative or "/")
        size += len(data)
    keep = {z.path for z in layout.znodes}
    deleted: list[str] = []
    for directory in OWNED_DIRS:
        for child in sorted(client.get_children(_join(target.base, directory))):
            relative = f"{directory}/{child}"
            if relative not in keep:
                path = _join(target.base, relative)
                stat = client.exists(path)
                if stat is not None:
                    ops.append(lambda t, p=path, v=stat.version: t.delete(p, version=v))
                    deleted.append(relative)
    return LayoutPlan(tuple(ops), tuple(written), tuple(deleted), size)


def send_reload(client: KazooClient, target: MycatZkTarget, owner: ACL | None,
                myids: Iterable[str]) -> list[str]:
    """Ask MyCat nodes to re-read the layout: create ``command/<myid>`` holding the command.

    MyCat acts only on the creation of the node (it reads the data then, and deletes the node
    when done), so the node is created with its data in one step; a stale node left from an
    earlier request is deleted in the same transaction. Returns the paths created.
    """
    acls = layout_acls(owner, target.readers)
    ensure_skeleton(client, target, acls)
    myids = list(myids)
    for attempt in range(1, RELOAD_ATTEMPTS + 1):
        transaction = client.transaction()
        paths = []
        for myid in myids:
            path = _join(target.base, f"command/{myid}")
            stat = client.exists(path)
            if stat is not None:
                transaction.delete(path, version=stat.version)
            transaction.create(path, RELOAD_COMMAND, acl=acls.command)
            paths.append(path)
        failures = [r for r in transaction.commit() if isinstance(r, Exception)]
        if not failures:
            log.info("event=mycat_reload_requested base=%s myids=%s", target.base,
                     ",".join(myids))
            return paths
        # MyCat deleted or someone created a command node meanwhile: look again.
        log.info("event=mycat_reload_retry attempt=%d reason=%s", attempt,
                 type(failures[0]).__name__)
    raise StoreError(f"{target.base}/command: could not create the reload command after "
                     f"{RELOAD_ATTEMPTS} attempts")
