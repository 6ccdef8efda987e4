"""The MySQL client protocol as far as the agent's own logins need it: the server's greeting
(HandshakeV10, in MyCat 1.6's form too), a ``mysql_native_password`` login, one text query
and its result set, goodbye. The health checks (``select 1``) and MyCat's manager port
(``show @@...``, ``reload @@config_all``) use it.

Written here rather than taken from pymysql, which the lab and the tests still use: pymysql
(with configparser, decimal and its charset tables) was 0.9-1.4 MiB of the agent's 30 MiB
budget on every MyCat and director node (VmRSS with and without, bench lab-idle), for a login
and a query that MyCat 1.6 answers in the one plugin this speaks. No TLS (MyCat 1.6 has none),
no prepared statements, no multi-statement results, no compression.

Everything the server sends is untrusted: every packet is bounded (``MAX_PACKET``), so is a
whole answer (``MAX_RESULT``), every count is checked against what is left, and a
connection keeps one deadline from its connect on, so a server that drips bytes or streams
rows forever costs the caller ``timeout`` and no more. Errors are ``MysqlError``:
``from_server`` with the server's own code and words, or else a client code as the C client
numbers them, 2003 before the login ended, 2013 after (the command was sent, no answer
came).
"""

from __future__ import annotations

import hashlib
import socket
import time
from dataclasses import dataclass

CANNOT_CONNECT = 2003  # CR_CONN_HOST_ERROR: no connection, or the login did not finish
SERVER_LOST = 2013  # CR_SERVER_LOST: connected and logged in, then the answer broke off

MAX_PACKET = 1 << 20  # a manager answer is a few KiB; a 16 MiB continuation is no answer
MAX_RESULT = 1 << 20  # all of one answer's packets: rows without end must not fill memory
# The greeting is one packet; the longest seen (MySQL 8 with a long version string and the
# caching_sha2 plugin name) is under 120 bytes. Anything claiming more is not a greeting.
GREETING_MAX = 1024
MAX_COLUMNS = 4096  # MySQL's own limit per table
NATIVE_PASSWORD = b"mysql_native_password"

_PROTOCOL_41 = 0x200
_SECURE_CONNECTION = 0x8000
_PLUGIN_AUTH = 0x80000
_CONNECT_WITH_DB = 0x8
_LONG_PASSWORD, _LONG_FLAG, _TRANSACTIONS = 0x1, 0x4, 0x2000
_UTF8_GENERAL_CI = 33
_COM_QUIT, _COM_QUERY = 0x01, 0x03
# Column types that pymysql turned into int (TINY SHORT LONG LONGLONG INT24 YEAR) and
# float (FLOAT DOUBLE); every other value stays text.
_INTEGER_TYPES = frozenset({0x01, 0x02, 0x03, 0x08, 0x09, 0x0D})
_FLOAT_TYPES = frozenset({0x04, 0x05})

Value = str | int | float | None


class MysqlError(Exception):
    """``code`` is the server's error number (``from_server``), or CANNOT_CONNECT /
    SERVER_LOST: a server may send any number, 2013 included."""

    def __init__(self, code: int, message: str, from_server: bool = False) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.from_server = from_server

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


@dataclass(frozen=True)
class Greeting:
    server_version: str
    salt: bytes  # the 20 bytes mysql_native_password scrambles with
    capabilities: int
    plugin: bytes  # empty when the server names none (MyCat 1.6's usual greeting)


@dataclass(frozen=True)
class Result:
    """A query's answer: no columns for OK (a command), else names and text-protocol rows."""

    columns: tuple[str, ...]
    rows: tuple[tuple[Value, ...], ...]

    def dicts(self) -> list[dict[str, Value]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class _Malformed(Exception):
    """The server's bytes do not parse; becomes a MysqlError with the stage's code."""


def parse_greeting(payload: bytes) -> Greeting:
    """Pure: the HandshakeV10 packet. An ERR packet (too many connections, host blocked)
    raises MysqlError with the server's own code and words; anything else that is no
    greeting raises _Malformed."""
    if payload[:1] == b"\xff":
        raise _server_error(payload)
    if payload[:1] != b"\x0a":
        raise _Malformed(f"protocol version {payload[0] if payload else 'missing'}, not 10")
    end = payload.find(b"\x00", 1)
    at = end + 1 + 4  # the version, its NUL, the connection id
    if end < 0 or len(payload) < at + 8 + 1 + 2:
        raise _Malformed("greeting too short")
    version = payload[1:end].decode("ascii", "replace")
    salt = payload[at:at + 8]
    at += 8 + 1  # salt part 1, filler
    capabilities = int.from_bytes(payload[at:at + 2], "little")
    at += 2
    plugin = b""
    if len(payload) >= at + 16:  # charset, status, upper capabilities, salt length, reserved
        capabilities |= int.from_bytes(payload[at + 3:at + 5], "little") << 16
        at += 16
        # The rest of the salt: 12 bytes and a NUL (MyCat 1.6 writes the same bytes behind a
        # filler of 13 zeros, where the salt length would be).
        rest_end = payload.find(b"\x00", at)
        rest = payload[at:rest_end if rest_end >= 0 else len(payload)]
        salt += rest[:12]
        at = (rest_end + 1) if rest_end >= 0 else len(payload)
        if capabilities & _PLUGIN_AUTH and at < len(payload):
            name_end = payload.find(b"\x00", at)
            plugin = payload[at:name_end if name_end >= 0 else len(payload)]
    if len(salt) != 20:
        raise _Malformed(f"salt of {len(salt)} bytes, not 20")
    return Greeting(version, salt, capabilities, plugin)


def scramble(password: str, salt: bytes) -> bytes:
    """Pure: mysql_native_password's answer, SHA1(p) XOR SHA1(salt + SHA1(SHA1(p)))."""
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode("utf-8")).digest()
    stage2 = hashlib.sha1(stage1).digest()
    mix = hashlib.sha1(salt[:20] + stage2).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix, strict=True))


