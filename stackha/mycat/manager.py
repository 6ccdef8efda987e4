"""What stackha does on MyCat's manager port (9066), and which reload a config change needs.

The manager port speaks the MySQL protocol; stackha.checks.mysqlwire talks to it, against
MyCat 1.6 and against mycat-standin (``stackha.lab.standin``) alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stackha.checks.mysqlwire import Connection, MysqlError

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

logger = logging.getLogger(__name__)



class ManagerError(Exception):
    """A manager command failed; ``code`` is the MySQL error number when the server sent one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class ManagerUnavailable(ManagerError):
    """The manager port could not be reached, or the connection broke."""


class ManagerNoAnswer(ManagerUnavailable):
    """Connected and logged in, the command was sent, and no answer came in time. MyCat 1.6
    does this to ``reload @@config_all`` when a new backend does not answer: it keeps running
    the old configuration and never replies."""


class ReloadRefused(ManagerError):
    """``reload @@config_all`` was refused on every attempt; the server's last message."""

    def __init__(self, message: str, code: int | None = None, attempts: int = 1) -> None:
        super().__init__(message, code)
        self.attempts = attempts


class ManagerClient:
    """MyCat manager port commands; one short connection per command."""

    def __init__(self, host: str, port: int, user: str, password: str,
                 timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.timeout = timeout

    def _run(self, command: str) -> list[dict[str, Any]]:
        # Nothing is sent but the login and the command (no autocommit, no init command):
        # the manager understands only its own commands.
        try:
            conn = Connection.open(self.host, self.port, self.user, self.password,
                                   timeout=self.timeout)
        except MysqlError as exc:
            if not exc.from_server:
                raise ManagerUnavailable(f"{command}: {exc.message}", exc.code) from exc
            raise ManagerError(exc.message, exc.code) from exc  # the server refused the login
        try:
            return conn.query(command).dicts()
        except MysqlError as exc:
            if not exc.from_server:
                raise ManagerNoAnswer(f"{command}: no answer within {self.timeout:g} s "
                                      f"({exc.message})", exc.code) from exc
            raise ManagerError(exc.message, exc.code) from exc
        finally:
            conn.close()  # the command's outcome is known; a failed goodbye changes nothing

    def heartbeat(self) -> list[dict[str, Any]]:
        """``show @@heartbeat``: one dict per backend host; RS_CODE 1 means healthy."""
        return self._run("show @@heartbeat")

    def datasource(self) -> list[dict[str, Any]]:
        """``show @@datasource``: one dict per dataNode and host."""
        return self._run("show @@datasource")

    def databases(self) -> list[dict[str, Any]]:
        """``show @@database``: one row per logical schema MyCat runs (column DATABASE)."""
        return self._run("show @@database")

    def datanodes(self, schema: str) -> list[dict[str, Any]]:
        """``show @@datanode where schema = SCHEMA``: the schema's dataNodes (NAME, DATHOST
        as dataHost/database, ...). MyCat 1.6.6.1 answers the bare command with no rows."""
        if not schema.replace("_", "").isalnum():
            raise ManagerError(f"schema name {schema!r}: not sent to the manager port")
        return self._run(f"show @@datanode where schema = {schema}")

    def version(self) -> str:
        """``show @@version``; also proves the login worked."""
        rows = self._run("show @@version")
        return str(next(iter(rows[0].values()))) if rows else ""

    def reload_config(self) -> None:
        """``reload @@config``: users, schemas and rules; backend pools are kept."""
        self._run("reload @@config")
        logger.info("event=mycat_reload kind=config host=%s port=%d", self.host, self.port)

    def reload_config_all(self, retries: int = 5, backoff: float = 0.5) -> None:
        """``reload @@config_all``, retried while the server refuses it.

        MyCat refuses it while a client is inside a transaction; waiting ``backoff``, then
        twice that, and so on usually lets the transactions finish. Raises ``ReloadRefused``
        with the server's message when every attempt was refused; an unreachable manager port
        raises ``ManagerUnavailable`` at once.
        """
        attempts = retries + 1
        for attempt in range(1, attempts + 1):
            try:
                self._run("reload @@config_all")
            except ManagerUnavailable:
                raise
            except ManagerError as exc:
                logger.warning("event=mycat_reload_refused kind=config_all attempt=%d of=%d "
                               "error=%r", attempt, attempts, exc.message)
                if attempt == attempts:
                    raise ReloadRefused(exc.message, exc.code, attempts) from exc
                time.sleep(backoff * 2 ** (attempt - 1))
            else:
                logger.info("event=mycat_reload kind=config_all host=%s port=%d attempt=%d",
                            self.host, self.port, attempt)
                return

    def offline(self) -> None:
        """``offline``: the SQL port stops answering pings and taking new logins."""
        self._run("offline")
        logger.info("event=mycat_offline host=%s port=%d", self.host, self.port)

    def online(self) -> None:
        """``online``: undo ``offline``."""
        self._run("online")
        logger.info("event=mycat_online host=%s port=%d", self.host, self.port)


# --------------------------------------------------------------------------------------------
# Which reload a change needs
# --------------------------------------------------------------------------------------------

_Canonical = tuple[str, tuple[tuple[str, str], ...], str, tuple[Any, ...]]
# MyCat builds its backend pools from these; reload @@config leaves them as they were.
_BACKEND_ELEMENTS = ("dataHost", "dataNode")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _canonical(elem: ET.Element) -> _Canonical:
    """An element without comments, formatting or attribute order: what MyCat sees of it."""
    children = tuple(_canonical(c) for c in elem if isinstance(c.tag, str))
    return (_local(elem.tag), tuple(sorted(elem.attrib.items())), (elem.text or "").strip(),
            children)


def _canonical_document(root: ET.Element) -> _Canonical:
    # MyCat keys the top-level elements (schema, dataNode, dataHost, user, tableRule,
    # function) by name, so their order does not matter; below them it can (writeHost order).
    children = tuple(sorted(_canonical(c) for c in root if isinstance(c.tag, str)))
    return (_local(root.tag), tuple(sorted(root.attrib.items())), (root.text or "").strip(),
            children)


def _parse(data: bytes | None) -> ET.Element | None:
    import xml.etree.ElementTree as ET  # a MyCat node's only: 0.6 MiB elsewhere

    if data is None:
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError:
        return None


def _backend_elements(root: ET.Element) -> list[_Canonical]:
    # Sorted: MyCat finds dataHosts and dataNodes by name, so their order does not matter.
    return sorted(_canonical(c) for c in root
                  if isinstance(c.tag, str) and _local(c.tag) in _BACKEND_ELEMENTS)


def system_changes(old_files: Mapping[str, bytes], new_files: Mapping[str, bytes],
                   prefix: str = "mycat/") -> tuple[str, ...]:
    """Pure: the ``<system>`` properties of server.xml whose values differ, sorted.

    MyCat 1.6 reads them when it starts; neither ``reload @@config`` nor ``config_all`` takes
    them (``MycatConfig.reload`` is handed users, schemas, dataNodes, dataHosts, the cluster
    and the firewall, and no SystemConfig: javap of the 1.6.6.1 jar).
    Nothing when either side has no server.xml or one that does not parse."""
    name = f"{prefix}server.xml"
    old = _system_properties(_parse(old_files.get(name)))
    new = _system_properties(_parse(new_files.get(name)))
    if old is None or new is None:
        return ()
    return tuple(sorted(n for n in old.keys() | new.keys() if old.get(n) != new.get(n)))


def _system_properties(root: ET.Element | None) -> dict[str, str] | None:
    if root is None:
        return None
    found: dict[str, str] = {}
    for system in root:
        if isinstance(system.tag, str) and _local(system.tag) == "system":
            for prop in system:
                if isinstance(prop.tag, str) and _local(prop.tag) == "property" \
                        and "name" in prop.attrib:
                    found[prop.attrib["name"]] = (prop.text or "").strip()
    return found


def _same_content(old: bytes | None, new: bytes | None, name: str) -> bool:
    if old == new:
        return True
    if not name.endswith(".xml"):
        return False
    old_root, new_root = _parse(old), _parse(new)
    return old_root is not None and new_root is not None and \
        _canonical_document(old_root) == _canonical_document(new_root)


def reload_kind(old_files: Mapping[str, bytes], new_files: Mapping[str, bytes],
                prefix: str = "mycat/") -> str | None:
    """Which manager reload makes MyCat take ``new_files`` after ``old_files``.

    Only paths under ``prefix`` count. None: nothing MyCat reads changed (XML files are
    compared without comments, whitespace and attribute order). "config_all": a dataHost or
    dataNode element of schema.xml changed, appeared or went away, or schema.xml itself did
    or cannot be parsed. "config": anything else changed (users, schemas, tables, rules, ...).
    """
    names = sorted({n for n in (*old_files, *new_files) if n.startswith(prefix)})
    changed = [n for n in names
               if not _same_content(old_files.get(n), new_files.get(n), n[len(prefix):])]
    if not changed:
        return None
    schema_name = f"{prefix}schema.xml"
    if schema_name in changed:
        old_root = _parse(old_files.get(schema_name))
        new_root = _parse(new_files.get(schema_name))
        if old_root is None or new_root is None:
            return "config_all"
        if _backend_elements(old_root) != _backend_elements(new_root):
            return "config_all"
    return "config"
