"""How the agent reloads and checks MyCat: through its manager port and its SQL port.

After the mycat role's files are written, ``ManagerReload`` sends ``reload @@config`` or
``reload @@config_all``, whichever ``reload_kind`` says the change needs (config_all is
retried with backoff while MyCat refuses it for open transactions). A failed reload makes
``FileSync`` put the old files back and reload again, exactly as for nginx.

Passwords never come from the command line: from a file when one is given, otherwise from
the ``server.xml`` in MyCat's conf directory (the account's ``password`` property).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackha.checks.probes import check_mysql, check_tcp
from stackha.model.retry import Retryable
from stackha.mycat.manager import (
    ManagerClient,
    ManagerError,
    ManagerNoAnswer,
    ManagerUnavailable,
    reload_kind,
)
from stackha.mycat.myid import MYID_FILE

if TYPE_CHECKING:
    # What MyCat must report after a reload: the mycat role's code, with the XML model
    # behind it, loaded by a node that has the role only (0.5 MiB resident, measured).
    from stackha.mycat.running import Expected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MycatManagerSettings:
    """Where MyCat's manager port is and which account reloads through it."""

    host: str = "127.0.0.1"
    port: int = 9066
    user: str = ""
    password_file: Path | None = None
    retries: int = 5
    backoff: float = 0.5
    timeout: float = 5.0
    # Seconds to wait after `offline` on agent stop (None: no drain), so the directors'
    # health checks take the node out before its services go down.
    drain_wait: float | None = None
    # After a reload, ask MyCat what it runs (schemas, dataNodes, users) and fail the reload
    # when that is not the new files; looked at this many times, ``verify_wait`` apart (a
    # ZooKeeper-triggered reload of MyCat's own may still be under way).
    verify: bool = True
    verify_attempts: int = 3
    verify_wait: float = 1.0
    # ZooKeeper mode (loadZk=true): MyCat re-reads the layout push-config wrote on its own;
    # how many ``verify_wait`` steps the agent waits for that before reloading it itself
    # (in the e2e drill one MyCat missed a layout change after a ZooKeeper outage).
    zk_wait_attempts: int = 5


@dataclass(frozen=True)
class MycatHealthSettings:
    """``stackha check mycat`` as the agent runs it after a reload: a login and ``select 1``
    as ``user`` on the SQL port, or only a TCP connect without a user."""

    host: str = "127.0.0.1"
    port: int = 8066
    user: str | None = None
    password_file: Path | None = None
    timeout: float = 1.0


def password_from_server_xml(data: bytes, user: str) -> str | None:
    """Pure: the ``password`` property of ``<user name=USER>`` in server.xml, if any."""
    import xml.etree.ElementTree as ET  # a mycat node's only

    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return None
    for element in root:
        if isinstance(element.tag, str) and element.tag == "user" \
                and element.attrib.get("name") == user:
            for prop in element:
                if prop.tag == "property" and prop.attrib.get("name") == "password":
                    return (prop.text or "").strip()
    return None


def _password(password_file: Path | None, conf_dir: Path, user: str) -> str | None:
    if password_file is not None:
        return password_file.read_text().strip()
    server_xml = conf_dir / "server.xml"
    return password_from_server_xml(server_xml.read_bytes(), user) \
        if server_xml.is_file() else None


