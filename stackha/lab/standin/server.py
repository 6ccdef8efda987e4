"""mycat-standin: the MySQL-protocol server standing in for MyCat 1.6 where stackha needs one.

What it does, read from a MyCat conf directory (``server.xml`` and ``schema.xml``):

* Logins: only the ``<user>`` accounts of ``server.xml`` with their passwords
  (mysql_native_password); anything else is refused with "access denied".
* SQL port (MyCat's 8066): every statement is passed unchanged to the first ``writeHost`` of
  the ``dataHost`` behind the **first dataNode** of the session's logical schema, using that
  dataNode's database. The stand-in does **not** shard: no routing by rule, no fan-out to the
  other dataNodes, no merging of results, no global sequences. ``show databases`` lists the
  user's schemas, ``use``/COM_INIT_DB switch between them, ``select user()`` and
  ``select database()`` are answered locally as MyCat does, and ``readOnly`` users cannot run
  writes (INSERT, UPDATE, DELETE, REPLACE, CREATE, DROP, ALTER, TRUNCATE, ...).
* Manager port (MyCat's 9066), same accounts: ``show @@heartbeat`` (runs each dataHost's
  heartbeat SQL against every writeHost now), ``show @@datasource``, ``show @@version``,
  ``reload @@config`` (users and schemas; dataHosts and dataNodes are kept, and so are backend
  connections), ``reload @@config_all`` (everything; refused while any SQL-port session is
  inside an open backend transaction), ``offline`` (SQL-port COM_PING fails and new SQL-port
  logins are refused; sessions already open keep working) and ``online``.

Limits worth knowing: prepared statements (COM_STMT_EXECUTE) only return string-typed columns
correctly, because rows are relayed as the backend's text bytes; column flags (UNSIGNED, ...)
are not relayed; ``usingDecrypt`` passwords are not supported.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import signal
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pymysql
import pymysql.connections
import pymysql.converters
from mysql_mimic import packets
from mysql_mimic import utils as mimic_utils
from mysql_mimic.auth import (
    AuthInfo,
    AuthPlugin,
    AuthState,
    Forbidden,
    IdentityProvider,
    NativePasswordAuthPlugin,
    Success,
    User,
)
from mysql_mimic.charset import CharacterSet
from mysql_mimic.connection import Connection
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES
from mysql_mimic.control import LocalControl
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import AllowedResult, ResultColumn, ResultSet
from mysql_mimic.session import BaseSession
from mysql_mimic.stream import MysqlStream
from mysql_mimic.types import ColumnType, ServerStatus
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables

NAME = "mycat-standin"
VERSION = "5.6.29-mycat-standin"
DEFAULT_SQL_PORT = 8066
DEFAULT_MANAGER_PORT = 9066

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# MySQL error numbers the stand-in answers with (mysql-mimic's ErrorCode lacks most of them).
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049
ER_SERVER_SHUTDOWN = 1053
ER_OPTION_PREVENTS_STATEMENT = 1290
ER_UNKNOWN = 1105

_IN_TRANS = ServerStatus.SERVER_STATUS_IN_TRANS
_AUTOCOMMIT = ServerStatus.SERVER_STATUS_AUTOCOMMIT

# Statements a readOnly user may not run; MyCat decides by statement type, and so do we.
_WRITE_KEYWORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "RENAME", "LOAD", "CALL", "GRANT", "REVOKE",
})

_BACKEND_CONNECT_TIMEOUT = 10
_HEARTBEAT_TIMEOUT = 5


# --------------------------------------------------------------------------------------------
# Configuration: the parts of server.xml and schema.xml the stand-in uses
# --------------------------------------------------------------------------------------------


class ConfError(Exception):
    """The MyCat conf directory cannot be used by mycat-standin."""


@dataclass(frozen=True)
class StandinUser:
    name: str
    password: str
    schemas: tuple[str, ...]
    read_only: bool = False
    default_schema: str | None = None


@dataclass(frozen=True)
class WriteHost:
    data_host: str
    name: str
    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class DataHost:
    name: str
    heartbeat_sql: str
    write_hosts: tuple[WriteHost, ...]
    max_con: int = 1000
    db_type: str = "mysql"


@dataclass(frozen=True)
class DataNode:
    name: str
    data_host: str
    database: str


@dataclass(frozen=True)
class LogicalSchema:
    name: str
    # In schema.xml order: the schema's own dataNode first, then each table's dataNodes.
    data_nodes: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    schema: str
    data_node: str
    write_host: WriteHost
    database: str


@dataclass(frozen=True)
class StandinConfig:
    users: Mapping[str, StandinUser]
    schemas: Mapping[str, LogicalSchema]
    data_nodes: Mapping[str, DataNode]
    data_hosts: Mapping[str, DataHost]
    system: Mapping[str, str] = field(default_factory=dict)

    def route(self, schema: str) -> Route:
        """Where the stand-in sends a session's statements: the schema's first dataNode."""
        logical = self.schemas.get(schema)
        if logical is None:
            raise ConfError(f"schema {schema!r} is not in schema.xml")
        if not logical.data_nodes:
            raise ConfError(f"schema {schema!r} has no dataNode")
        node = self.data_nodes[logical.data_nodes[0]]
        host = self.data_hosts[node.data_host]
        return Route(schema, node.name, host.write_hosts[0], node.database)


def expand_names(spec: str) -> list[str]:
    """Expand MyCat's name lists: ``dn$0-2`` is dn0, dn1, dn2; items are comma-separated."""
    names: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if "$" not in item:
            names.append(item)
            continue
        prefix, _, span = item.partition("$")
        start, dash, end = span.partition("-")
        if not (dash and start.isdigit() and end.isdigit()) or int(end) < int(start):
            raise ConfError(f"bad name range {item!r}")
        names.extend(f"{prefix}{i}" for i in range(int(start), int(end) + 1))
    return names


