"""mycat-standin (the MyCat stand-in, not MyCat itself) against a real MariaDB backend.

A throwaway MariaDB runs on a free loopback port, the stand-in runs as a real process on
two more, and the checks go through pymysql and stackha's ManagerClient: nothing is mocked.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pymysql
import pytest

from stackha.mycat.manager import ManagerClient, ReloadRefused

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BACKEND_USER = "mycat"
BACKEND_PASSWORD = "mycat_backend_pw"
MARIADBD = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
INSTALL_DB = shutil.which("mariadb-install-db")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # still starting: remember why, try again
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after {timeout}s: {last!r}")


@dataclass
class MariaDB:
    port: int
    socket: Path

    def root(self) -> pymysql.connections.Connection:
        return pymysql.connect(unix_socket=str(self.socket), user="root", autocommit=True)

    def backend(self, database: str) -> pymysql.connections.Connection:
        return pymysql.connect(host="127.0.0.1", port=self.port, user=BACKEND_USER,
                               password=BACKEND_PASSWORD, database=database, autocommit=True)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDB]:
    if INSTALL_DB is None or not Path(MARIADBD).exists():
        # A requirement (scripts/install-deps.sh installs it), not a reason to skip.
        pytest.fail("MariaDB is not installed (Debian packages mariadb-server, mariadb-client)")
    base = tmp_path_factory.mktemp("mariadb")
    datadir = base / "data"
    subprocess.run([INSTALL_DB, "--no-defaults", f"--datadir={datadir}",
                    "--auth-root-authentication-method=normal", "--user=root"],
                   check=True, capture_output=True, timeout=180)
    server = MariaDB(port=_free_port(), socket=base / "sock")
    log = base / "mariadbd.err"
    proc = subprocess.Popen(
        [MARIADBD, "--no-defaults", f"--datadir={datadir}", f"--socket={server.socket}",
         f"--port={server.port}", "--bind-address=127.0.0.1", "--user=root",
         # Without it a loopback client may match the anonymous ''@localhost account.
         "--skip-name-resolve", f"--pid-file={base / 'mariadbd.pid'}", f"--log-error={log}",
         "--innodb-buffer-pool-size=64M", "--skip-log-bin"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: server.root().close() is None, 60, "MariaDB")
        root = server.root()
        with root.cursor() as cur:
            for host in ("%", "127.0.0.1"):
                cur.execute(f"CREATE USER '{BACKEND_USER}'@'{host}' "
                            f"IDENTIFIED BY '{BACKEND_PASSWORD}'")
            for db in ("db0", "db1", "db2"):
                cur.execute(f"CREATE DATABASE {db}")
                for host in ("%", "127.0.0.1"):
                    cur.execute(f"GRANT ALL ON {db}.* TO '{BACKEND_USER}'@'{host}'")
        root.close()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _server_xml(app_password: str = "app_pw") -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE mycat:server SYSTEM "server.dtd">
<mycat:server xmlns:mycat="http://io.mycat/">
    <system>
        <property name="charset">utf8</property>
    </system>
    <user name="app">
        <property name="password">{app_password}</property>
        <property name="schemas">shop</property>
    </user>
    <user name="report">
        <property name="password">report_pw</property>
        <property name="schemas">shop</property>
        <property name="readOnly">true</property>
    </user>
</mycat:server>
"""


def _schema_xml(backend_port: int, dead_port: int) -> str:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE mycat:schema SYSTEM "schema.dtd">
<mycat:schema xmlns:mycat="http://io.mycat/">
    <schema name="shop" checkSQLschema="true" sqlMaxLimit="1000">
        <table name="orders" dataNode="dn$0-2" rule="orders-by-id" primaryKey="id"/>
        <table name="customers" dataNode="dn0" primaryKey="id"/>
    </schema>
    <dataNode name="dn$0-2" dataHost="backend" database="db$0-2"/>
    <dataNode name="dn9" dataHost="gone" database="db0"/>
    <dataHost name="backend" balance="0" maxCon="100" minCon="5" writeType="0"
              switchType="1" slaveThreshold="100" dbType="mysql" dbDriver="native">
        <heartbeat>select user()</heartbeat>
        <writeHost host="hostM1" url="127.0.0.1:{backend_port}" user="{BACKEND_USER}"
                   password="{BACKEND_PASSWORD}"/>
    </dataHost>
    <!-- Nothing listens here: its heartbeat must fail. -->
    <dataHost name="gone" maxCon="10" minCon="1" balance="0" dbType="mysql" dbDriver="native">
        <heartbeat>select user()</heartbeat>
        <writeHost host="hostGone" url="127.0.0.1:{dead_port}" user="{BACKEND_USER}"
                   password="{BACKEND_PASSWORD}"/>
    </dataHost>
