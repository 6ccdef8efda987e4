"""ZooKeeper as stackha's configuration store.

Layout under ``<chroot>/<cluster>`` (the ACL of each znode: store.treeacl)::

    config/current            data: number of the current version
    config/versions/<n>       the version's manifest (spec, message, file list per role)
    config/versions/<n>/<role>  that role's files, readable only by the nodes with the role
    status/<node>             made by the coordinator; only <node> may create/delete below
    status/<node>/report      ephemeral, written by that node's agent
    control/switchover/<group>  the group's preferred holder ({to, requested_at, id})
    control/maintenance/<node>  the node is in maintenance ({reason, since, drain_timeout})

A new version (manifest and parts) and the move of ``current`` happen in one multi-op
transaction guarded by the version of ``current``: no reader ever sees half a publication and
two coordinators cannot interleave. The coordinator owns the tree: a znode granting anything
to anyone else is refused by name (``ensure_layout``) until ``stackha init`` takes it over.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NoAuthError,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry
from kazoo.security import (
    ACL,
    OPEN_ACL_UNSAFE,
    Id,
    Permissions,
    make_digest_acl,
    make_digest_acl_credential,
)

from stackha.model.bundle import ROLE_PREFIXES, ConfigVersion, parse_version
from stackha.model.control import (
    Maintenance,
    SwitchoverRequest,
    parse_maintenance,
    parse_switchover,
)
from stackha.model.status import NodeStatus, parse_status
from stackha.model.versionparts import merge_document, part_names, split_document
from stackha.store.base import (
    MAX_VERSION_BYTES,
    ConcurrentChange,
    CurrentPointer,
    StoreError,
    VersionTooLarge,
    VersionUnreadable,
)
from stackha.store.mycatzk import (
    MycatLayoutWrite,
    MycatZkTarget,
    layout_acls,
    plan_layout,
    send_reload,
)
from stackha.store.tls import TlsHandler, TlsSettings
from stackha.store.treeacl import (
    ALL,
    READ,
    REPORT,
    AclFinding,
    TreeAccess,
    acl_text,
    compare,
    report_acl_from_plan,
)

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """kazoo's errors (and its timeouts, which are no KazooException) become StoreError, so
    that no caller above the store needs to know kazoo."""

    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except StoreError:
            raise
        except (KazooException, KazooTimeoutError) as exc:
            raise StoreError(f"ZooKeeper: {type(exc).__name__}: {exc}".rstrip(": ")) from exc

    return wrapper


@dataclass(frozen=True)
class Identity:
    """A digest identity ``user:password``; the password is never logged or shown."""

    user: str
    password: str

    @classmethod
    def parse(cls, credential: str, source: str) -> Identity:
        user, sep, password = credential.strip().partition(":")
        if not sep or not user or not password:
            raise StoreError(f"{source}: credential must have the form user:password")
        return cls(user, password)

    def __repr__(self) -> str:
        return f"Identity(user={self.user!r}, password=***)"

    @property
    def acl_id(self) -> str:
        return make_digest_acl_credential(self.user, self.password)

    @property
    def auth(self) -> tuple[str, str]:
        return ("digest", f"{self.user}:{self.password}")

    def acl(self, perms: int) -> ACL:
        return make_digest_acl(self.user, self.password,
                               read=bool(perms & Permissions.READ),
                               write=bool(perms & Permissions.WRITE),
                               create=bool(perms & Permissions.CREATE),
                               delete=bool(perms & Permissions.DELETE),
                               admin=bool(perms & Permissions.ADMIN))


def _version_name(number: int) -> str:
    return f"{number:010d}"


class ZooKeeperStore:
    # The coordinator's view of who is who (store.connect sets it from the agent registry):
    # without it a coordinator with a credential refuses to lay out or publish.
    access: TreeAccess | None = None
    # Every digest of the registry (also of nodes not in the spec): their users are known.
    known_digests: tuple[str, ...] = ()

    def __init__(self, hosts: str, chroot: str, cluster: str, identity: Identity | None = None,
                 timeout: float = 10.0, connect_timeout: float = 15.0,
                 retry_forever: bool = False, tls: TlsSettings | None = None):
        self.base = f"{chroot.rstrip('/')}/{cluster}"
        self.hosts = hosts
        self.identity = identity
        retry = KazooRetry(max_tries=-1 if retry_forever else 3, delay=0.2, backoff=2,
                           max_delay=5, ignore_expire=False)
        # With TLS our handler opens the connections (only the given CA, hostname checks,
        # the reason of each refusal); kazoo's use_ssl only makes its log lines say so.
        self._tls = TlsHandler(tls) if tls is not None else None
        self.client = KazooClient(
            hosts=hosts, timeout=timeout,
            auth_data=[identity.auth] if identity else None,
            connection_retry=retry,
            command_retry=KazooRetry(max_tries=3, delay=0.2, backoff=2, max_delay=2),
            **({"handler": self._tls, "use_ssl": True} if self._tls else {}),
        )
        self._connect_timeout = connect_timeout

    # connection ---------------------------------------------------------------------------
    @_translated
    def start(self, wait: bool = True) -> None:
        if not wait:
            self.client.start_async()
            return
        if self._tls is not None:
            self._start_tls()
            return
        try:
            self.client.start(timeout=self._connect_timeout)
        except KazooTimeoutError as exc:
            self.client.close()
            raise StoreError(f"cannot reach ZooKeeper at {self.hosts}: timed out") from exc

    def _start_tls(self) -> None:
        """Like kazoo's start, but a TLS refusal by every host ends the wait at once, and the
        error says why (a wrong CA, a refused client certificate, a name mismatch)."""
        assert self._tls is not None
        hosts = {h.strip() for h in self.hosts.split("/")[0].split(",") if h.strip()}
        connected = self.client.start_async()
        deadline = time.monotonic() + self._connect_timeout
        refusals: dict[str, str] = {}
        while not connected.wait(0.05):
            refusals = self._tls.refusals()
            if len(refusals) >= len(hosts) or time.monotonic() > deadline:
                break
        if self.client.connected:
            return
        self.client.stop()
        self.client.close()
        if refusals:
            where, why = sorted(refusals.items())[0]
            raise StoreError(f"TLS to ZooKeeper refused: {where}: {why}")
        raise StoreError(f"cannot reach ZooKeeper at {self.hosts} (TLS): timed out")
    @_translated
    def add_auth(self, identity: Identity) -> None:
        """A second identity on this session (``stackha init --admin-credential-file``)."""
        self.client.add_auth(*identity.auth)

    def close(self) -> None:
        try:
            self.client.stop()
        finally:
            self.client.close()

    def add_listener(self, listener: Callable[[str], None]) -> None:
        self.client.add_listener(listener)

    @property
    def connected(self) -> bool:
        return bool(self.client.connected)

    # paths --------------------------------------------------------------------------------
    @property
    def current_path(self) -> str:
        return f"{self.base}/config/current"

    @property
    def versions_path(self) -> str:
        return f"{self.base}/config/versions"

    @property
    def status_path(self) -> str:
        return f"{self.base}/status"

    @property
    def control_path(self) -> str:
        return f"{self.base}/control"

    def switchover_path(self, group: str = "") -> str:
        return f"{self.control_path}/switchover" + (f"/{group}" if group else "")

    def maintenance_path(self, node: str = "") -> str:
        return f"{self.control_path}/maintenance" + (f"/{node}" if node else "")

    # layout and ACLs (coordinator) --------------------------------------------------------
    def node_status_path(self, node: str) -> str:
        return f"{self.status_path}/{node}"

    def report_path(self, node: str) -> str:
        return f"{self.status_path}/{node}/{REPORT}"

    def _require_access(self) -> TreeAccess:
        if self.access is None:
            raise StoreError("no agent registry: the coordinator names every node's identity "
                             "in the tree's ACLs; set STACKHA_AGENT_REGISTRY to the file "
                             "`stackha credentials issue NODE` writes")
        return self.access

    @_translated
    def ensure_layout(self, agent: Identity | None = None, take_over: bool = False) -> list[str]:
        """Create the tree with its ACLs, or bring them back to the design; only the
        coordinator calls this. A znode that grants anything to anyone else is refused,
        named with the ACL found, unless ``take_over`` (``stackha init``): then its ACL is
        reset and whatever someone else could have written (versions, statuses) is deleted.
        ``agent`` is no longer used: every node has its own identity (store.registry).
        Returns what was changed, one line each."""
        del agent
        if self.identity is None:
            for path, data in self._fixed_nodes():
                self._create_if_missing(path, data, OPEN_ACL_UNSAFE)
            return []
        access = self._require_access()
        known = frozenset(who.split(":", 1)[0] for who in
                          [access.coordinator, *access.nodes.values(), *self.known_digests])
        actions: list[str] = []
        parts = self.base.strip("/").split("/")
        # The chroot may be shared with other clusters (and ZooKeeper's root is open by
        # default): only this cluster's tree is owned and checked.
        for depth in range(1, len(parts)):
            self._create_if_missing("/" + "/".join(parts[:depth]), b"", access.config_acl())
        config = access.grants_config()
        # Could someone else have written below the versions? Then no version is the
        # coordinator's for sure (ZooKeeper does not record who created a znode).
        suspect = False
        for path, data in self._fixed_nodes():
            writable = self._own(path, data, config, known, take_over, actions)
            suspect |= writable and path in (self.base, f"{self.base}/config",
                                              self.current_path, self.versions_path)
        for node in sorted(access.nodes):
            self._own(self.node_status_path(node), access.report_plan(node),
                      access.grants_node_status(node), known, take_over, actions)
            plan = access.report_plan(node)
            if self.client.get(self.node_status_path(node))[0] != plan:
                self.client.set(self.node_status_path(node), plan)
        self._own_statuses(access, known, take_over, actions)
        self._own_controls(access, known, take_over, actions)
        if take_over:
            self._own_versions(access, known, suspect, actions)
        for line in actions:
            log.warning("event=tree_acl_changed change=%r", line)
        for node in sorted(set(access.roles) - set(access.nodes)):
            # Without an identity it can neither read its role files nor report.
            log.warning("event=node_unregistered node=%s fix=%r", node,
                        f"stackha credentials issue {node}")
        return actions

    def _fixed_nodes(self) -> list[tuple[str, bytes]]:
        return [(self.base, b""), (f"{self.base}/config", b""), (self.current_path, b"0"),
                (self.versions_path, b""), (self.status_path, b""), (self.control_path, b""),
                (self.switchover_path(), b""), (self.maintenance_path(), b"")]

    def _own_controls(self, access: TreeAccess, known: frozenset[str], take_over: bool,
                      actions: list[str]) -> None:
        """Requests are the coordinator's alone (every node reads them): one that someone
        else could have written is refused, or deleted on a take-over (an agent obeys it)."""
        kinds = {"switchover", "maintenance"}
        for name in sorted(self.client.get_children(self.control_path)):
            path = f"{self.control_path}/{name}"
            if name not in kinds:
                if not take_over:
                    raise StoreError(f"{path}: not a stackha control node; nothing published "
                                     "(run `stackha init`)")
                self._delete(path, "not a stackha control node", actions)
                continue
            for child in sorted(self.client.get_children(path)):
                child_path = f"{path}/{child}"
                try:
                    found, _stat = self.client.get_acls(child_path)
                except NoNodeError:
                    continue
                finding = compare(child_path, found, access.grants_config(), known)
                if finding is None:
                    continue
                if finding.foreign or self.client.get_children(child_path):
                    if not take_over:
                        raise StoreError(finding.line())
                    self._delete(child_path, "a request someone else could write", actions)
                else:
                    self.client.set_acls(child_path, access.config_acl())

    def _own(self, path: str, data: bytes, grants: Mapping[str, int], known: frozenset[str],
             take_over: bool, actions: list[str]) -> bool:
        """Create ``path`` with the designed ACL or bring its ACL back to it; True when it
        let someone else change it (more than READ: its content is not to be trusted). A
        grant of READ only (an older design's shared agent identity, say) leaked data but
        changed nothing."""
        acl = [ACL(perms, Id("digest", who)) for who, perms in grants.items()]
        try:
            self.client.create(path, data, acl=acl)
            actions.append(f"{path}: created")
            return False
        except NodeExistsError:
            pass
        except NoAuthError as exc:
            # ZooKeeper checks the parent's CREATE right before the name: the znode may
            # exist all the same (a squatter's), and then it is named below.
            if self.client.exists(path) is None:
                parent = path.rsplit("/", 1)[0] or "/"
                raise StoreError(f"{path}: the coordinator may not create it: {parent} is "
                                 "not the coordinator's (wrong credential, or someone else "
                                 "made it: delete it as ZooKeeper's superuser, zkCli.sh: "
                                 f"deleteall {parent})") from exc
        try:
            found, stat = self.client.get_acls(path)
        except NoAuthError as exc:
            raise StoreError(f"{path}: exists and the coordinator may not even read its ACL: "
                             f"delete it as ZooKeeper's superuser (zkCli.sh: deleteall {path})"
                             ", then run `stackha init`") from exc
        finding = compare(path, found, grants, known)
        if finding is None:
            return False
        if finding.foreign and not take_over:
            raise StoreError(finding.line())
        try:
            self.client.set_acls(path, acl, version=stat.aversion)
        except NoAuthError as exc:
            if take_over and self._recreated(path, data, acl):
                actions.append(f"{path}: deleted and made again (was "
                               f"{', '.join(acl_text(a) for a in found)})")
                return _writable(finding)
            raise StoreError(f"{path}: ACL {', '.join(acl_text(a) for a in found)} gives the "
                             "coordinator no ADMIN right, so it cannot take the znode over: "
                             f"delete it as ZooKeeper's superuser (zkCli.sh: deleteall {path}), "
                             "then run `stackha init`") from exc
        actions.append(f"{path}: ACL set (was {', '.join(acl_text(a) for a in found)})")
        return _writable(finding)

    def _recreated(self, path: str, data: bytes, acl: list[ACL]) -> bool:
        """A znode the coordinator may not re-ACL but may delete (the parent is its own now):
        possible for a squatter's leaf, such as an ephemeral status."""
        try:
            self.client.delete(path, recursive=True)
            self.client.create(path, data, acl=acl)
        except NoAuthError:
            return False
        return True

    def _delete(self, path: str, why: str, actions: list[str]) -> None:
        try:
            self.client.delete(path, recursive=True)
        except NoNodeError:
            return
        except NoAuthError as exc:
            raise StoreError(f"{path}: {why}, and the coordinator cannot delete it: delete it as "
                             f"ZooKeeper's superuser (zkCli.sh: deleteall {path})") from exc
        actions.append(f"{path}: deleted ({why})")

    def _own_statuses(self, access: TreeAccess, known: frozenset[str], take_over: bool,
                      actions: list[str]) -> None:
        """Statuses: only a registered node's parent, holding only that node's report."""
        for name in sorted(self.client.get_children(self.status_path)):
            path = self.node_status_path(name)
            if name not in access.nodes:
                try:
                    found, stat = self.client.get_acls(path)
                except NoNodeError:
                    continue
                finding = compare(path, found, {access.coordinator: ALL}, known)
                if take_over or stat.ephemeralOwner:
                    self._delete(path, "a status for no registered node of the spec", actions)
                elif finding is not None and finding.foreign:
                    raise StoreError(finding.line())
                continue
            for child in self.client.get_children(path):
                child_path = f"{path}/{child}"
                try:
                    found, _stat = self.client.get_acls(child_path)
                except NoNodeError:
                    continue
                finding = compare(child_path, found, access.grants_report(name), known) \
                    if child == REPORT else None
                if child != REPORT or (finding is not None and finding.foreign):
                    if not take_over:
                        raise StoreError(finding.line() if finding is not None else
                                         f"{child_path}: not a status report; nothing "
                                         "published (run `stackha init`)")
                    self._delete(child_path, "not made by the node's own agent", actions)

    def _own_versions(self, access: TreeAccess, known: frozenset[str], suspect: bool,
                      actions: list[str]) -> None:
        """On a take-over, versions someone else could have written (all of them when the
        tree above them was writable by others) are deleted, the others get the designed
        ACLs, and current moves to the newest version left when it points nowhere."""
        config = access.grants_config()
        for name in sorted(self.client.get_children(self.versions_path)):
            path = f"{self.versions_path}/{name}"
            found, _ = self.client.get_acls(path)
            findings = [compare(path, found, config, known)]
            roles = self.client.get_children(path)
            for role in roles:
                role_found, _ = self.client.get_acls(f"{path}/{role}")
                findings.append(compare(f"{path}/{role}", role_found,
                                        access.grants_role(role), known))
            if suspect or any(_writable(f) for f in findings) \
                    or any(role not in ROLE_PREFIXES for role in roles):
                why = ("below a tree someone else could write" if suspect
                       else "someone else could write it")
                self._delete(path, f"a version {why}", actions)
                continue
            if findings[0] is not None:
                self.client.set_acls(path, access.config_acl())
            for role, finding in zip(roles, findings[1:], strict=True):
                if finding is not None:
                    self.client.set_acls(f"{path}/{role}", access.role_acl(role))
            if not roles:
                self._split_whole_version(path, actions)
        data, stat = self.client.get(self.current_path)
        number = _parse_number(data)
        remaining = self.version_numbers()
        if number is not None and number not in remaining:
            target = max(remaining) if remaining else 0
            self.client.set(self.current_path, str(target).encode(), version=stat.version)
            actions.append(f"{self.current_path}: set to {target} (was {number})")

    def _split_whole_version(self, path: str, actions: list[str]) -> None:
        """A version from before role parts holds every file, readable by every node: its
        files move into parts with role ACLs (one transaction, the content unchanged)."""
        data, stat = self.client.get(path)
        try:
            manifest, parts = split_document(data)
        except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
            return  # unreadable already: `config repair` and the readers report it
        if not parts:
            return
        transaction = self.client.transaction()
        transaction.set_data(path, manifest, version=stat.version)
        for role, part in parts.items():
            transaction.create(f"{path}/{role}", part, acl=self._version_acl(role))
        failures = [r for r in transaction.commit() if isinstance(r, Exception)]
        if failures:
            raise StoreError(f"{path}: could not split into role parts: "
                             f"{type(failures[0]).__name__}")
        actions.append(f"{path}: files moved into role parts {', '.join(sorted(parts))}")

    def _create_if_missing(self, path: str, data: bytes, acl: list[ACL]) -> None:
        try:
            self.client.create(path, data, acl=acl)
        except NodeExistsError:
            pass
        except NoAuthError as exc:
            raise StoreError(f"{path}: not allowed to create (wrong credential?)") from exc

    # configuration ------------------------------------------------------------------------
    @_translated
    def current_number(self) -> int | None:
        try:
            data, _ = self.client.get(self.current_path)
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{self.current_path}: not allowed to read") from exc
        return _parse_number(data)

    @_translated
    def current_pointer(self) -> CurrentPointer:
        """The current node as it is: a number, nothing yet, or damage named in one line."""
        try:
            data, stat = self.client.get(self.current_path)
        except NoNodeError:
            return CurrentPointer(self.current_path, None, None)
        except NoAuthError as exc:
            raise StoreError(f"{self.current_path}: not allowed to read") from exc
        number = _parse_number(data)
        damage = ""
        if number is None and (data or b"").strip() not in (b"", b"0"):
            damage = f"{self.current_path}: holds {_shown(data)}, not a version number"
        return CurrentPointer(self.current_path, number, stat.version, damage)

    def version_location(self, number: int) -> str:
        return f"{self.versions_path}/{_version_name(number)}"

    @_translated
    def set_current(self, number: int, expected: CurrentPointer) -> None:
        """Point current at ``number`` (0: none), if it is still as ``expected`` was read."""
        if expected.revision is None:
            raise StoreError(f"{self.current_path} missing: run push-config as coordinator")
        try:
            self.client.set(self.current_path, str(number).encode(), version=expected.revision)
        except BadVersionError as exc:
            raise ConcurrentChange(f"{self.current_path} changed while being repaired") from exc
        except NoAuthError as exc:
            raise StoreError(f"{self.current_path}: not allowed to write") from exc
        log.info("event=current_set version=%d", number)

    @_translated
    def read_version(self, number: int) -> ConfigVersion | None:
        """Version ``number``, None when it does not exist; VersionUnreadable when its node
        holds no valid version document. Only the role parts this credential may read are
        read: the others are named in ``ConfigVersion.withheld``."""
        path = f"{self.versions_path}/{_version_name(number)}"
        try:
            data, _ = self.client.get(path)
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{self.versions_path}: not allowed to read") from exc
        parts: dict[str, bytes | None] = {}
        # The parts in one round trip, not one each (7 ms apiece on a loaded VM).
        pending = {role: self.client.get_async(f"{path}/{role}") for role in part_names(data)}
        for role, result in pending.items():
            try:
                parts[role] = result.get()[0]
            except NoAuthError:
                parts[role] = None
            except NoNodeError:
                parts[role] = b""  # named by the manifest, gone: damage, not withheld
        merged, problems = merge_document(data, parts, f"version {number}")
        if merged is None:
            raise VersionUnreadable(problems)
        version, problems = parse_version(merged, f"version {number}")
        if version is None:
            raise VersionUnreadable(problems)
        return version

    @_translated
    def version_numbers(self) -> list[int]:
        try:
            names = self.client.get_children(self.versions_path)
        except NoNodeError:
            return []
        return sorted(n for n in (_parse_number(x.encode()) for x in names) if n)

    @_translated
    def publish(self, document: Callable[[int], bytes], expected: int | None,
                mycat: MycatLayoutWrite | None = None) -> int:
        """Publish ``document(n)`` as version n = current + 1, if current is still ``expected``.

        ``mycat``: MyCat's own layout, written in the same transaction (see store.mycatzk).
        Raises ConcurrentChange when another coordinator got there first.
        """
        try:
            data, stat = self.client.get(self.current_path)
        except NoNodeError as exc:
            raise StoreError(f"{self.current_path} missing: run push-config as coordinator") \
                from exc
        current = _parse_number(data) or 0
        if (expected or 0) != current:
            raise ConcurrentChange(f"current version moved from {expected} to {current}")
        number = max([current, *self.version_numbers()]) + 1
        if self.identity is not None:
            self._require_access()
        payload = document(number)
        # What goes over the wire is the manifest and the role parts, in one transaction.
        manifest, role_parts = split_document(payload)
        size = len(manifest) + sum(len(p) for p in role_parts.values())
        if max(len(payload), size) > MAX_VERSION_BYTES:
            raise VersionTooLarge(
                f"version {number} is {max(len(payload), size)} bytes, over the "
                f"{MAX_VERSION_BYTES} byte limit of one ZooKeeper transaction; nothing was "
                "written")
        plan = None
        if mycat is not None:
            owner = self.identity.acl(Permissions.ALL) if self.identity else None
            plan = plan_layout(self.client, mycat.target, mycat.layout,
                               layout_acls(owner, mycat.target.readers))
            if size + plan.size > MAX_VERSION_BYTES:
                raise VersionTooLarge(
                    f"version {number} ({size} bytes) and MyCat's ZooKeeper layout "
                    f"({plan.size} bytes) exceed the {MAX_VERSION_BYTES} byte limit of one "
                    "ZooKeeper transaction; nothing was written")
        path = f"{self.versions_path}/{_version_name(number)}"
        transaction = self.client.transaction()
        transaction.check(self.current_path, stat.version)
        transaction.create(path, manifest, acl=self._version_acl(None))
        for role, part in role_parts.items():
            transaction.create(f"{path}/{role}", part, acl=self._version_acl(role))
        transaction.set_data(self.current_path, str(number).encode(), version=stat.version)
        for op in plan.ops if plan else ():
            op(transaction)
        results = transaction.commit()
        failures = [r for r in results if isinstance(r, Exception)]
        if any(isinstance(r, (BadVersionError, NodeExistsError, NoNodeError)) for r in failures):
            raise ConcurrentChange("another coordinator published at the same time")
        real = [r for r in failures if not isinstance(r, RolledBackError)]
        if real or failures:
            raise StoreError(f"publication of version {number} failed: "
                             f"{type((real or failures)[0]).__name__}")
        log.info("event=published version=%d bytes=%d", number, len(payload))
        if plan is not None and mycat is not None:
            log.info("event=mycat_layout_written base=%s written=%s deleted=%s", mycat.target.base,
                     ",".join(plan.written) or "-", ",".join(plan.deleted) or "-")
        return number

    def _version_acl(self, role: str | None) -> list[ACL]:
        """Never copied from an existing znode: a squatter's open ACL would spread."""
        if self.identity is None:
            return OPEN_ACL_UNSAFE
        access = self._require_access()
        return access.config_acl() if role is None else access.role_acl(role)

    @_translated
    def watch_current(self, callback: Callable[[int | None], None]) -> None:
        def on_change(data: bytes | None, _stat: object) -> None:
            callback(_parse_number(data) if data is not None else None)

        self.client.DataWatch(self.current_path, on_change)

    # status -------------------------------------------------------------------------------
    @_translated
    def put_status(self, status: NodeStatus) -> None:
        node, data = status.node, status.to_json()
        path = self.report_path(node)
        stat = self.client.exists(path)
        session = self.client.client_id[0] if self.client.client_id else None
        if stat is not None and stat.ephemeralOwner == session:
            self.client.set(path, data)
            return
        acl = self._report_acl(node)
        if stat is not None:
            # Left by this node's previous agent (killed, restarted before its session
            # expired): writing into it would vanish with that session, so take it over.
            try:
                self.client.delete(path)
            except NoNodeError:
                pass
            log.info("event=status_node_taken_over node=%s previous_session=%#x", node,
                     stat.ephemeralOwner)
        try:
            self.client.create(path, data, acl=acl, ephemeral=True)
        except NodeExistsError:
            self.client.set(path, data)
        except NoAuthError as exc:
            raise StoreError(self._not_yours(path, node)) from exc

    def _not_yours(self, path: str, node: str) -> str:
        user = self.identity.user if self.identity else "(none)"
        return (f"{path}: not allowed to report as node {node} with credential {user}: each "
                "node reports only under its own identity (stackha credentials issue, then "
                "stackha init)")

    def _report_acl(self, node: str) -> list[ACL]:
        parent = self.node_status_path(node)
        if self.identity is None:
            self.client.ensure_path(parent)
            return OPEN_ACL_UNSAFE
        try:
            data, _ = self.client.get(parent)
        except NoNodeError as exc:
            raise StoreError(f"{parent} does not exist: node {node} is not registered with "
                             f"the coordinator (stackha credentials issue {node}, then "
                             "stackha init)") from exc
        except NoAuthError as exc:
            raise StoreError(self._not_yours(parent, node)) from exc
        acl = report_acl_from_plan(data, self.identity.acl_id)
        if acl is None:
            raise StoreError(f"{parent}: holds no report ACL plan: run stackha init")
        return acl

    @_translated
    def delete_status(self, node: str) -> None:
        try:
            self.client.delete(self.report_path(node))
        except (NoNodeError, KazooException):
            pass

    @_translated
    def status_of(self, node: str) -> NodeStatus | None:
        try:
            return parse_status(node, self.client.get(self.report_path(node))[0])
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{self.report_path(node)}: not allowed to read") from exc

    @_translated
    def statuses(self) -> dict[str, NodeStatus]:
        """Every node's status, parsed tolerantly; an empty status node is left out."""
        result: dict[str, NodeStatus] = {}
        try:
            names = self.client.get_children(self.status_path)
        except NoNodeError:
            return result
        except NoAuthError as exc:
            raise StoreError(f"{self.status_path}: not allowed to list") from exc
        for name in names:
            try:
                status = parse_status(name, self.client.get(self.report_path(name))[0])
            except (NoNodeError, NoAuthError):
                continue
            if status is not None:
                result[name] = status
        return result

    # operator requests (coordinator writes, agents read) --------------------------------------
    def _control_acl(self) -> list[ACL]:
        return OPEN_ACL_UNSAFE if self.identity is None else self._require_access().config_acl()

    def _put_control(self, path: str, data: bytes) -> None:
        acl = self._control_acl()
        for parent in (self.control_path, path.rsplit("/", 1)[0]):
            self._create_if_missing(parent, b"", acl)
        try:
            self.client.create(path, data, acl=acl)
        except NodeExistsError:
            self.client.set(path, data)

    def _get_control(self, path: str) -> bytes | None:
        try:
            return self.client.get(path)[0]
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{path}: not allowed to read") from exc

    def _children(self, path: str) -> list[str]:
        try:
            return sorted(self.client.get_children(path))
        except NoNodeError:
            return []

    @_translated
    def put_switchover(self, request: SwitchoverRequest) -> None:
        self._put_control(self.switchover_path(request.group), request.to_json())

    @_translated
    def delete_switchover(self, group: str) -> bool:
        try:
            self.client.delete(self.switchover_path(group))
        except NoNodeError:
            return False
        return True

    @_translated
    def switchover(self, group: str) -> SwitchoverRequest | None:
        return parse_switchover(group, self._get_control(self.switchover_path(group)))

    @_translated
    def put_maintenance(self, maintenance: Maintenance) -> None:
        self._put_control(self.maintenance_path(maintenance.node), maintenance.to_json())

    @_translated
    def delete_maintenance(self, node: str) -> bool:
        try:
            self.client.delete(self.maintenance_path(node))
        except NoNodeError:
            return False
        return True

    @_translated
    def maintenance(self) -> dict[str, Maintenance]:
        """Every node in maintenance."""
        found = {}
        for node in self._children(self.maintenance_path()):
            entry = parse_maintenance(node, self._get_control(self.maintenance_path(node)))
            if entry is not None:
                found[node] = entry
        return found

    @_translated
    def watch_switchover(self, group: str,
                         callback: Callable[[SwitchoverRequest | None], None]) -> None:
        """``callback`` now and on every change of the group's request (None: none)."""
        def on_change(data: bytes | None, _stat: object) -> None:
            callback(parse_switchover(group, data))

        self.client.DataWatch(self.switchover_path(group), on_change)

    @_translated
    def watch_maintenance(self, node: str,
                          callback: Callable[[Maintenance | None], None]) -> None:
        def on_change(data: bytes | None, _stat: object) -> None:
            callback(parse_maintenance(node, data))

        self.client.DataWatch(self.maintenance_path(node), on_change)

    # MyCat's own ZooKeeper mode -------------------------------------------------------------
    @_translated
    def request_mycat_reload(self, target: MycatZkTarget, myids: Sequence[str]) -> list[str]:
        """Ask MyCat nodes running with loadZk=true to re-read their layout."""
        owner = self.identity.acl(Permissions.ALL) if self.identity else None
        return send_reload(self.client, target, owner, list(myids))


def _writable(finding: AclFinding | None) -> bool:
    return finding is not None and any(a.perms & ~READ for a in finding.foreign)


# Version node names are zero-padded to 10 digits; a larger "number" is damage, not a version
# (taken as one, it would push the next version past any sane name).
_MAX_NUMBER = 9_999_999_999


def _parse_number(data: bytes | None) -> int | None:
    raw = (data or b"").strip()
    if not raw.isdigit() or len(raw) > 10:
        return None
    number = int(raw)
    return number if 0 < number <= _MAX_NUMBER else None


def _shown(data: bytes | None, limit: int = 40) -> str:
    """A short printable form of a node's bytes for a one-line report."""
    raw = data or b""
    shown = repr(raw[:limit])
    return shown + (f" and {len(raw) - limit} more bytes" if len(raw) > limit else "")