class ManagerReload:
    """A ``FileSync`` reload for MyCat; ``prepare`` is told the new files before they are
    written, so the reload kind compares them with what MyCat has loaded now."""

    def __init__(self, settings: MycatManagerSettings, conf_dir: Path,
                 start: Callable[[], str | None] | None = None) -> None:
        self.settings = settings
        self.conf_dir = conf_dir
        # Run when the manager port does not answer (the first version, or MyCat down):
        # there is nothing to reload then, only something to start.
        self.start = start
        self.kind: str | None = "config"
        # The manager password as it was before the files changed: the running MyCat still
        # checks logins against the old server.xml until the reload is done.
        self._password: str | None = None
        # What MyCat must report once the new files are loaded (None: not checked).
        self.expected: Expected | None = None
        # The reload command was sent and never answered (see ManagerNoAnswer).
        self._unanswered: str | None = None
        # The files turn on MyCat's ZooKeeper mode: MyCat reloads from ZooKeeper itself.
        self.zk_mode = False
        self.observable = True

    def prepare(self, new_files: Mapping[str, bytes]) -> None:
        old_files: dict[str, bytes] = {}
        for name in set(new_files) | {p.name for p in self.conf_dir.glob("*") if p.is_file()}:
            path = self.conf_dir / name
            if path.is_file():
                old_files[name] = path.read_bytes()
        self.kind = reload_kind(old_files, new_files, prefix="")
        self.expected = _expected(new_files)
        # Whether the manager port can tell the new files from the old ones (users, schemas,
        # dataNodes, dataHosts); a change elsewhere (a maxCon, a rule) it cannot see.
        self.observable = _expected(old_files) != self.expected
        self.zk_mode = _loads_zookeeper(new_files.get(MYID_FILE))
        try:
            self._password = _password(self.settings.password_file, self.conf_dir,
                                       self.settings.user)
        except OSError as exc:
            log.warning("event=mycat_manager_password_unreadable reason=%r", str(exc))
            self._password = None
        log.info("event=mycat_reload_planned kind=%s", self.kind or "none")

    def client(self) -> ManagerClient:
        password = self._password
        if password is None:
            password = _password(self.settings.password_file, self.conf_dir,
                                 self.settings.user) or ""
        return ManagerClient(self.settings.host, self.settings.port, self.settings.user,
                             password, timeout=self.settings.timeout)

    def set_online(self, online: bool) -> bool:
        """`online` or `offline` through the manager port; False (logged) if MyCat refused."""
        try:
            client = self.client()
            if online:
                client.online()
            else:
                client.offline()
        except (ManagerError, OSError) as exc:
            log.warning("event=mycat_%s_failed reason=%r", "online" if online else "offline",
                        getattr(exc, "message", str(exc)))
            return False
        return True

    def __call__(self) -> str | None:
        self._unanswered = None
        if self.zk_mode and self._running():
            # MyCat re-reads the layout push-config wrote along with this version. A manager
            # reload at the same moment races MyCat's own for its ruledata lock in ZooKeeper
            # (IllegalMonitorStateException in its log), so the agent waits and looks first.
            if self.observable:
                if self.check_running(self.settings.zk_wait_attempts) is None:
                    return None
                log.warning("event=mycat_zookeeper_reload_missed action=reload kind=%s",
                            self.kind or "config")
            else:
                # Nothing the manager port shows tells whether MyCat took this change from
                # ZooKeeper: let its own reload finish, then reload it for certain.
                time.sleep(self.settings.zk_wait_attempts * self.settings.verify_wait)
                log.info("event=mycat_zookeeper_reload_unobservable action=reload kind=%s",
                         self.kind or "config")
            self.kind = self.kind or "config"
        if self.kind is None:
            # Only comments or formatting changed: MyCat sees no difference; still ask it.
            return self.check_running()
        failed = self._reload()
        if failed is not None:
            return failed
        differs = self.check_running()
        if differs is not None and self._unanswered is not None:
            # MyCat's own reason: it never answered the reload and kept what it had.
            reason = f"{self._unanswered}; {differs}"
            return Retryable(reason) if isinstance(self._unanswered, Retryable) else reason
        return differs

    def _running(self) -> bool:
        try:
            self.client().version()
        except ManagerUnavailable:
            return False
        except (ManagerError, OSError):
            return True  # it answers (a refused login is checked by check_running)
        return True

    def check_running(self, attempts: int | None = None) -> str | None:
        """None when MyCat runs the prepared files (or nothing is to be checked); otherwise
        what differs, as MyCat reports it. Looked at up to ``attempts`` times."""
        attempts = attempts or self.settings.verify_attempts
        if self.expected is None or not self.settings.verify:
            return None
        expected = self.expected

        def client(user: str, password: str) -> ManagerClient:
            return ManagerClient(self.settings.host, self.settings.port, user, password,
                                 timeout=self.settings.timeout)

        from stackha.mycat.running import verify

        reason: str | None = None
        for attempt in range(1, attempts + 1):
            reason = verify(client, expected, self.settings.user)
            if reason is None:
                log.info("event=mycat_running_verified attempt=%d schemas=%d data_nodes=%d "
                         "users=%d", attempt, len(expected.schemas), len(expected.data_nodes),
                         len(expected.passwords))
                return None
            log.warning("event=mycat_running_differs attempt=%d of=%d reason=%r", attempt,
                        attempts, reason)
            if attempt < attempts:
                time.sleep(self.settings.verify_wait)
        text = f"after reload @@{self.kind or 'config'}: {reason}"
        return Retryable(text) if isinstance(reason, Retryable) else text

    def _reload(self) -> str | None:
        try:
            client = self.client()
            if self.kind == "config_all":
                client.reload_config_all(self.settings.retries, self.settings.backoff)
            else:
                client.reload_config()
        except ManagerNoAnswer as exc:
            # Not "MyCat is down" (nothing to start): what it runs now decides.
            log.warning("event=mycat_reload_unanswered kind=%s reason=%r", self.kind,
                        exc.message)
            unanswered = f"reload @@{self.kind} on {self.settings.host}:" \
                         f"{self.settings.port}: {exc.message}"
            # For config_all that is MyCat 1.6's word for a new backend that does not answer
            # (a fault of the files), however silent MyCat stays after it. A plain `reload
            # @@config` checks no backend: MyCat was busy (all its business threads taken,
            # as useGlobleTableCheck does per DDL; see mycat/validate/server.py).
            self._unanswered = Retryable(unanswered) if self.kind == "config" else unanswered
            if self.expected is None or not self.settings.verify:
                return self._unanswered
            return None
        except ManagerUnavailable as exc:
            if self.start is None:
                # Down or not answering, with nothing to start it: tried again later.
                return Retryable(f"reload @@{self.kind} on {self.settings.host}:"
                                 f"{self.settings.port}: {exc.message}")
            log.info("event=mycat_not_running action=start reason=%r", exc.message)
            return self.start()
        except ManagerError as exc:
            return f"reload @@{self.kind} on {self.settings.host}:{self.settings.port}: " \
                   f"{exc.message}"
        except OSError as exc:
            return f"reload @@{self.kind}: cannot read the manager password: {exc}"
        return None


