"""The mycat-standin server: both ports, the protocol glue around mysql-mimic, start and stop.

``StandinServer`` listens on the SQL and manager ports and gives each client a session behind
a mysql_native_password login checked against the current ``server.xml``; ``run`` serves in the
foreground until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Sequence
from pathlib import Path

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
from mysql_mimic.connection import Connection
from mysql_mimic.constants import DEFAULT_SERVER_CAPABILITIES
from mysql_mimic.control import LocalControl
from mysql_mimic.errors import MysqlError
from mysql_mimic.results import ResultSet
from mysql_mimic.stream import MysqlStream

from stackha.lab.standin.config import NAME, ConfError, load_conf
from stackha.lab.standin.sessions import ManagerSession, SqlSession, StandinSession, StandinState
from stackha.lab.standin.sql import AUTOCOMMIT, ER_SERVER_SHUTDOWN, Ok

DEFAULT_SQL_PORT = 8066
DEFAULT_MANAGER_PORT = 9066

logger = logging.getLogger(__name__)


class _PasswordPlugin(NativePasswordAuthPlugin):
    """mysql_native_password against the current server.xml, one instance per connection."""

    def __init__(self, state: StandinState, session: StandinSession) -> None:
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
    session: StandinSession

    def __init__(self, stream: MysqlStream, session: StandinSession, control: LocalControl,
                 identity_provider: IdentityProvider) -> None:
        super().__init__(stream=stream, session=session, control=control,
                         identity_provider=identity_provider,
                         server_capabilities=DEFAULT_SERVER_CAPABILITIES)
        self.status_flags = AUTOCOMMIT

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
            ok = outcome if isinstance(outcome, Ok) else Ok()
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
        session: StandinSession = (SqlSession(self.state, peer) if kind == "sql"
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