def login_packet(greeting: Greeting, user: str, password: str,
                 database: str | None) -> bytes:
    """Pure: HandshakeResponse41 for ``greeting``."""
    flags = _LONG_PASSWORD | _LONG_FLAG | _PROTOCOL_41 | _TRANSACTIONS | _SECURE_CONNECTION
    if database:
        flags |= _CONNECT_WITH_DB
    if greeting.capabilities & _PLUGIN_AUTH:
        flags |= _PLUGIN_AUTH
    auth = scramble(password, greeting.salt)
    packet = (flags.to_bytes(4, "little") + (1 << 24).to_bytes(4, "little")
              + bytes([_UTF8_GENERAL_CI]) + bytes(23)
              + user.encode("utf-8") + b"\x00" + bytes([len(auth)]) + auth)
    if database:
        packet += database.encode("utf-8") + b"\x00"
    if flags & _PLUGIN_AUTH:
        packet += NATIVE_PASSWORD + b"\x00"
    return packet


def _server_error(payload: bytes) -> MysqlError:
    code = int.from_bytes(payload[1:3], "little")
    text = payload[3:]
    if text[:1] == b"#":
        text = text[6:]  # '#' and the five-character SQLSTATE
    return MysqlError(code, text.decode("utf-8", "replace"), from_server=True)


def _is_eof(payload: bytes) -> bool:
    return payload[:1] == b"\xfe" and len(payload) < 9


class _Reader:
    """Length-encoded values from one packet; running past its end is _Malformed."""

    def __init__(self, payload: bytes) -> None:
        self.payload, self.at = payload, 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.payload):
            raise _Malformed("packet ends inside a value")
        data = self.payload[self.at:self.at + count]
        self.at += count
        return data

    def integer(self) -> int | None:
        first = self.take(1)[0]
        if first < 0xFB:
            return first
        if first == 0xFB:
            return None  # NULL
        if first == 0xFF:
            raise _Malformed("0xff where a length was due")
        return int.from_bytes(self.take({0xFC: 2, 0xFD: 3, 0xFE: 8}[first]), "little")

    def text(self) -> bytes | None:
        length = self.integer()
        return None if length is None else self.take(length)


def parse_column(payload: bytes) -> tuple[str, int]:
    """Pure: ColumnDefinition41's name and type."""
    reader = _Reader(payload)
    for _ in range(4):  # catalog, schema, table, org_table
        reader.text()
    name = reader.text() or b""
    reader.text()  # org_name
    reader.take(1 + 2 + 4)  # length of the fixed fields, charset, column length
    kind = reader.take(1)[0]
    return name.decode("utf-8", "replace"), kind


def parse_row(payload: bytes, types: tuple[int, ...]) -> tuple[Value, ...]:
    """Pure: one text-protocol row, as many values as columns."""
    reader = _Reader(payload)
    values: list[Value] = []
    for kind in types:
        raw = reader.text()
        values.append(None if raw is None else _typed(raw, kind))
    if reader.at != len(payload):
        raise _Malformed("row longer than its columns")
    return tuple(values)


def _typed(raw: bytes, kind: int) -> Value:
    text = raw.decode("utf-8", "replace")
    try:
        if kind in _INTEGER_TYPES:
            return int(text)
        if kind in _FLOAT_TYPES:
            return float(text)
    except ValueError:
        pass  # a server's odd number stays its text
    return text