def _local(tag: str) -> str:
    # The roots are mycat:schema / mycat:server; match children by local name either way.
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if isinstance(child.tag, str) and _local(child.tag) == name]


def _properties(elem: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): (p.text or "").strip() for p in _children(elem, "property")}


def _root(data: bytes, expected: str, file_name: str) -> ET.Element:
    # ElementTree (expat) never fetches the external schema.dtd/server.dtd the DOCTYPE names.
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfError(f"{file_name}: {exc}") from exc
    if _local(root.tag) != expected:
        raise ConfError(f"{file_name}: root element is {root.tag!r}, expected mycat:{expected}")
    return root


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def parse_server_xml(data: bytes) -> tuple[dict[str, StandinUser], dict[str, str]]:
    """Users and ``<system>`` properties of a server.xml."""
    root = _root(data, "server", "server.xml")
    system: dict[str, str] = {}
    for elem in _children(root, "system"):
        system.update(_properties(elem))
    users: dict[str, StandinUser] = {}
    for elem in _children(root, "user"):
        name = elem.get("name", "").strip()
        if not name:
            raise ConfError("server.xml: <user> without a name")
        if name in users:
            raise ConfError(f"server.xml: user {name!r} is defined twice")
        props = _properties(elem)
        if props.get("usingDecrypt", "0").strip() == "1":
            raise ConfError(f"server.xml: user {name!r}: usingDecrypt is not supported by {NAME}")
        schemas = tuple(s.strip() for s in props.get("schemas", "").split(",") if s.strip())
        default = props.get("defaultSchema", "").strip() or None
        users[name] = StandinUser(
            name=name,
            password=props.get("password", ""),
            schemas=schemas,
            read_only=_is_true(props.get("readOnly")),
            default_schema=default,
        )
    return users, system


def _write_host(data_host: str, elem: ET.Element) -> WriteHost:
    name = elem.get("host", "").strip()
    url = elem.get("url", "").strip()
    if elem.get("usingDecrypt", "0").strip() == "1":
        raise ConfError(f"schema.xml: writeHost {name!r}: usingDecrypt is not supported")
    # dbDriver="native" gives HOST:PORT; dbDriver="jdbc" gives jdbc:mysql://HOST:PORT/...
    address = re.sub(r"^jdbc:mysql://", "", url).split("/", 1)[0].split("?", 1)[0]
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "3306"
    if not host or not port.isdigit():
        raise ConfError(f"schema.xml: writeHost {name!r}: bad url {url!r}")
    return WriteHost(data_host, name, host, int(port), elem.get("user", ""),
                     elem.get("password", ""))


def parse_schema_xml(
    data: bytes,
) -> tuple[dict[str, LogicalSchema], dict[str, DataNode], dict[str, DataHost]]:
    """Logical schemas, dataNodes and dataHosts of a schema.xml."""
    root = _root(data, "schema", "schema.xml")
    hosts: dict[str, DataHost] = {}
    for elem in _children(root, "dataHost"):
        name = elem.get("name", "").strip()
        beats = _children(elem, "heartbeat")
        sql = (beats[0].text or "").strip() if beats else ""
        writes = tuple(_write_host(name, w) for w in _children(elem, "writeHost"))
        if not writes:
            raise ConfError(f"schema.xml: dataHost {name!r} has no writeHost")
        max_con = elem.get("maxCon", "1000").strip()
        hosts[name] = DataHost(
            name=name,
            heartbeat_sql=sql or "select user()",
            write_hosts=writes,
            max_con=int(max_con) if max_con.isdigit() else 1000,
            db_type=elem.get("dbType", "mysql"),
        )
    nodes: dict[str, DataNode] = {}
    for elem in _children(root, "dataNode"):
        names = expand_names(elem.get("name", ""))
        # As in MyCat, a ranged dataNode takes every (dataHost, database) pair in order.
        pairs = [(h, d) for h in expand_names(elem.get("dataHost", ""))
                 for d in expand_names(elem.get("database", ""))]
        if len(pairs) != len(names):
            raise ConfError(f"schema.xml: dataNode {elem.get('name')!r}: {len(names)} names "
                            f"for {len(pairs)} dataHost/database pairs")
        for node_name, (host, database) in zip(names, pairs, strict=True):
            nodes[node_name] = DataNode(node_name, host, database)
    schemas: dict[str, LogicalSchema] = {}
    for elem in _children(root, "schema"):
        name = elem.get("name", "").strip()
        order: list[str] = expand_names(elem.get("dataNode", ""))
        for table in elem.iter():
            if isinstance(table.tag, str) and _local(table.tag) == "table":
                order.extend(expand_names(table.get("dataNode", "")))
        schemas[name] = LogicalSchema(name, tuple(dict.fromkeys(order)))
    return schemas, nodes, hosts