def _loads_zookeeper(myid: bytes | None) -> bool:
    """Pure: does this myid.properties turn on loadZk?"""
    if myid is None:
        return False
    for line in myid.decode("utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "loadZk":
            return value.strip().lower() == "true"
    return False


def _expected(files: Mapping[str, bytes]) -> Expected | None:
    from stackha.mycat.running import Expected
    from stackha.mycat.validate import validate_mycat

    model, _ = validate_mycat({f"mycat/{name}": data for name, data in files.items()})
    return Expected.of(model) if model is not None else None


def mysql_health(current: Callable[[], MycatHealthSettings], conf_dir: Path
                 ) -> Callable[[], str | None]:
    """The health check: None when MyCat takes a login and answers ``select 1``. ``current``
    gives the settings at each call (the applied version's ``health_checks.mycat``)."""

    def health() -> str | None:
        settings = current()
        if not settings.user:
            return check_tcp(settings.host, settings.port, settings.timeout)
        try:
            password = _password(settings.password_file, conf_dir, settings.user)
        except OSError as exc:
            return f"cannot read the password of {settings.user}: {exc}"
        if password is None:
            return f"no password for {settings.user} (no --password-file, not in server.xml)"
        return check_mysql(settings.host, settings.port, settings.user, password,
                           settings.timeout)

    return health


def loads_zookeeper(files: Mapping[str, bytes]) -> bool:
    """Pure: do these MyCat files (their myid.properties) turn on MyCat's ZooKeeper mode?"""
    return _loads_zookeeper(files.get(MYID_FILE))
