"""mycat-standin's MariaDB/MySQL backend connections: blocking pymysql, run in the shared
state's thread pool.

``Backend`` is one session's connection to a writeHost, relaying rows as the backend's own text
bytes; ``probe`` runs a dataHost's heartbeat SQL on a fresh connection; ``client_error`` turns
a backend failure into the error the stand-in's client sees.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.connections
import pymysql.converters
from mysql_mimic.charset import CharacterSet
from mysql_mimic.errors import MysqlError
from mysql_mimic.results import ResultColumn, ResultSet
from mysql_mimic.types import ColumnType

from stackha.lab.sqlclient import mysql_connect
from stackha.lab.standin.config import Route, WriteHost
from stackha.lab.standin.sql import ER_UNKNOWN, IN_TRANS, Ok, Outcome

_BACKEND_CONNECT_TIMEOUT = 10
HEARTBEAT_TIMEOUT = 5

_ENCODERS_ONLY = {k: v for k, v in pymysql.converters.conversions.items() if not isinstance(k, int)}


def _raw_text(column: ResultColumn, value: Any) -> bytes:
    # Backend rows arrive as the backend's own text bytes; relaying them keeps values exact.
    return value if isinstance(value, bytes) else str(value).encode("utf-8")


def _column_type(code: int) -> ColumnType:
    try:
        return ColumnType(code)
    except ValueError:
        return ColumnType.VAR_STRING


def error_parts(exc: BaseException) -> tuple[int, str]:
    args = getattr(exc, "args", ())
    if len(args) >= 2 and isinstance(args[0], int):
        return args[0], str(args[1])
    return ER_UNKNOWN, str(exc) or type(exc).__name__


def client_error(exc: BaseException) -> MysqlError:
    """A backend failure as the stand-in's client should see it."""
    code, message = error_parts(exc)
    # 2000 and up are pymysql's own (client-side) numbers; a server never sends those.
    return MysqlError(message, ER_UNKNOWN if code >= 2000 else code)


@dataclass
class Backend:
    """One SQL-port session's connection to the writeHost of its route."""

    conn: pymysql.connections.Connection
    route: Route
    generation: int

    @classmethod
    def open(cls, route: Route, autocommit: bool, generation: int) -> Backend:
        wh = route.write_host
        conn = mysql_connect(
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
        return bool((self.conn.server_status or 0) & IN_TRANS)

    def run(self, sql: str) -> Outcome:
        with self.conn.cursor() as cursor:
            cursor.execute(sql)
            if cursor.description is None:
                return Ok(max(cursor.rowcount, 0), cursor.lastrowid or 0, cursor.warning_count)
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


def probe(write_host: WriteHost, sql: str) -> tuple[bool, int, str]:
    """Run a dataHost's heartbeat SQL on one writeHost: (ok, milliseconds, error)."""
    started = time.monotonic()
    try:
        conn = mysql_connect(
            host=write_host.host, port=write_host.port, user=write_host.user,
            password=write_host.password, connect_timeout=HEARTBEAT_TIMEOUT,
            read_timeout=HEARTBEAT_TIMEOUT, write_timeout=HEARTBEAT_TIMEOUT,
        )
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql)
                cursor.fetchall()
        finally:
            conn.close()
    except Exception as exc:  # a heartbeat reports every failure as RS_CODE -1
        return False, int((time.monotonic() - started) * 1000), error_parts(exc)[1]
    return True, int((time.monotonic() - started) * 1000), ""