def check_config(config: StandinConfig) -> None:
    """Refuse references MyCat would refuse at start: unknown dataHosts, dataNodes, schemas."""
    for node in config.data_nodes.values():
        if node.data_host not in config.data_hosts:
            raise ConfError(f"dataNode {node.name!r} names unknown dataHost {node.data_host!r}")
    for schema in config.schemas.values():
        for node_name in schema.data_nodes:
            if node_name not in config.data_nodes:
                raise ConfError(f"schema {schema.name!r} names unknown dataNode {node_name!r}")
    for user in config.users.values():
        for schema_name in user.schemas:
            if schema_name not in config.schemas:
                raise ConfError(f"user {user.name!r} names unknown schema {schema_name!r}")
        if user.default_schema and user.default_schema not in user.schemas:
            raise ConfError(f"user {user.name!r}: defaultSchema is not one of its schemas")


def load_conf(conf_dir: Path) -> StandinConfig:
    """Read and check ``server.xml`` and ``schema.xml`` of a MyCat conf directory."""
    try:
        server = (conf_dir / "server.xml").read_bytes()
        schema = (conf_dir / "schema.xml").read_bytes()
    except OSError as exc:
        raise ConfError(str(exc)) from exc
    users, system = parse_server_xml(server)
    schemas, nodes, hosts = parse_schema_xml(schema)
    config = StandinConfig(users, schemas, nodes, hosts, system)
    check_config(config)
    return config


# --------------------------------------------------------------------------------------------
# SQL text helpers
# --------------------------------------------------------------------------------------------

_NOISE = re.compile(r"\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*(?!!).*?\*/|/\*!\d*|\(", re.S)


def _skip_noise(sql: str) -> str:
    """Drop leading whitespace, comments and parentheses; open ``/*!NNNNN`` comments."""
    pos = 0
    while pos < len(sql):
        match = _NOISE.match(sql, pos)
        if not match or match.end() == pos:
            break
        pos = match.end()
    return sql[pos:]


def _leading_keyword(sql: str) -> str:
    match = re.match(r"[A-Za-z_]+", _skip_noise(sql))
    return match.group(0).upper() if match else ""


def _normalise(sql: str) -> str:
    """One-line form for matching commands: no comments, single spaces, no trailing ``;``."""
    return " ".join(_skip_noise(sql).split()).rstrip("; ").strip()


def _raw_text(column: ResultColumn, value: Any) -> bytes:
    # Backend rows arrive as the backend's own text bytes; relaying them keeps values exact.
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _column_type(code: int) -> ColumnType:
    try:
        return ColumnType(code)
    except ValueError:
        return ColumnType.VAR_STRING


def _local_result(columns: Sequence[tuple[str, ColumnType]], rows: list[tuple]) -> ResultSet:
    return ResultSet(rows=rows, columns=[ResultColumn(n, t) for n, t in columns])


def _error_parts(exc: BaseException) -> tuple[int, str]:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return ER_UNKNOWN, str(exc) or type(exc).__name__


def _client_error(exc: BaseException) -> MysqlError:
    """A backend failure as the stand-in's client should see it."""
    code, message = _error_parts(exc)
    # 2000 and up are pymysql's own (client-side) numbers; a server never sends those.
    return MysqlError(message, ER_UNKNOWN if code >= 2000 else code)


# --------------------------------------------------------------------------------------------
# Backend connections (blocking pymysql, run in the state's thread pool)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ok:
    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0


Outcome = ResultSet | _Ok


_ENCODERS_ONLY = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


