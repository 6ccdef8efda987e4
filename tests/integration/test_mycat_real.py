"""The agent's MyCat reload against the real MyCat 1.6.6.1 (a JVM on loopback) and a real
MariaDB: after each reload it asks MyCat on its manager port what it runs, and a reload that
leaves MyCat on anything but the new files is a failure with MyCat's reason.

Needs the release tarball (../shared/mycat/ or $STACKHA_MYCAT_TARBALL); every address in the
files is loopback, and testkit.mycatprocess refuses to start MyCat on anything else.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pymysql.cursors
import pytest

from stackha.agent.mycatrole import ManagerReload, MycatManagerSettings
from stackha.checks.probes import check_mysql
from stackha.mycat.manager import ManagerClient
from testkit import ci_has_mycat, skip_unless_ci
from testkit.localzk import free_port
from testkit.mycatprocess import RealMycat, release_tarball, with_ports
from tests.integration.test_mycat_standin import (  # noqa: F401 (fixture)
    BACKEND_PASSWORD,
    BACKEND_USER,
    MariaDB,
    mariadb,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TARBALL = release_tarball()


def _example(backend_port: int) -> dict[str, str]:
    files = {p.name: p.read_text() for p in (ROOT / "configs/mycat").iterdir()}
    files["schema.xml"] = files["schema.xml"].replace("10.77.0.30:3306",
                                                      f"127.0.0.1:{backend_port}")
    return files


@pytest.fixture(scope="module")
def mycat(tmp_path_factory: pytest.TempPathFactory, mariadb: MariaDB  # noqa: F811
          ) -> Iterator[RealMycat]:
    if TARBALL is None:
        skip_unless_ci("no MyCat release tarball (../shared/mycat/ or $STACKHA_MYCAT_TARBALL)",
                       ci_has_it=ci_has_mycat())
    server = RealMycat.unpack(TARBALL, tmp_path_factory.mktemp("mycat"))
    server.write_conf(_example(mariadb.port))
    server.start()
    yield server
    server.stop()


def _reload(server: RealMycat, files: dict[str, str], timeout: float = 30.0
            ) -> tuple[ManagerReload, str | None]:
    """What the agent does: plan the reload against the files on disk, write, reload."""
    reload = ManagerReload(MycatManagerSettings(port=server.manager_port, user="app",
                                                timeout=timeout, verify_wait=0.5),
                           server.conf)
    data = {name: (with_ports(content, server.sql_port, server.manager_port)
                   if name == "server.xml" else content).encode()
            for name, content in files.items()}
    reload.prepare(data)
    for name, content in data.items():
        (server.conf / name).write_bytes(content)
    return reload, reload()


def _login(server: RealMycat, user: str, password: str) -> None:
    pymysql.connect(host="127.0.0.1", port=server.sql_port, user=user, password=password,
                    database="shop", connect_timeout=5).close()


def test_real_mycat_runs_what_it_was_given(mycat: RealMycat, mariadb: MariaDB):  # noqa: F811
    reload, failed = _reload(mycat, _example(mariadb.port))
    assert failed is None
    assert reload.check_running() is None
    assert {r["DATABASE"] for r in mycat.manager("app", "app_pw").databases()} == {"shop"}


def test_password_rotation_is_verified_by_logging_in(mycat: RealMycat,
                                                     mariadb: MariaDB):  # noqa: F811
    files = _example(mariadb.port)
    files["server.xml"] = files["server.xml"].replace(">report_pw<", ">report_new<")
    _, failed = _reload(mycat, files)
    assert failed is None
    _login(mycat, "report", "report_new")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        _login(mycat, "report", "report_pw")
    assert refused.value.args[0] == 1045
    _, failed = _reload(mycat, _example(mariadb.port))
    assert failed is None


def test_full_reload_onto_a_dead_backend_is_a_failure_with_mycats_reason(
        mycat: RealMycat, mariadb: MariaDB):  # noqa: F811
    # One more dataNode, on a dataHost whose only writeHost listens nowhere. MyCat 1.6.6.1
    # never answers that reload @@config_all and keeps running the old dataNodes: the agent
    # must say so instead of waiting for an OK or calling it MyCat being down.
    good = _example(mariadb.port)
    bad = dict(good)
    bad["schema.xml"] = good["schema.xml"].replace(
        '<table name="customers" dataNode="dn0" primaryKey="id"/>',
        '<table name="customers" dataNode="dn0" primaryKey="id"/>\n'
        '        <table name="audit" dataNode="dn3" primaryKey="id"/>').replace(
        '    <dataHost name="backend"',
        '    <dataNode name="dn3" dataHost="dead" database="db3"/>\n'
        '    <dataHost name="dead" balance="0" maxCon="10" minCon="1" writeType="0" '
        'switchType="1" dbType="mysql" dbDriver="native"><heartbeat>select user()</heartbeat>'
        f'<writeHost host="hostD" url="127.0.0.1:{free_port()}" user="mycat" '
        'password="mycat_backend_pw"/></dataHost>\n'
        '    <dataHost name="backend"')
    reload, failed = _reload(mycat, bad, timeout=5)
    assert reload.kind == "config_all"
    assert failed is not None, "a reload onto a dead backend must not pass"
    print(f"\nreported: {failed}")
    assert failed.startswith("reload @@config_all on 127.0.0.1:")
    assert "no answer within 5 s" in failed
    assert "MyCat runs dataNodes dn0, dn1, dn2, the files define dn0, dn1, dn2, dn3" in failed
    # Rolled back as the agent does: the old files again, reloaded and verified.
    _, failed = _reload(mycat, good)
    assert failed is None
    assert {r["DATANODE"] for r in mycat.manager("app", "app_pw").datasource()} == \
        {"dn0", "dn1", "dn2"}


def test_the_agents_mysql_client_reads_the_real_mycat_as_pymysql_does(
        mycat: RealMycat, mariadb: MariaDB):  # noqa: F811
    # stackha.checks.mysqlwire (the agent's own client) against pymysql, the oracle, on the
    # same manager command; counters (ACTIVE, IDLE, EXECUTE...) may move between the two.
    ours = ManagerClient("127.0.0.1", mycat.manager_port, "app", "app_pw").datasource()
    with pymysql.connect(host="127.0.0.1", port=mycat.manager_port, user="app",
                         password="app_pw", cursorclass=pymysql.cursors.DictCursor) as conn:
        with conn.cursor() as cursor:
            cursor.execute("show @@datasource")
            theirs = cursor.fetchall()
    assert [list(row) for row in ours] == [list(row) for row in theirs]
    stable = ("DATANODE", "NAME", "TYPE", "HOST", "PORT")
    assert [[row[key] for key in stable] for row in ours] == \
        [[row[key] for key in stable] for row in theirs]
    assert isinstance(ours[0]["PORT"], int)


def test_the_check_logs_in_to_the_real_mycat_and_mariadb_and_names_a_refusal(
        mycat: RealMycat, mariadb: MariaDB):  # noqa: F811
    assert check_mysql("127.0.0.1", mycat.sql_port, "app", "app_pw", timeout=5,
                       database="shop") is None
    refused = check_mysql("127.0.0.1", mycat.sql_port, "app", "wrong", timeout=5)
    assert refused is not None and refused.startswith(
        f"127.0.0.1:{mycat.sql_port}: login as app failed: Access denied for user 'app'")
    # MariaDB greets with the plugin name (MyCat 1.6 does not): the other form of the login.
    assert check_mysql("127.0.0.1", mariadb.port, BACKEND_USER, BACKEND_PASSWORD,
                       timeout=5) is None
    refused = check_mysql("127.0.0.1", mariadb.port, BACKEND_USER, "wrong", timeout=5)
    assert refused is not None and "Access denied" in refused


def test_ddl_through_mycat_leaves_its_reloads_answered(tmp_path: Path,
                                                      mariadb: MariaDB):  # noqa: F811
    # MyCat 1.6's global-table consistency check (useGlobleTableCheck, on unless server.xml
    # says 0) queues a task that sleeps ten minutes on MyCat's business executor for every
    # DDL statement on a global table (`region` in the example), and `reload @@config` runs
    # on that same executor (4 threads on 2 CPUs). In CI the e2e suite's CREATE TABLEs
    # through the VIP, all hashed to one realserver, left that MyCat's next reload
    # unanswered for the rest of the run. A fresh MyCat: a busy executor would hold the
    # module's shared one up for ten minutes.
    if TARBALL is None:
        skip_unless_ci("no MyCat release tarball (../shared/mycat/ or $STACKHA_MYCAT_TARBALL)",
                       ci_has_it=ci_has_mycat())
    (tmp_path / "mycat").mkdir()
    server = RealMycat.unpack(TARBALL, tmp_path / "mycat")
    server.write_conf(_example(mariadb.port))
    server.start()
    try:
        conn = pymysql.connect(host="127.0.0.1", port=server.sql_port, user="app",
                               password="app_pw", database="shop", connect_timeout=5,
                               read_timeout=20)
        try:
            with conn.cursor() as cur:
                # Well over the executor's size on any machine CI runs on.
                for _ in range(4 * (os.cpu_count() or 2) + 4):
                    cur.execute("create table if not exists region (id int primary key, "
                                "name varchar(20))")
        finally:
            conn.close()
        ManagerClient("127.0.0.1", server.manager_port, "app", "app_pw",
                      timeout=20).reload_config()
    finally:
        server.stop()