</mycat:schema>
"""


@dataclass
class Standin:
    proc: subprocess.Popen[bytes]
    port: int
    manager_port: int
    conf: Path
    log: Path

    def connect(self, user: str = "app", password: str = "app_pw",
                **kwargs: Any) -> pymysql.connections.Connection:
        kwargs.setdefault("autocommit", True)
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password,
                               connect_timeout=5, read_timeout=10, **kwargs)

    def manager(self, user: str = "app", password: str = "app_pw") -> ManagerClient:
        return ManagerClient("127.0.0.1", self.manager_port, user, password, timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired as exc:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"stand-in ignored SIGTERM; log:\n{self.log.read_text()}") from exc


def _accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        return True


@pytest.fixture
def standin(tmp_path: Path, mariadb: MariaDB) -> Iterator[Standin]:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "server.xml").write_text(_server_xml())
    (conf / "schema.xml").write_text(_schema_xml(mariadb.port, _free_port()))
    log = tmp_path / "standin.log"
    port, manager_port = _free_port(), _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stackha.lab.standin", "--conf", str(conf),
             "--host", "127.0.0.1", "--port", str(port), "--manager-port", str(manager_port)],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    server = Standin(proc, port, manager_port, conf, log)
    try:
        _wait_for(lambda: proc.poll() is None and _accepts(port) and _accepts(manager_port),
                  20, "mycat-standin")
        yield server
    finally:
        code = server.stop()
    assert code == 0, f"stand-in exited {code}; log:\n{log.read_text()}"


def _table() -> str:
    return f"t_{uuid.uuid4().hex[:10]}"


def _error_code(excinfo: pytest.ExceptionInfo[pymysql.MySQLError]) -> int:
    return int(excinfo.value.args[0])


def test_standin_login_and_simple_queries(standin: Standin) -> None:
    conn = standin.connect()
    with conn.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchall() == ((1,),)
        cur.execute("select user()")
        assert cur.fetchall() == (("app@127.0.0.1",),)
        cur.execute("show databases")
        assert cur.fetchall() == (("shop",),)
        cur.execute("use shop")
        cur.execute("select database()")
        assert cur.fetchall() == (("shop",),)
    conn.ping(reconnect=False)
    conn.close()
    assert "mycat-standin" in standin.log.read_text()


def test_standin_refuses_wrong_password_and_unknown_user(standin: Standin) -> None:
    with pytest.raises(pymysql.err.OperationalError) as wrong:
        standin.connect(password="not-the-password")
    assert _error_code(wrong) == 1045
    with pytest.raises(pymysql.err.OperationalError) as unknown:
        standin.connect(user="mallory", password="app_pw")
    assert _error_code(unknown) == 1045
    # A backend account is not a stand-in account.
    with pytest.raises(pymysql.err.OperationalError):
        standin.connect(user=BACKEND_USER, password=BACKEND_PASSWORD)


def test_standin_unknown_schema_is_refused(standin: Standin) -> None:
    conn = standin.connect()
    with conn.cursor() as cur, pytest.raises(pymysql.MySQLError) as excinfo:
        cur.execute("use nosuchschema")
    assert _error_code(excinfo) == 1049
    conn.close()


def test_standin_statements_land_in_backend(standin: Standin, mariadb: MariaDB) -> None:
    table = _table()
    conn = standin.connect(database="shop")
    with conn.cursor() as cur:
        cur.execute(f"create table {table} (id int primary key auto_increment, "
                    "name varchar(40), payload blob, price decimal(6,2))")
        assert cur.execute(f"insert into {table} (name, payload, price) "
                           "values ('first', x'00ff10', 12.50), ('second', NULL, 3.00)") == 2
        cur.execute(f"select id, name, payload, price from {table} order by id")
        rows = cur.fetchall()
    conn.close()
    assert [(r[0], r[1], r[2], str(r[3])) for r in rows] == [
        (1, "first", b"\x00\xff\x10", "12.50"), (2, "second", None, "3.00")]
    # The first dataNode of schema shop is dn0, which is db0 on the backend.
    direct = mariadb.backend("db0")
    with direct.cursor() as cur:
        cur.execute(f"select name from {table} order by id")
        assert cur.fetchall() == (("first",), ("second",))
    direct.close()


def test_standin_read_only_user_cannot_write(standin: Standin, mariadb: MariaDB) -> None:
    table = _table()
    app = standin.connect(database="shop")
    with app.cursor() as cur:
        cur.execute(f"create table {table} (id int primary key)")
        cur.execute(f"insert into {table} values (1)")
    app.close()
    report = standin.connect("report", "report_pw", database="shop")
    with report.cursor() as cur:
        for statement in (f"insert into {table} values (2)", f"delete from {table}",
                          f"/* hint */ UPDATE {table} SET id = 3", f"drop table {table}",
                          f"create table {table}_x (id int)", f"truncate table {table}"):
            with pytest.raises(pymysql.MySQLError) as excinfo:
                cur.execute(statement)
            assert _error_code(excinfo) == 1290, statement
        # A write hidden behind a read is no way round: the backend takes one statement only.
        with pytest.raises(pymysql.MySQLError):
            cur.execute(f"select 1; delete from {table}")
        cur.execute(f"select id from {table}")
        assert cur.fetchall() == ((1,),)
    report.close()
    direct = mariadb.backend("db0")
    with direct.cursor() as cur:
        cur.execute(f"select id from {table}")
        assert cur.fetchall() == ((1,),)
    direct.close()


def test_standin_heartbeat_runs_against_backends(standin: Standin, mariadb: MariaDB) -> None:
    rows = {row["NAME"]: row for row in standin.manager().heartbeat()}
    assert set(rows) == {"hostM1", "hostGone"}
    good = rows["hostM1"]
    assert good["RS_CODE"] == 1
    assert (good["HOST"], good["PORT"], good["TYPE"]) == ("127.0.0.1", mariadb.port, "mysql")
    assert set(good) == {"NAME", "TYPE", "HOST", "PORT", "RS_CODE", "RETRY", "STATUS",
                         "TIMEOUT", "EXECUTE_TIME", "LAST_ACTIVE_TIME", "STOP"}
    assert rows["hostGone"]["RS_CODE"] == -1
    datasource = standin.manager().datasource()
    assert {row["DATANODE"] for row in datasource} == {"dn0", "dn1", "dn2", "dn9"}


def test_standin_reload_config_applies_new_password(standin: Standin) -> None:
    before = standin.connect()
    (standin.conf / "server.xml").write_text(_server_xml(app_password="rotated_pw"))
    standin.manager("report", "report_pw").reload_config()
    fresh = standin.connect(password="rotated_pw")
    with fresh.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchall() == ((1,),)
    fresh.close()
    with pytest.raises(pymysql.err.OperationalError) as excinfo:
        standin.connect(password="app_pw")
    assert _error_code(excinfo) == 1045
    # Sessions opened before the reload carry on.
    with before.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchall() == ((1,),)
    before.close()


def test_standin_reload_config_all_waits_for_open_transaction(standin: Standin,
                                                              mariadb: MariaDB) -> None:
    table = _table()
    client = standin.connect(database="shop")
    manager = standin.manager()
    with client.cursor() as cur:
        cur.execute(f"create table {table} (id int primary key) engine=InnoDB")
        cur.execute("begin")
        cur.execute(f"insert into {table} values (1)")
        with pytest.raises(ReloadRefused) as refused:
            manager.reload_config_all(retries=1, backoff=0.1)
        assert "transaction" in refused.value.message
        assert refused.value.attempts == 2
        cur.execute("commit")
        manager.reload_config_all(retries=0)
        # The session reconnects to the backend after the full reload and still works.
        cur.execute(f"select id from {table}")
        assert cur.fetchall() == ((1,),)
    client.close()
    # START TRANSACTION ... ROLLBACK is tracked the same way.
    other = standin.connect(database="shop")
    with other.cursor() as cur:
        cur.execute("start transaction")
        cur.execute(f"insert into {table} values (2)")
        with pytest.raises(ReloadRefused):
            manager.reload_config_all(retries=0)
        cur.execute("rollback")
    manager.reload_config_all(retries=0)
    other.close()
    direct = mariadb.backend("db0")
    with direct.cursor() as cur:
        cur.execute(f"select id from {table}")
        assert cur.fetchall() == ((1,),)
    direct.close()


def test_standin_offline_and_online(standin: Standin) -> None:
    existing = standin.connect()
    manager = standin.manager()
    manager.offline()
    with pytest.raises(pymysql.err.OperationalError) as ping:
        existing.ping(reconnect=False)
    assert _error_code(ping) == 1053
    with pytest.raises(pymysql.err.OperationalError):
        standin.connect()
    with existing.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchall() == ((1,),)
    manager.online()
    existing.ping(reconnect=False)
    again = standin.connect()
    again.ping(reconnect=False)
    again.close()
    existing.close()


def test_standin_stops_on_sigterm_with_clients_connected(standin: Standin) -> None:
    client = standin.connect(database="shop")
    with client.cursor() as cur:
        cur.execute("select 1")
        assert cur.fetchall() == ((1,),)
    assert standin.stop() == 0
    assert "event=stopped" in standin.log.read_text()
    # The connected client was let go, not left hanging on a dead server.
    with pytest.raises(pymysql.err.OperationalError):
        client.ping(reconnect=False)