@dataclass
class _Backend:
    conn: pymysql.connections.Connection
    route: Route
    generation: int

    @classmethod
    def open(cls, route: Route, autocommit: bool, generation: int) -> _Backend:
        wh = route.write_host
        conn = pymysql.connect(
            host=wh.host, port=wh.port, user=wh.user, password=wh.password,
            database=route.database, charset="utf8mb4", autocommit=autocommit,
            connect_timeout=_BACKEND_CONNECT_TIMEOUT,
            # Raw bytes out: the stand-in relays values, it does not convert them (the encoders
            # stay, pymysql needs them for SET AUTOCOMMIT).
            use_unicode=False, conv=_ENCODERS_ONLY,
        )
        return cls(conn, route, generation)

    @property
    def in_transaction(self) -> bool:
        return bool((self.conn.server_status or 0) & _IN_TRANS)

    def run(self, sql: str) -> Outcome:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            if cursor.description is None:
                return _Ok(max(cursor.rowcount, 0), cursor.lastrowid or 0, cursor.warning_count)
            # pymysql keeps the column charsets only on the result's fields; binary (63) tells
            # the client to hand BLOB bytes over undecoded.
            fields = getattr(getattr(cursor, "_result", None), "fields", None) or []
            charsets = [getattr(f, "charsetnr", 0) for f in fields]
            columns = []
            for i, desc in enumerate(cursor.description):
                charset = (CharacterSet.binary if i < len(charsets) and charsets[i] == 63
                           else CharacterSet.utf8mb4)
                columns.append(ResultColumn(desc[0], _column_type(desc[1]), charset,
                                            text_encoder=_raw_text))
            return ResultSet(rows=list(cursor.fetchall()), columns=columns)

    def select(self, route: Route) -> None:
        self.conn.select_db(route.database)
        self.route = route

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _probe(write_host: WriteHost, sql: str) -> tuple[bool, int, str]:
    """Run a dataHost's heartbeat SQL on one writeHost: (ok, milliseconds, error)."""
    started = time.monotonic()
    try:
        conn = pymysql.connect(
            host=write_host.host, port=write_host.port, user=write_host.user,
            password=write_host.password, connect_timeout=_HEARTBEAT_TIMEOUT,
            read_timeout=_HEARTBEAT_TIMEOUT, write_timeout=_HEARTBEAT_TIMEOUT,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                cursor.fetchall()
        finally:
            conn.close()
    except Exception as exc:  # a heartbeat reports every failure as RS_CODE -1
        return False, int((time.monotonic() - started) * 1000), _error_parts(exc)[1]
    return True, int((time.monotonic() - started) * 1000), ""


# --------------------------------------------------------------------------------------------
# Shared server state
# --------------------------------------------------------------------------------------------


@dataclass
class _Heartbeat:
    rs_code: int = 0
    retry: int = 0
    execute_ms: int = 0
    last_active: str = ""


class _ReloadRefused(MysqlError):
    pass


class StandinState:
    """Configuration, online flag and sessions shared by both ports of one stand-in."""

    def __init__(self, conf_dir: Path, config: StandinConfig) -> None:
        self.conf_dir = conf_dir
        self.config = config
        # Bumped by reload @@config_all so sessions reopen their backend connections.
        self.generation = 0
        self.online = True
        self.sessions: set[SqlSession] = set()
        self.heartbeats: dict[tuple[str, str], _Heartbeat] = {}
        self.executed: dict[str, int] = {}
        # Blocking backend calls must not starve each other in asyncio's small default pool.
        self.executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="standin-backend")

    async def blocking(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    def reload_config(self) -> None:
        fresh = load_conf(self.conf_dir)
        # reload @@config leaves dataHosts and dataNodes as they are, like MyCat.
        merged = replace(fresh, data_hosts=self.config.data_hosts,
                         data_nodes=self.config.data_nodes)
        try:
            check_config(merged)
        except ConfError as exc:
            raise ConfError(f"{exc} (dataNode/dataHost changes need reload @@config_all)") from exc
        self.config = merged

    def reload_config_all(self) -> None:
        busy = sum(1 for session in self.sessions if session.in_transaction)
        if busy:
            raise _ReloadRefused(
                f"reload @@config_all refused: {busy} session(s) inside an open transaction;"
                " try again later", ER_UNKNOWN)
        self.config = load_conf(self.conf_dir)
        self.generation += 1
        live = {(wh.data_host, wh.name) for dh in self.config.data_hosts.values()
                for wh in dh.write_hosts}
        self.heartbeats = {k: v for k, v in self.heartbeats.items() if k in live}

    async def heartbeat_rows(self) -> list[tuple]:
        targets = [(dh, wh) for dh in self.config.data_hosts.values() for wh in dh.write_hosts]
        probes = await asyncio.gather(*(self.blocking(_probe, wh, dh.heartbeat_sql)
                                        for dh, wh in targets))
        rows = []
        for (dh, wh), (ok, elapsed, error) in zip(targets, probes, strict=True):
            beat = self.heartbeats.setdefault((dh.name, wh.name), _Heartbeat())
            beat.execute_ms = elapsed
            if ok:
                beat.rs_code, beat.retry = 1, 0
                beat.last_active = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
            else:
                beat.rs_code, beat.retry = -1, beat.retry + 1
                logger.warning("event=heartbeat_failed data_host=%s write_host=%s host=%s port=%d "
                               "error=%r", dh.name, wh.name, wh.host, wh.port, error)
            rows.append((wh.name, dh.db_type, wh.host, wh.port, beat.rs_code, beat.retry, "idle",
                         _HEARTBEAT_TIMEOUT * 1000, f"{elapsed},{elapsed},{elapsed}",
                         beat.last_active or None, "false"))
        return rows

    def datasource_rows(self) -> list[tuple]:
        active: dict[WriteHost, int] = {}
        for session in self.sessions:
            wh = session.backend_host
            if wh is not None:
                active[wh] = active.get(wh, 0) + 1
        rows = []
        for node in sorted(self.config.data_nodes.values(), key=lambda n: n.name):
            dh = self.config.data_hosts[node.data_host]
            for wh in dh.write_hosts:
                rows.append((node.name, wh.name, dh.db_type, wh.host, wh.port, "W",
                             active.get(wh, 0), 0, dh.max_con, self.executed.get(node.name, 0),
                             0, 0))
        return rows


# --------------------------------------------------------------------------------------------
# Sessions
# --------------------------------------------------------------------------------------------

_GLOBALS = GlobalVariables({
    **SYSTEM_VARIABLES,
    "version": (str, VERSION, False),
    "version_comment": (str, NAME, False),
})


class _StandinSession(BaseSession):
    """What both ports share: the login, the user lookup, and answering COM_QUERY."""

    port = "?"

    def __init__(self, state: StandinState, peer: str = "unknown") -> None:
        self.state = state
        self.peer = peer
        self.variables = SessionVariables(_GLOBALS)
        self.username: str | None = None
        self.database: str | None = None

    async def init(self, connection: Connection) -> None:
        if self.username is not None:
            logger.info("event=login port=%s user=%s peer=%s", self.port, self.username,
                        self.peer)

    def user(self) -> StandinUser:
        # Looked up on every statement so reloads apply at once (password, readOnly, schemas).
        user = self.state.config.users.get(self.username or "")
        if user is None:
            raise MysqlError(f"Access denied for user '{self.username}'",
                             ErrorCode.ACCESS_DENIED_ERROR)
        return user

    def ping_ok(self) -> bool:
        return True

    def status_flags(self) -> ServerStatus:
        return _AUTOCOMMIT

    async def execute(self, sql: str) -> Outcome:
        raise NotImplementedError

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> AllowedResult:
        # Reached by prepared statements and COM_FIELD_LIST; COM_QUERY calls execute() itself.
        outcome = await self.execute(sql)
        return outcome if isinstance(outcome, ResultSet) else None


class SqlSession(_StandinSession):
    """One client of the SQL port, with at most one backend connection of its own."""

    port = "sql"

    def __init__(self, state: StandinState, peer: str = "unknown") -> None:
        super().__init__(state, peer)
        self.autocommit = True
        self._charset_sql: str | None = None
        self._backend: _Backend | None = None

    async def init(self, connection: Connection) -> None:
        await super().init(connection)
        if self.username is not None:
            self.state.sessions.add(self)

    async def close(self) -> None:
        self.state.sessions.discard(self)
        await self._drop_backend()

    @property
    def in_transaction(self) -> bool:
        # The backend's SERVER_STATUS_IN_TRANS is the truth: it follows BEGIN / START
        # TRANSACTION ... COMMIT / ROLLBACK, autocommit=0 and the implicit commits of DDL alike.
        return self._backend is not None and self._backend.in_transaction

    @property
    def backend_host(self) -> WriteHost | None:
        return self._backend.route.write_host if self._backend else None

    def ping_ok(self) -> bool:
        return self.state.online

    def status_flags(self) -> ServerStatus:
        flags = _AUTOCOMMIT if self.autocommit else ServerStatus(0)
        return (flags | _IN_TRANS) if self.in_transaction else flags

    async def use(self, database: str) -> None:
        user = self.user()
        if database not in self.state.config.schemas:
            raise MysqlError(f"Unknown database '{database}'", ER_BAD_DB)
        if database not in user.schemas:
            raise MysqlError(f"Access denied for user '{user.name}' to database '{database}'",
                             ER_DBACCESS_DENIED)
        self.database = database

    async def execute(self, sql: str) -> Outcome:
        user = self.user()
        local = await self._answer_locally(user, _normalise(sql))
        if local is not None:
            return local
        keyword = _leading_keyword(sql)
        if user.read_only and keyword in _WRITE_KEYWORDS:
            logger.info("event=write_refused user=%s statement=%s reason=read_only", user.name,
                        keyword)
            raise MysqlError("User readonly", ER_OPTION_PREVENTS_STATEMENT)
        return await self._forward(user, sql)

    async def _answer_locally(self, user: StandinUser, text: str) -> Outcome | None:
        """The statements MyCat answers itself instead of passing them to a backend."""
        lowered = text.lower()
        if lowered in ("show databases", "show schemas"):
            return _local_result([("DATABASE", ColumnType.VAR_STRING)],
                                 [(s,) for s in user.schemas])
        match = re.fullmatch(r"use\s+`?([^`\s]+)`?", text, re.I)
        if match:
            await self.use(match.group(1))
            return _Ok()
        match = re.fullmatch(r"select\s+((?:current_|session_|system_)?user)\s*\(\s*\)", lowered)
        if match:
            return _local_result([(f"{match.group(1).upper()}()", ColumnType.VAR_STRING)],
                                 [(f"{user.name}@{self.peer}",)])
        if re.fullmatch(r"select\s+database\s*\(\s*\)", lowered):
            return _local_result([("DATABASE()", ColumnType.VAR_STRING)], [(self.database,)])
        if re.fullmatch(r"select\s+@@(?:session\.)?version_comment(?:\s+limit\s+1)?", lowered):
            return _local_result([("@@version_comment", ColumnType.VAR_STRING)], [(NAME,)])
        match = re.fullmatch(
            r"set\s+(?:session\s+|@@session\.|@@|local\s+)?autocommit\s*=\s*(\w+)", lowered)
        if match:
            await self._set_autocommit(match.group(1))
            return _Ok()
        if re.match(r"set\s+(?:names|character\s+set|charset)\s", lowered):
            # Client libraries send this on connect; remembered and replayed on the backend so
            # that a login does not need the backend.
            self._charset_sql = text
            if self._backend is not None:
                await self._backend_call(self._backend.run, text)
            return _Ok()
        return None

    async def _set_autocommit(self, value: str) -> None:
        # Kept here rather than only on the backend so a login (pymysql sends SET AUTOCOMMIT)
        # does not depend on the backend being reachable, as with MyCat.
        if value in ("1", "on", "true"):
            self.autocommit = True
        elif value in ("0", "off", "false"):
            self.autocommit = False
        else:
            raise MysqlError(f"Variable 'autocommit' can't be set to the value of '{value}'",
                             ErrorCode.WRONG_VALUE_FOR_VAR)
        if self._backend is not None:
            await self._backend_call(self._backend.conn.autocommit, self.autocommit)

    async def _forward(self, user: StandinUser, sql: str) -> Outcome:
        schema = self.database or user.default_schema or (user.schemas[0] if user.schemas
                                                           else None)
        if schema is None:
            raise MysqlError("No database selected", ErrorCode.NO_DB_ERROR)
        try:
            route = self.state.config.route(schema)
        except ConfError as exc:
            raise MysqlError(str(exc), ER_BAD_DB) from exc
        backend = await self._backend_for(route)
        logger.debug("event=forward user=%s data_node=%s statement=%s", user.name,
                     route.data_node, _leading_keyword(sql))
        outcome = await self._backend_call(backend.run, sql)
        self.state.executed[route.data_node] = self.state.executed.get(route.data_node, 0) + 1
        return outcome

    async def _backend_for(self, route: Route) -> _Backend:
        backend = self._backend
        stale = backend is not None and (backend.generation != self.state.generation
                                          or backend.route.write_host != route.write_host)
        # A transaction stays on the connection it started on, whatever was reloaded meanwhile.
        if stale and not self.in_transaction:
            await self._drop_backend()
            backend = None
        if backend is None:
            try:
                backend = await self.state.blocking(_Backend.open, route, self.autocommit,
                                                    self.state.generation)
            except pymysql.MySQLError as exc:
                message = _error_parts(exc)[1]
                wh = route.write_host
                logger.warning("event=backend_unavailable data_host=%s write_host=%s host=%s "
                               "port=%d error=%r", wh.data_host, wh.name, wh.host, wh.port,
                               message)
                raise MysqlError(f"backend {wh.name} ({wh.host}:{wh.port}): {message}",
                                 _client_error(exc).code) from exc
            self._backend = backend
            if self._charset_sql:
                await self._backend_call(backend.run, self._charset_sql)
        elif backend.route.database != route.database:
            await self._backend_call(backend.select, route)
        return backend

    async def _backend_call(self, fn: Callable[..., _T], *args: Any) -> _T:
        try:
            return await self.state.blocking(fn, *args)
        except pymysql.MySQLError as exc:
            code, _ = _error_parts(exc)
            # Client-side errors mean the connection is gone, and its transaction with it.
            if code >= 2000 or isinstance(exc, pymysql.err.InterfaceError):
                await self._drop_backend()
            raise _client_error(exc) from exc

    async def _drop_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            await self.state.blocking(backend.close)


class ManagerSession(_StandinSession):
    """One client of the manager port."""

    port = "manager"

    async def execute(self, sql: str) -> Outcome:
        user = self.user()
        text = _normalise(sql).lower()
        try:
            outcome = await self._command(text)
        except MysqlError as exc:
            logger.info("event=manager_command user=%s command=%r result=error error=%r",
                        user.name, text, exc.msg)
            raise
        logger.info("event=manager_command user=%s command=%r result=ok", user.name, text)
        return outcome

    async def _command(self, text: str) -> Outcome:
        state = self.state
        if text == "show @@heartbeat":
            return _local_result(_HEARTBEAT_COLUMNS, await state.heartbeat_rows())
        if text == "show @@datasource":
            return _local_result(_DATASOURCE_COLUMNS, state.datasource_rows())
        if text == "show @@version":
            return _local_result([("VERSION", ColumnType.VAR_STRING)], [(VERSION,)])
        if text == "reload @@config":
            self._reload(state.reload_config)
            return _Ok()
        if text == "reload @@config_all":
            self._reload(state.reload_config_all)
            return _Ok()
        if text in ("offline", "online"):
            state.online = text == "online"
            logger.info("event=%s sql_sessions=%d", text, len(state.sessions))
            return _Ok()
        # Client libraries send these on connect or close; MyCat's manager accepts them too.
        if text.startswith("set ") or text in ("commit", "rollback", "begin"):
            return _Ok()
        if re.fullmatch(r"select @@(?:session\.)?version_comment(?: limit 1)?", text):
            return _local_result([("@@version_comment", ColumnType.VAR_STRING)], [(NAME,)])
        raise MysqlError("Unsupported statement", ErrorCode.PARSE_ERROR)

    def _reload(self, reload: Callable[[], None]) -> None:
        try:
            reload()
        except ConfError as exc:
            raise MysqlError(f"Reload config failure: {exc}", ER_UNKNOWN) from exc
        config = self.state.config
        logger.info("event=reloaded users=%d schemas=%d data_nodes=%d data_hosts=%d",
                    len(config.users), len(config.schemas), len(config.data_nodes),
                    len(config.data_hosts))


_HEARTBEAT_COLUMNS = [
    ("NAME", ColumnType.VAR_STRING), ("TYPE", ColumnType.VAR_STRING),
    ("HOST", ColumnType.VAR_STRING), ("PORT", ColumnType.LONG), ("RS_CODE", ColumnType.LONG),
    ("RETRY", ColumnType.LONG), ("STATUS", ColumnType.VAR_STRING),
    ("TIMEOUT", ColumnType.LONGLONG), ("EXECUTE_TIME", ColumnType.VAR_STRING),
    ("LAST_ACTIVE_TIME", ColumnType.VAR_STRING), ("STOP", ColumnType.VAR_STRING),
]
_DATASOURCE_COLUMNS = [
    ("DATANODE", ColumnType.VAR_STRING), ("NAME", ColumnType.VAR_STRING),
    ("TYPE", ColumnType.VAR_STRING), ("HOST", ColumnType.VAR_STRING),
    ("PORT", ColumnType.LONG), ("W/R", ColumnType.VAR_STRING), ("ACTIVE", ColumnType.LONG),
    ("IDLE", ColumnType.LONG), ("SIZE", ColumnType.LONG), ("EXECUTE", ColumnType.LONGLONG),
    ("READ_LOAD", ColumnType.LONG), ("WRITE_LOAD", ColumnType.LONG),
]


# --------------------------------------------------------------------------------------------
# Protocol glue around mysql-mimic
# --------------------------------------------------------------------------------------------


class _PasswordPlugin(NativePasswordAuthPlugin):
    """mysql_native_password against the current server.xml, one instance per connection."""

    def __init__(self, state: StandinState, session: _StandinSession) -> None:
        self._state = state
        self._session = session

    async def auth(self, auth_info: AuthInfo | None = None) -> AuthState:
        if auth_info and auth_info.handshake_plugin_name == self.name \
                and auth_info.handshake_auth_data:
            nonce = auth_info.handshake_auth_data.rstrip(b"\x00")
        else:
            nonce = mimic_utils.nonce(20)
            auth_info = yield nonce + b"\x00"
        yield self._decide(auth_info, nonce)

    def _decide(self, info: AuthInfo, nonce: bytes) -> Success | Forbidden:
        name = info.username
        user = self._state.config.users.get(name)
        if user is None or not self._password_ok(user.password, info.data, nonce):
            logger.info("event=login_refused port=%s user=%s peer=%s reason=bad_credentials",
                        self._session.port, name, self._session.peer)
            return Forbidden(f"Access denied for user '{name}'")
        database = self._session.database
        if database and database not in user.schemas:
            logger.info("event=login_refused port=%s user=%s reason=schema schema=%s",
                        self._session.port, name, database)
            return Forbidden(f"Access denied for user '{name}' to database '{database}'")
        return Success(user.name)

    def _password_ok(self, password: str, scramble: bytes, nonce: bytes) -> bool:
        if not password:
            return not scramble
        return self.verify_scramble(self.create_auth_string(password), scramble, nonce)


class _Identity(IdentityProvider):
    def __init__(self, plugin: AuthPlugin) -> None:
        self._plugin = plugin

    def get_plugins(self) -> Sequence[AuthPlugin]:
        return [self._plugin]

    async def get_user(self, username: str) -> User | None:
        # Everyone gets a challenge; unknown names then fail it, so they read "access denied"
        # like a wrong password instead of revealing which accounts exist.
        return User(name=username, auth_plugin=self._plugin.name)


class _StandinConnection(Connection):
    session: _StandinSession

    def __init__(self, stream: MysqlStream, session: _StandinSession, control: LocalControl,
                 identity_provider: IdentityProvider) -> None:
        super().__init__(stream=stream, session=session, control=control,
                         identity_provider=identity_provider,
                         server_capabilities=DEFAULT_SERVER_CAPABILITIES)
        self.status_flags = _AUTOCOMMIT

    async def authenticate(self, username: str, auth_response: bytes,
                           client_plugin_name: str | None, connect_attrs: dict[str, str],
                           auth_state: AuthState | None = None,
                           server_plugin: AuthPlugin | None = None) -> None:
        # A failed COM_CHANGE_USER must not leave the previous identity in place.
        self.session.username = None
        await super().authenticate(username=username, auth_response=auth_response,
                                   client_plugin_name=client_plugin_name,
                                   connect_attrs=connect_attrs, auth_state=auth_state,
                                   server_plugin=server_plugin)
        if self.session.username is None:
            # mysql-mimic sends the error but would go on to read commands; hang up instead.
            self.stream.writer.close()

    async def handle_ping(self, data: bytes) -> None:
        if self.session.ping_ok():
            await self.stream.write(self.ok())
        else:
            await self.stream.write(self.error(msg=f"{NAME} is offline",
                                               code=ER_SERVER_SHUTDOWN))

    async def handle_query(self, data: bytes) -> None:
        # Replaces mysql-mimic's version to report affected rows, insert ids and the
        # transaction flags of the backend in the OK packet.
        com_query = packets.parse_com_query(capabilities=self.capabilities,
                                            client_charset=self.client_charset, data=data)
        try:
            outcome = await self.session.execute(com_query.sql)
        except MysqlError as exc:
            self.status_flags = self.session.status_flags()
            await self.stream.write(self.error(msg=exc.msg, code=exc.code))
            return
        self.status_flags = self.session.status_flags()
        if isinstance(outcome, ResultSet) and outcome:
            await self.write_text_resultset(outcome)
        else:
            ok = outcome if isinstance(outcome, _Ok) else _Ok()
            await self.stream.write(self.ok(affected_rows=ok.affected_rows,
                                            last_insert_id=ok.last_insert_id,
                                            warnings=ok.warnings))


class StandinServer:
    """Both ports of one mycat-standin process."""

    def __init__(self, conf_dir: Path, host: str = "0.0.0.0", port: int = DEFAULT_SQL_PORT,
                 manager_port: int = DEFAULT_MANAGER_PORT) -> None:
        self.state = StandinState(conf_dir, load_conf(conf_dir))
        self.host = host
        self._ports = {"sql": port, "manager": manager_port}
        self._servers: dict[str, asyncio.Server] = {}
        self._control = LocalControl()
        self._connections: set[_StandinConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def bound_port(self, kind: str) -> int:
        """The port actually listened on (``kind`` is "sql" or "manager"); useful with 0."""
        return int(self._servers[kind].sockets[0].getsockname()[1])

    async def start(self) -> None:
        for kind in ("sql", "manager"):
            self._servers[kind] = await asyncio.start_server(
                functools.partial(self._serve, kind), host=self.host, port=self._ports[kind])
        config = self.state.config
        logger.info("event=started name=%s conf=%s host=%s port=%d manager_port=%d users=%d "
                    "schemas=%d data_hosts=%d sharding=none", NAME, self.state.conf_dir,
                    self.host, self.bound_port("sql"), self.bound_port("manager"),
                    len(config.users), len(config.schemas), len(config.data_hosts))

    async def stop(self) -> None:
        for server in self._servers.values():
            server.close()
        for connection in list(self._connections):
            connection.kill()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        for server in self._servers.values():
            await server.wait_closed()
        self.state.executor.shutdown(wait=False, cancel_futures=True)
        logger.info("event=stopped name=%s", NAME)

    async def _serve(self, kind: str, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        stream = MysqlStream(reader, writer)
        address = writer.get_extra_info("peername")
        peer = str(address[0]) if isinstance(address, tuple) else "unknown"
        session: _StandinSession = (SqlSession(self.state, peer) if kind == "sql"
                                    else ManagerSession(self.state, peer))
        connection = _StandinConnection(stream, session, self._control,
                                        _Identity(_PasswordPlugin(self.state, session)))
        try:
            if kind == "sql" and not self.state.online:
                # Refused before the handshake, as a server shutting down answers.
                logger.info("event=login_refused port=sql peer=%s reason=offline", peer)
                await stream.write(packets.make_error(msg=f"{NAME} is offline",
                                                      code=ER_SERVER_SHUTDOWN))
                return
            connection.connection_id = await self._control.add(connection)
            self._connections.add(connection)
            await connection.start()
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            logger.debug("event=client_gone port=%s error=%r", kind, exc)
        except Exception:
            logger.exception("event=connection_failed port=%s", kind)
        finally:
            self._connections.discard(connection)
            await self._control.remove(connection.connection_id)
            writer.close()
            if task is not None:
                self._tasks.discard(task)


async def serve(conf_dir: Path, host: str, port: int, manager_port: int,
                stop: asyncio.Event) -> None:
    """Run a stand-in until ``stop`` is set."""
    server = StandinServer(conf_dir, host, port, manager_port)
    await server.start()
    try:
        await stop.wait()
    finally:
        await server.stop()


def run(conf_dir: Path, host: str, port: int, manager_port: int) -> int:
    """Run a stand-in in the foreground until SIGTERM or SIGINT; the exit status."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(conf_dir, host, port, manager_port, stop)

    try:
        asyncio.run(main())
    except ConfError as exc:
        logger.error("event=conf_error name=%s conf=%s error=%r", NAME, conf_dir, str(exc))
        return 2
    except OSError as exc:
        logger.error("event=start_failed name=%s error=%r", NAME, str(exc))
        return 1
    return 0
