"""mycat-standin's sessions: the state both ports share, and one session per client.

``StandinState`` holds the configuration, the online flag, heartbeat results and the open
SQL-port sessions, and runs reloads. ``SqlSession`` answers what MyCat answers itself (``show
databases``, ``use``, ``select user()``, ``set autocommit``, ...) and forwards everything else to
its own backend connection; ``ManagerSession`` runs the manager-port commands.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pymysql
from mysql_mimic.connection import Connection
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import AllowedResult, ResultColumn, ResultSet
from mysql_mimic.session import BaseSession
from mysql_mimic.types import ColumnType, ServerStatus
from mysql_mimic.variables import SYSTEM_VARIABLES, GlobalVariables, SessionVariables

from stackha.lab.standin.backends import (
    HEARTBEAT_TIMEOUT,
    Backend,
    client_error,
    error_parts,
    probe,
)
from stackha.lab.standin.config import (
    NAME,
    ConfError,
    Route,
    StandinConfig,
    StandinUser,
    WriteHost,
    check_config,
    load_conf,
)
from stackha.lab.standin.sql import (
    AUTOCOMMIT,
    ER_BAD_DB,
    ER_DBACCESS_DENIED,
    ER_OPTION_PREVENTS_STATEMENT,
    ER_UNKNOWN,
    IN_TRANS,
    WRITE_KEYWORDS,
    Ok,
    Outcome,
    leading_keyword,
    normalise,
)

VERSION = "5.6.29-mycat-standin"

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


def _local_result(columns: Sequence[tuple[str, ColumnType]], rows: list[tuple]) -> ResultSet:
    return ResultSet(rows=rows, columns=[ResultColumn(n, t) for n, t in columns])


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
        probes = await asyncio.gather(*(self.blocking(probe, wh, dh.heartbeat_sql)
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
                         HEARTBEAT_TIMEOUT * 1000, f"{elapsed},{elapsed},{elapsed}",
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


_GLOBALS = GlobalVariables({
    **SYSTEM_VARIABLES,
    "version": (str, VERSION, False),
    "version_comment": (str, NAME, False),
})


class StandinSession(BaseSession):
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
        return AUTOCOMMIT

    async def execute(self, sql: str) -> Outcome:
        raise NotImplementedError

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> AllowedResult:
        # Reached by prepared statements and COM_FIELD_LIST; COM_QUERY calls execute() itself.
        outcome = await self.execute(sql)
        return outcome if isinstance(outcome, ResultSet) else None


class SqlSession(StandinSession):
    """One client of the SQL port, with at most one backend connection of its own."""

    port = "sql"

    def __init__(self, state: StandinState, peer: str = "unknown") -> None:
        super().__init__(state, peer)
        self.autocommit = True
        self._charset_sql: str | None = None
        self._backend: Backend | None = None

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
        flags = AUTOCOMMIT if self.autocommit else ServerStatus(0)
        return (flags | IN_TRANS) if self.in_transaction else flags

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
        local = await self._answer_locally(user, normalise(sql))
        if local is not None:
            return local
        keyword = leading_keyword(sql)
        if user.read_only and keyword in WRITE_KEYWORDS:
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
            return Ok()
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
            return Ok()
        if re.match(r"set\s+(?:names|character\s+set|charset)\s", lowered):
            # Client libraries send this on connect; remembered and replayed on the backend so
            # that a login does not need the backend.
            self._charset_sql = text
            if self._backend is not None:
                await self._backend_call(self._backend.run, text)
            return Ok()
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
                     route.data_node, leading_keyword(sql))
        outcome = await self._backend_call(backend.run, sql)
        self.state.executed[route.data_node] = self.state.executed.get(route.data_node, 0) + 1
        return outcome

    async def _backend_for(self, route: Route) -> Backend:
        backend = self._backend
        stale = backend is not None and (backend.generation != self.state.generation
                                          or backend.route.write_host != route.write_host)
        # A transaction stays on the connection it started on, whatever was reloaded meanwhile.
        if stale and not self.in_transaction:
            await self._drop_backend()
            backend = None
        if backend is None:
            try:
                backend = await self.state.blocking(Backend.open, route, self.autocommit,
                                                    self.state.generation)
            except pymysql.MySQLError as exc:
                message = error_parts(exc)[1]
                wh = route.write_host
                logger.warning("event=backend_unavailable data_host=%s write_host=%s host=%s "
                               "port=%d error=%r", wh.data_host, wh.name, wh.host, wh.port,
                               message)
                raise MysqlError(f"backend {wh.name} ({wh.host}:{wh.port}): {message}",
                                 client_error(exc).code) from exc
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
            code, _ = error_parts(exc)
            # Client-side errors mean the connection is gone, and its transaction with it.
            if code >= 2000 or isinstance(exc, pymysql.err.InterfaceError):
                await self._drop_backend()
            raise client_error(exc) from exc

    async def _drop_backend(self) -> None:
        backend, self._backend = self._backend, None
        if backend is not None:
            await self.state.blocking(backend.close)


class ManagerSession(StandinSession):
    """One client of the manager port."""

    port = "manager"

    async def execute(self, sql: str) -> Outcome:
        user = self.user()
        text = normalise(sql).lower()
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
        if text == "show @@database":
            return _local_result([("DATABASE", ColumnType.VAR_STRING)],
                                 [(name,) for name in sorted(state.config.schemas)])
        if match := re.fullmatch(r"show @@datanode(?: where schema\s*=\s*'?(\w+)'?)?", text):
            # Like MyCat 1.6.6.1: rows only with a schema named (the bare command lists none).
            schema = state.config.schemas.get(match.group(1) or "")
            names = set(schema.data_nodes) if schema is not None else set()
            return _local_result(
                [("NAME", ColumnType.VAR_STRING), ("DATHOST", ColumnType.VAR_STRING)],
                [(n.name, f"{n.data_host}/{n.database}")
                 for n in sorted(state.config.data_nodes.values(), key=lambda n: n.name)
                 if n.name in names])
        if text == "show @@version":
            return _local_result([("VERSION", ColumnType.VAR_STRING)], [(VERSION,)])
        if text == "reload @@config":
            self._reload(state.reload_config)
            return Ok()
        if text == "reload @@config_all":
            self._reload(state.reload_config_all)
            return Ok()
        if text in ("offline", "online"):
            state.online = text == "online"
            logger.info("event=%s sql_sessions=%d", text, len(state.sessions))
            return Ok()
        # Client libraries send these on connect or close; MyCat's manager accepts them too.
        if text.startswith("set ") or text in ("commit", "rollback", "begin"):
            return Ok()
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