class Connection:
    """One logged-in connection; ``query`` as often as needed, then ``close``."""

    def __init__(self, sock: socket.socket, where: str, deadline: float) -> None:
        self._sock, self._where, self._deadline = sock, where, deadline
        self._sequence = 0
        self._budget = MAX_RESULT
        self.server_version = ""

    @classmethod
    def connect(cls, host: str, port: int, timeout: float) -> Connection:
        """A TCP connection, not logged in, whose connect, login and queries all end within
        ``timeout`` of now; MysqlError CANNOT_CONNECT otherwise."""
        where = f"{host}:{port}"
        deadline = time.monotonic() + timeout
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except (OSError, ValueError, OverflowError) as exc:  # a bad name or port too
            raise MysqlError(CANNOT_CONNECT, f"cannot connect to {where}: "
                                             f"{getattr(exc, 'strerror', None) or exc}"
                             ) from None
        return cls(sock, where, deadline)

    @classmethod
    def open(cls, host: str, port: int, user: str, password: str,
             database: str | None = None, timeout: float = 1.0) -> Connection:
        """Connect and log in; MysqlError otherwise. ``timeout`` covers the connect, the
        login and every query after it."""
        connection = cls.connect(host, port, timeout)
        try:
            connection._login(user, password, database)
        except BaseException:
            connection._sock.close()
            raise
        return connection

    def greeting(self) -> Greeting:
        """The server's greeting (a connection's first packet)."""
        try:
            return parse_greeting(self._read(GREETING_MAX))
        except (_Malformed, OSError, EOFError) as exc:
            raise MysqlError(CANNOT_CONNECT, f"{self._where}: not a MySQL greeting: "
                                             f"{_reason(exc)}") from None

    def _login(self, user: str, password: str, database: str | None) -> None:
        greeting = self.greeting()
        self.server_version = greeting.server_version
        try:
            self._write(login_packet(greeting, user, password, database))
            answer = self._read()
            if answer[:1] == b"\xfe" and len(answer) > 1:  # AuthSwitchRequest
                name_end = answer.find(b"\x00", 1)
                plugin = answer[1:name_end if name_end >= 0 else len(answer)]
                if plugin != NATIVE_PASSWORD:
                    raise MysqlError(CANNOT_CONNECT, f"{self._where} asks for the auth plugin "
                                     f"{plugin.decode('ascii', 'replace')!r}; only "
                                     "mysql_native_password is spoken here")
                salt = answer[name_end + 1:name_end + 21] if name_end >= 0 else b""
                self._write(scramble(password, salt))
                answer = self._read()
        except (_Malformed, OSError, EOFError) as exc:
            raise MysqlError(CANNOT_CONNECT, f"{self._where}: login: {_reason(exc)}") from None
        if answer[:1] == b"\xff":
            raise _server_error(answer)
        if answer[:1] != b"\x00":
            raise MysqlError(CANNOT_CONNECT, f"{self._where}: login answered with "
                                             f"{answer[:8].hex()}, not OK")

    def query(self, sql: str) -> Result:
        """Send ``sql`` and read its whole answer, by the connection's deadline."""
        self._sequence = 0
        try:
            self._write(bytes([_COM_QUERY]) + sql.encode("utf-8"))
        except OSError as exc:
            raise MysqlError(SERVER_LOST, f"{self._where}: {_reason(exc)}") from None
        try:
            return self._result()
        except (_Malformed, OSError, EOFError) as exc:
            raise MysqlError(SERVER_LOST, f"{self._where}: {_reason(exc)}") from None

    def _result(self) -> Result:
        first = self._read()
        if first[:1] == b"\xff":
            raise _server_error(first)
        if first[:1] == b"\x00":
            return Result((), ())
        count = _Reader(first).integer()
        if not count or count > MAX_COLUMNS:
            raise _Malformed(f"column count {count}")
        self._budget = MAX_RESULT - len(first)
        columns = [parse_column(self._read_answer()) for _ in range(count)]
        if not _is_eof(self._read_answer()):
            raise _Malformed("no EOF after the column definitions")
        types = tuple(kind for _, kind in columns)
        rows = []
        while True:
            payload = self._read_answer()
            if _is_eof(payload):
                break
            if payload[:1] == b"\xff":
                raise _server_error(payload)
            rows.append(parse_row(payload, types))
        return Result(tuple(name for name, _ in columns), tuple(rows))

    def close(self, goodbye: bool = True) -> None:
        """COM_QUIT (unless not logged in) if the socket takes it before the deadline, then
        close; never raises."""
        if not goodbye:
            self._sock.close()
            return
        try:
            self._sequence = 0
            self._write(bytes([_COM_QUIT]))
        except OSError:
            pass
        finally:
            self._sock.close()

    def _write(self, payload: bytes) -> None:
        self._sock.settimeout(self._left())
        header = len(payload).to_bytes(3, "little") + bytes([self._sequence & 0xFF])
        self._sock.sendall(header + payload)
        self._sequence += 1

    def _read(self, limit: int | None = None) -> bytes:
        limit = MAX_PACKET if limit is None else limit  # read at call time: tests lower it
        header = self._exactly(4)
        length = int.from_bytes(header[:3], "little")
        if length > limit:
            raise _Malformed(f"packet of {length} bytes, over {limit}")
        self._sequence = header[3] + 1
        payload = self._exactly(length)
        if not payload:
            raise _Malformed("empty packet")
        return payload

    def _read_answer(self) -> bytes:
        payload = self._read()
        self._budget -= len(payload)
        if self._budget < 0:
            raise _Malformed(f"answer over {MAX_RESULT} bytes")
        return payload

    def _exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            self._sock.settimeout(self._left())
            chunk = self._sock.recv(min(count - len(data), 65536))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {count} bytes")
            data += chunk
        return bytes(data)

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
