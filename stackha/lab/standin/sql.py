"""SQL statements as mycat-standin sees them: reading statement text, what answering one gives
back, and the MySQL error numbers and status flags of those answers.

The stand-in passes statements to the backend unchanged; it only reads their text to decide
whether to answer itself, whether a readOnly user may run them, and which command the manager
port was sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mysql_mimic.results import ResultSet
from mysql_mimic.types import ServerStatus

# MySQL error numbers the stand-in answers with (mysql-mimic's ErrorCode lacks most of them).
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049
ER_SERVER_SHUTDOWN = 1053
ER_OPTION_PREVENTS_STATEMENT = 1290
ER_UNKNOWN = 1105

IN_TRANS = ServerStatus.SERVER_STATUS_IN_TRANS
AUTOCOMMIT = ServerStatus.SERVER_STATUS_AUTOCOMMIT

# Statements a readOnly user may not run; MyCat decides by statement type, and so do we.
WRITE_KEYWORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "TRUNCATE",
    "RENAME", "LOAD", "CALL", "GRANT", "REVOKE",
})


@dataclass(frozen=True)
class Ok:
    """What a statement without rows gives back: the fields of the OK packet."""

    affected_rows: int = 0
    last_insert_id: int = 0
    warnings: int = 0


Outcome = ResultSet | Ok


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


def leading_keyword(sql: str) -> str:
    match = re.match(r"[A-Za-z_]+", _skip_noise(sql))
    return match.group(0).upper() if match else ""


def normalise(sql: str) -> str:
    """One-line form for matching commands: no comments, single spaces, no trailing ``;``."""
    return " ".join(_skip_noise(sql).split()).rstrip("; ").strip()
