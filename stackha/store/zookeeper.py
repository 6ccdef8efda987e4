"""ZooKeeper as stackha's configuration store.

Layout under ``<chroot>/<cluster>``::

    config/current            data: number of the current version
    config/versions/<n>       one immutable version document (zero-padded n)
    status/<node>             ephemeral, written by that node's agent

A new version and the move of ``current`` happen in one multi-op transaction guarded by the
version of ``current``: no reader ever sees half a publication and two coordinators cannot
interleave. Configuration is ACL'd to the coordinator credential (all) and the agent credential
(read); status children belong to the agent credential; anonymous clients get nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
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

from stackha.model.bundle import ConfigVersion, parse_version
from stackha.model.status import NodeStatus, parse_status
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

    # layout and ACLs (coordinator) --------------------------------------------------------
    @_translated
    def ensure_layout(self, agent: Identity | None) -> None:
        """Create the tree with its ACLs; only the coordinator calls this."""
        if self.identity is None or agent is None:
            config_acl = status_acl = OPEN_ACL_UNSAFE
        else:
            coordinator_all = self.identity.acl(Permissions.ALL)
            config_acl = [coordinator_all, agent.acl(Permissions.READ)]
            status_acl = [coordinator_all,
                          agent.acl(Permissions.READ | Permissions.CREATE | Permissions.DELETE)]
        parts = self.base.strip("/").split("/")
        for depth in range(1, len(parts) + 1):
            self._create_if_missing("/" + "/".join(parts[:depth]), b"", config_acl)
        self._create_if_missing(f"{self.base}/config", b"", config_acl)
        self._create_if_missing(self.current_path, b"0", config_acl)
        self._create_if_missing(self.versions_path, b"", config_acl)
        # ZooKeeper hides digests from getACL, so the agents learn from this node's data which
        # identity may read their status (the digest is a hash, not the password).
        readers = [self.identity.acl_id] if self.identity is not None and agent else []
        self._create_if_missing(self.status_path, json.dumps({"readers": readers}).encode(),
                                status_acl)

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
        holds no valid version document."""
        try:
            data, _ = self.client.get(f"{self.versions_path}/{_version_name(number)}")
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{self.versions_path}: not allowed to read") from exc
        version, problems = parse_version(data, f"version {number}")
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
        payload = document(number)
        if len(payload) > MAX_VERSION_BYTES:
            raise VersionTooLarge(
                f"version {number} is {len(payload)} bytes, over the {MAX_VERSION_BYTES} byte "
                "limit of one ZooKeeper znode; nothing was written")
        plan = None
        if mycat is not None:
            owner = self.identity.acl(Permissions.ALL) if self.identity else None
            plan = plan_layout(self.client, mycat.target, mycat.layout,
                               layout_acls(owner, mycat.target.readers))
            if len(payload) + plan.size > MAX_VERSION_BYTES:
                raise VersionTooLarge(
                    f"version {number} ({len(payload)} bytes) and MyCat's ZooKeeper layout "
                    f"({plan.size} bytes) exceed the {MAX_VERSION_BYTES} byte limit of one "
                    "ZooKeeper transaction; nothing was written")
        acl = self.client.get_acls(self.current_path)[0]
        transaction = self.client.transaction()
        transaction.check(self.current_path, stat.version)
        transaction.create(f"{self.versions_path}/{_version_name(number)}", payload, acl=acl)
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

    @_translated
    def watch_current(self, callback: Callable[[int | None], None]) -> None:
        def on_change(data: bytes | None, _stat: object) -> None:
            callback(_parse_number(data) if data is not None else None)

        self.client.DataWatch(self.current_path, on_change)

    # status -------------------------------------------------------------------------------
    @_translated
    def put_status(self, status: NodeStatus) -> None:
        node, data = status.node, status.to_json()
        path = f"{self.status_path}/{node}"
        stat = self.client.exists(path)
        session = self.client.client_id[0] if self.client.client_id else None
        if stat is not None and stat.ephemeralOwner == session:
            self.client.set(path, data)
            return
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
            self.client.create(path, data, acl=self._status_acl(), ephemeral=True)
        except NodeExistsError:
            self.client.set(path, data)

    def _status_acl(self) -> list[ACL]:
        if self.identity is None:
            return OPEN_ACL_UNSAFE
        data, _ = self.client.get(self.status_path)
        try:
            readers = [str(r) for r in json.loads(data.decode() or "{}").get("readers", [])]
        except (ValueError, AttributeError):
            readers = []
        others = [ACL(Permissions.READ | Permissions.DELETE, Id("digest", r)) for r in readers
                  if r.split(":")[0] != self.identity.user]
        return [self.identity.acl(Permissions.ALL), *others]

    @_translated
    def delete_status(self, node: str) -> None:
        try:
            self.client.delete(f"{self.status_path}/{node}")
        except (NoNodeError, KazooException):
            pass

    @_translated
    def status_of(self, node: str) -> NodeStatus | None:
        try:
            return parse_status(node, self.client.get(f"{self.status_path}/{node}")[0])
        except NoNodeError:
            return None
        except NoAuthError as exc:
            raise StoreError(f"{self.status_path}/{node}: not allowed to read") from exc

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
                status = parse_status(name, self.client.get(f"{self.status_path}/{name}")[0])
            except (NoNodeError, NoAuthError):
                continue
            if status is not None:
                result[name] = status
        return result

    # MyCat's own ZooKeeper mode -------------------------------------------------------------
    @_translated
    def request_mycat_reload(self, target: MycatZkTarget, myids: Sequence[str]) -> list[str]:
        """Ask MyCat nodes running with loadZk=true to re-read their layout."""
        owner = self.identity.acl(Permissions.ALL) if self.identity else None
        return send_reload(self.client, target, owner, list(myids))


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
