"""End to end against the compose lab: VIPs, failover, configuration pushes, teardown.

Traffic goes only to the lab's private compose network (10.77.0.0/24 on this machine).
"""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
import uuid
from pathlib import Path

import pymysql
import pytest

from testkit import ci_has_mycat, skip_unless_ci
from tests.e2e.conftest import (
    ROOT,
    UP_TIMEOUT,
    Lab,
    lab_ready,
    needs_mycat_release,
    query,
    stackha,
    status,
    wait_until,
)

pytestmark = pytest.mark.e2e

WEB_VIP = "http://10.77.0.100/"
SQL_VIP = ("10.77.0.200", 8066)
SQL_USER = ("app", "app_pw", "shop")  # the demo account of configs/mycat/server.xml


def http_get(url: str, timeout: float = 2.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def sql(statement: str, host: str = SQL_VIP[0], port: int = SQL_VIP[1]) -> list[tuple]:
    user, password, database = SQL_USER
    return query(host, port, user, password, database, statement)


def test_web_vip_answers(lab: Lab):
    assert "stackha demo" in http_get(WEB_VIP)


def test_sql_through_the_mycat_vip(lab: Lab):
    # customers: a table of the example schema on dn0 only (MyCat routes only the tables its
    # schema names; the stand-in passes anything through).
    assert sql("select 1") == [(1,)]
    sql("create table if not exists customers (id int primary key, note varchar(20))")
    key = int(uuid.uuid4().int % 1_000_000) + 1_000_000
    try:
        sql(f"insert into customers (id, note) values ({key}, 'through the VIP')")
        assert sql(f"select note from customers where id = {key}") == [("through the VIP",)]
    finally:
        sql(f"delete from customers where id = {key}")


def test_web_vip_survives_the_nginx_master_killed(lab: Lab):
    master = lab.master_of("web")
    lab.container(master).kill()
    try:
        started = time.monotonic()
        wait_until("the web VIP answering from the other node",
                   lambda: "stackha demo" in http_get(WEB_VIP, timeout=0.5), timeout=15,
                   interval=0.1)
        outage = time.monotonic() - started
        assert outage < 10
        other = wait_until("the other nginx node MASTER", lambda: lab.master_of("web"),
                           timeout=15)
        assert other != master
    finally:
        lab.restart(master)


def test_pushed_nginx_page_is_served_by_both_nodes(lab: Lab, tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    marker = f"e2e page {uuid.uuid4().hex}"
    page = configs / "nginx/html/index.html"
    page.write_text(page.read_text() + f"<p>{marker}</p>\n")
    stackha("push-config", "--configs", str(configs), "-m", "e2e: changed page")
    try:
        for node in ("10.77.0.11", "10.77.0.12"):
            wait_until(f"{node} serving the new page",
                       lambda n=node: marker in http_get(f"http://{n}/"), timeout=30)

        def all_on_new_version() -> bool:
            doc = status()
            current = doc["current_version"]
            return all(n["applied_version"] == current for n in doc["nodes"])

        wait_until("every node on the new version", all_on_new_version, timeout=30)
        table = stackha("status").stdout
        assert "(drift)" not in table
    finally:
        stackha("push-config", "-m", "e2e: page back")
        wait_until("the original page back", lambda: marker not in http_get(WEB_VIP), 30)


def _director_macs(lab: Lab, director: str) -> str:
    done = lab.container(director).exec_run(["nft", "list", "table", "netdev", "stackha_lvs"])
    return done.output.decode()


def _mac_of(lab: Lab, service: str) -> str:
    networks = lab.container(service).attrs["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["MacAddress"]


def test_sql_survives_a_mycat_realserver_killed(lab: Lab):
    director = lab.master_of("mycat")
    victim = lab.service_of("mycat2")
    mac = _mac_of(lab, victim)
    assert mac in _director_macs(lab, director)
    lab.container(victim).kill()
    try:
        wait_until("the director dropping the dead realserver",
                   lambda: mac not in _director_macs(lab, director), timeout=15)
        for _ in range(5):  # fresh connections, each forwarded anew
            assert sql("select 1") == [(1,)]
    finally:
        lab.restart(victim)
    wait_until("the director taking it back", lambda: mac in _director_macs(lab, director),
               timeout=30)


def test_sql_survives_the_active_director_killed(lab: Lab):
    director = lab.master_of("mycat")
    lab.container(director).kill()
    try:
        started = time.monotonic()
        wait_until("SQL through the VIP again",
                   lambda: sql("select 1") == [(1,)], timeout=20, interval=0.2)
        assert time.monotonic() - started < 15
        assert wait_until("a new mycat master", lambda: lab.master_of("mycat"),
                          timeout=15) != director
    finally:
        lab.restart(director)


def _login_report(password: str) -> list[tuple]:
    return query(*SQL_VIP, "report", password, "shop", "select 1")


def test_pushed_password_change_works_through_the_mycat_vip(lab: Lab, tmp_path: Path):
    # `report`, not `app`: the directors' health checks log in as app, so rotating app's
    # password would need their password file changed too.
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    server = configs / "mycat/server.xml"
    server.write_text(server.read_text().replace(">report_pw<", ">report_rotated<"))
    stackha("push-config", "--configs", str(configs), "-m", "e2e: report password rotated")
    try:
        # Every realserver must have reloaded before the password goes back: the directors may
        # send a login to any of them, and five logins through the VIP need not reach all
        # three (the sh scheduler hashes one client to one realserver).
        wait_until("every agent on the rotated password", lab_ready, timeout=120, interval=1)
        wait_until("the new password through the VIP, five times",
                   lambda: all(_login_report("report_rotated") == [(1,)] for _ in range(5)),
                   timeout=60, interval=1)
        with pytest.raises(pymysql.err.OperationalError) as refused:
            _login_report("report_pw")
        assert refused.value.args[0] == 1045
    finally:
        stackha("push-config", "-m", "e2e: report password back")
    wait_until("the old password back", lambda: _login_report("report_pw") == [(1,)],
               timeout=60, interval=1)
    # Every agent done with its reload: a push landing while one still reloads MyCat through
    # its manager port races MyCat's own ZooKeeper reload ("notifly key ... error" in its log).
    wait_until("every agent ready", lab_ready, timeout=120, interval=1)


def test_the_lab_runs_the_mycat_release_it_was_given(lab: Lab):
    # `make test` passes ../shared/mycat/'s release: the lab must not fall back to the stand-in.
    if not os.environ.get("STACKHA_MYCAT_TARBALL"):
        skip_unless_ci("no MyCat release given (STACKHA_MYCAT_TARBALL unset)",
                       ci_has_it=ci_has_mycat())
    assert lab.mycat_release()
    for node in ("mycat1", "mycat2", "mycat3"):
        assert lab.service_of(node) == node


def _mycat_log(lab: Lab, node: str) -> str:
    done = lab.container(lab.service_of(node)).exec_run(["cat", "/opt/mycat/logs/mycat.log"])
    return done.output.decode(errors="replace")


# What MyCat 1.6.6.1 logs when its ZooKeeper layout is incomplete, JAXB cannot write conf/ or
# a ZooKeeper-triggered reload fails (refused logins, e.g. the agent trying a new password
# before the reload, are ERROR lines too, and expected).
LOAD_ERRORS = ("NullPointerException", "IndexOutOfBoundsException", "PropertyException",
               "ZookeeperProcessListen notifly key")


def test_a_push_reaches_every_mycat_through_its_own_zookeeper_mode(lab: Lab, tmp_path: Path):
    needs_mycat_release(lab, "the stand-in has no ZooKeeper mode")
    wait_until("every agent ready", lab_ready, timeout=120, interval=1)
    before = {n: len(_mycat_log(lab, n)) for n in ("mycat1", "mycat2", "mycat3")}
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    schema = configs / "mycat/schema.xml"
    # sqlMaxLimit: a schema setting only MyCat reads; every node must re-read schema/schema.
    schema.write_text(schema.read_text().replace('sqlMaxLimit="1000"', 'sqlMaxLimit="999"'))
    stackha("push-config", "--configs", str(configs), "-m", "e2e: sqlMaxLimit 999")
    try:
        for node in before:
            wait_until(f"{node} re-reading schema/schema from ZooKeeper",
                       lambda n=node: "path is: /mycat/mycat-cluster-1/schema/schema"
                       in _mycat_log(lab, n)[before[n]:], timeout=60, interval=1)
            conf = lab.container(lab.service_of(node)).exec_run(
                ["cat", "/opt/mycat/conf/schema.xml"]).output.decode()
            assert 'sqlMaxLimit="999"' in conf
        assert sql("select 1") == [(1,)]
    finally:
        stackha("push-config", "-m", "e2e: sqlMaxLimit back")
    wait_until("every agent ready", lab_ready, timeout=120, interval=1)
    for node in before:
        # What these two pushes made MyCat log (earlier scenarios, a ZooKeeper outage among
        # them, make it log errors of its own).
        log = _mycat_log(lab, node)[before[node]:]
        assert not [e for e in LOAD_ERRORS if e in log], (node, [
            line for line in log.splitlines() if any(e in line for e in LOAD_ERRORS)][:5])


def test_down_leaves_nothing_behind(lab: Lab):
    stackha("down", "--volumes", timeout=300)
    lab.down_done = True
    selector = {"label": "com.docker.compose.project=stackha"}
    docker = lab.docker
    assert docker.containers.list(all=True, filters=selector) == []  # type: ignore[attr-defined]
    assert docker.networks.list(filters=selector) == []  # type: ignore[attr-defined]
    assert docker.volumes.list(filters=selector) == []  # type: ignore[attr-defined]
    assert not lab_ready()
    # The bridge is gone with the lab: status says so and sends nothing to 10.77.0.x.
    down = stackha("status", check=False)
    assert down.returncode != 0 and "the lab is down: its bridge stackha0" in down.stderr
    if not lab.started_here:
        # The lab was up before the tests: leave it as it was found.
        assert stackha("up", timeout=UP_TIMEOUT).returncode == 0
        assert lab_ready()
