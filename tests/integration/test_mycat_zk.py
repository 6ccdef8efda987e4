"""MyCat's own ZooKeeper layout and the mycat agent, against a real ZooKeeper, a real
MariaDB and mycat-standin (the stand-in, not MyCat itself)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import Permissions

from stackha.cli.main import main
from stackha.mycat.zklayout import to_json
from testkit import agent_credential
from testkit.agentlab import node_status, wait_for
from testkit.signing import harness_keys
from tests.conftest import COORDINATOR
from tests.integration.test_mycat_standin import (  # noqa: F401 (fixture)
    ROOT,
    MariaDB,
    _accepts,
    _free_port,
    mariadb,
)

pytestmark = pytest.mark.integration

GOLDEN = ROOT / "tests/unit/golden/mycat_zk_layout.json"


def _cluster_id(configs: Path, readers: str = "") -> str:
    """A MyCat cluster of this test's own, so tests never share /mycat/<id>."""
    cluster_id = f"mc-{uuid.uuid4().hex[:8]}"
    spec = configs / "stackha.yaml"
    text = spec.read_text().replace("cluster_id: mycat-cluster-1", f"cluster_id: {cluster_id}")
    if readers:
        text = text.replace("  root: /mycat\n", f"  root: /mycat\n  readers: [{readers}]\n")
    spec.write_text(text)
    return cluster_id


def _client(zookeeper, credential: str | None = COORDINATOR) -> KazooClient:
    client = KazooClient(hosts=zookeeper.hosts,
                         auth_data=[("digest", credential)] if credential else None)
    client.start(timeout=10)
    return client


def _push(configs: Path) -> int:
    return main(["push-config", "--configs", str(configs)])


def test_push_config_writes_mycat_layout_as_golden(configs, zookeeper, capsys):
    base = f"/mycat/{_cluster_id(configs)}"
    assert _push(configs) == 0
    golden = json.loads(GOLDEN.read_text())
    coordinator, anonymous = _client(zookeeper), _client(zookeeper, None)
    try:
        for entry in golden:
            path = f"{base}/{entry['path']}" if entry["path"] else base
            data, _ = coordinator.get(path)
            expected = entry["text"].encode() if "text" in entry else to_json(entry["json"])
            assert data == expected, path
        assert coordinator.exists(f"{base}/confInitialized") is not None
        for directory in ("line", "command", "bindata", "lock", "sequences/leader"):
            assert coordinator.exists(f"{base}/{directory}") is not None, directory
        # Default readers are the mycat nodes' addresses: loopback is not one of them.
        with pytest.raises(NoAuthError):
            anonymous.get(f"{base}/server/user")
        schema_stat = coordinator.exists(f"{base}/schema/schema")
        # Only what changed is written again (MyCat reloads on every schema/* write).
        (configs / "nginx/html/index.html").write_text("unrelated change\n")
        assert _push(configs) == 0
        assert coordinator.exists(f"{base}/schema/schema").version == schema_stat.version
        server = configs / "mycat/server.xml"
        server.write_text(server.read_text().replace("app_pw", "app_pw2"))
        assert _push(configs) == 0
        users = json.loads(coordinator.get(f"{base}/server/user")[0])
        assert users[0]["property"][0] == {"value": "app_pw2", "name": "password"}
        assert coordinator.exists(f"{base}/schema/schema").version == schema_stat.version
        # Rollback restores MyCat's layout along with the version.
        assert main(["config", "rollback", "1", "--configs", str(configs)]) == 0
        users = json.loads(coordinator.get(f"{base}/server/user")[0])
        assert users[0]["property"][0] == {"value": "app_pw", "name": "password"}
    finally:
        coordinator.stop()
        anonymous.stop()


def test_readers_may_read_but_not_change_the_layout(configs, zookeeper):
    base = f"/mycat/{_cluster_id(configs, readers='127.0.0.1')}"
    assert _push(configs) == 0
    anonymous = _client(zookeeper, None)
    try:
        assert b"app_pw" in anonymous.get(f"{base}/server/user")[0]
        with pytest.raises(NoAuthError):
            anonymous.set(f"{base}/server/user", b"[]")
        with pytest.raises(NoAuthError):
            anonymous.delete(f"{base}/confInitialized")
        # What MyCat does at run time: announce itself under line/, take locks.
        anonymous.create(f"{base}/line/mycat1", b"", ephemeral=True)
        anonymous.create(f"{base}/lock/confInit.lock", b"")
    finally:
        anonymous.stop()
    # A later push that changes the layout leaves the cluster node's ACL as it was: readers
    # may still add children there (it once flipped to read-only with every push).
    (configs / "mycat/server.xml").write_text(
        (configs / "mycat/server.xml").read_text().replace(">report_pw<", ">report_2<"))
    assert _push(configs) == 0
    coordinator = _client(zookeeper)
    try:
        readers = [acl for acl in coordinator.get_acls(base)[0] if acl.id.scheme == "ip"]
        assert readers and all(acl.perms & Permissions.CREATE for acl in readers)
    finally:
        coordinator.stop()
    anonymous = _client(zookeeper, None)
    try:
        anonymous.create(f"{base}/marker", b"", ephemeral=True)
    finally:
        anonymous.stop()


def test_layout_warnings_are_reported_at_push_time(configs, capsys):
    _cluster_id(configs)
    server = configs / "mycat/server.xml"
    server.write_text(server.read_text().replace(
        '<user name="report">', '<user name="report" defaultAccount="true">'))
    assert _push(configs) == 0
    err = capsys.readouterr().err
    where = re.escape(f"{configs}/mycat/server.xml")
    assert re.search(rf"warning: {where}: user\[name=report\]: attribute "
                     r"defaultAccount=\"true\": MyCat's ZooKeeper format has no place", err), err


def test_reload_zk_creates_command_nodes_in_one_step(configs, zookeeper, capsys):
    base = f"/mycat/{_cluster_id(configs)}"
    assert _push(configs) == 0
    assert main(["mycat", "reload-zk", "--node", "mycat2", "--configs", str(configs)]) == 0
    coordinator = _client(zookeeper)
    try:
        data, first = coordinator.get(f"{base}/command/mycat2")
        assert data == b"zk reload_from_zk"
        assert coordinator.get_children(f"{base}/command") == ["mycat2"]
        # A stale command (MyCat never picked it up) is replaced: a new creation MyCat sees.
        assert main(["mycat", "reload-zk", "--all", "--configs", str(configs)]) == 0
        assert sorted(coordinator.get_children(f"{base}/command")) == ["mycat1", "mycat2",
                                                                      "mycat3"]
        data, second = coordinator.get(f"{base}/command/mycat2")
        assert data == b"zk reload_from_zk" and second.czxid > first.czxid
    finally:
        coordinator.stop()
    capsys.readouterr()
    assert main(["mycat", "reload-zk", "--node", "nginx1", "--configs", str(configs)]) == 1
    assert "'nginx1' is not a mycat node" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The agent on a mycat node


class MycatNode:
    """mycat-standin serving the agent's target directory, and the agent for node mycat1."""

    def __init__(self, root: Path, configs: Path, zk_hosts: str) -> None:
        self.root, self.configs, self.zk_hosts = root, configs, zk_hosts
        self.conf = root / "conf"
        self.port, self.manager_port = _free_port(), _free_port()
        self.standin: subprocess.Popen[bytes] | None = None
        self.agent: subprocess.Popen[bytes] | None = None

    def start_standin(self) -> None:
        self.conf.mkdir(parents=True, exist_ok=True)
        for name in ("server.xml", "schema.xml", "rule.xml"):
            shutil.copy(self.configs / "mycat" / name, self.conf / name)
        with (self.root / "standin.log").open("ab") as out:
            self.standin = subprocess.Popen(
                [sys.executable, "-m", "stackha.lab.standin", "--conf", str(self.conf), "--host",
                 "127.0.0.1", "--port", str(self.port), "--manager-port",
                 str(self.manager_port)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        wait_for(lambda: _accepts_quietly(self.port) and _accepts_quietly(self.manager_port),
                 20, "mycat-standin")

    def start_agent(self, *extra: str) -> None:
        with (self.root / "agent.log").open("ab") as out:
            self.agent = subprocess.Popen(
                [sys.executable, "-m", "stackha", "agent", "--node", "mycat1",
                 "--configs", str(self.configs), "--zk", self.zk_hosts,
                 "--state-dir", str(self.root / "state"), "--mycat-dir", str(self.conf),
                 "--mycat-manager", f"127.0.0.1:{self.manager_port}",
                 "--mycat-manager-user", "report", "--mycat-health",
                 "--heartbeat", "0.5", "--health-wait", "3",
                 "--trusted-key", str(harness_keys().public), *extra],
                stdout=out, stderr=subprocess.STDOUT,
                env={**os.environ, "STACKHA_AGENT_CREDENTIAL": agent_credential("mycat1")})

    def login(self, password: str) -> None:
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="app", password=password,
                               connect_timeout=5, read_timeout=10)
        try:
            with conn.cursor() as cur:
                cur.execute("select 1")
                assert cur.fetchall() == ((1,),)
        finally:
            conn.close()

    def log(self, which: str) -> str:
        path = self.root / f"{which}.log"
        return path.read_text() if path.exists() else ""

    def close(self) -> None:
        for proc in (self.agent, self.standin):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _accepts_quietly(port: int) -> bool:
    try:
        return _accepts(port)
    except OSError:
        return False


@pytest.fixture
def mycat_node(tmp_path, configs, zookeeper, mariadb: MariaDB) -> Iterator[MycatNode]:  # noqa: F811
    _cluster_id(configs)
    schema = configs / "mycat/schema.xml"
    schema.write_text(schema.read_text().replace("10.77.0.30:3306", f"127.0.0.1:{mariadb.port}"))
    node = MycatNode(tmp_path / "mycat1", configs, zookeeper.hosts)
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace("mycat: {port: 8066,", f"mycat: {{port: {node.port},"))
    node.root.mkdir()
    node.start_standin()
    try:
        yield node
    finally:
        node.close()


def _applied(configs: Path, zookeeper, number: int) -> bool:
    status = node_status(configs, zookeeper.hosts, "mycat1")
    return bool(status) and status["applied_version"] == number


def test_agent_reloads_mycat_and_a_pushed_password_change_takes_effect(mycat_node, configs,
                                                                       zookeeper):
    assert _push(configs) == 0
    mycat_node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    myid = (mycat_node.conf / "myid.properties").read_text()
    assert "loadZk=true" in myid and "myid=mycat1" in myid
    assert (mycat_node.conf / "server.xml").read_bytes() == \
        (configs / "mycat/server.xml").read_bytes()
    mycat_node.login("app_pw")

    server = configs / "mycat/server.xml"
    server.write_text(server.read_text().replace(">app_pw<", ">rotated_pw<"))
    assert _push(configs) == 0
    wait_for(lambda: _applied(configs, zookeeper, 2), 30, "mycat1 to apply version 2")
    mycat_node.login("rotated_pw")
    with pytest.raises(pymysql.err.OperationalError) as refused:
        mycat_node.login("app_pw")
    assert refused.value.args[0] == 1045
    assert "command='reload @@config' result=ok" in mycat_node.log("standin")
    assert "event=mycat_reload_planned kind=config" in mycat_node.log("agent")
    # The reload went through the manager port with pymysql, which imports cryptography
    # where it is installed (here it is: the tests use it) for RSA logins that no MyCat
    # login needs: 8.4 MiB resident.
    assert mycat_node.agent is not None
    maps = Path(f"/proc/{mycat_node.agent.pid}/maps").read_text()
    assert "cryptography" not in maps

    # A dataHost change needs the full reload.
    schema = configs / "mycat/schema.xml"
    schema.write_text(schema.read_text().replace('maxCon="100"', 'maxCon="120"'))
    assert _push(configs) == 0
    wait_for(lambda: _applied(configs, zookeeper, 3), 30, "mycat1 to apply version 3")
    assert "command='reload @@config_all' result=ok" in mycat_node.log("standin")

    # Drain and undrain through the manager port.
    password_file = mycat_node.root / "report.pw"
    password_file.write_text("report_pw\n")
    manager = ["--configs", str(configs), "--manager-port", str(mycat_node.manager_port),
               "--user", "report", "--password-file", str(password_file)]
    assert main(["mycat", "offline", *manager]) == 0
    with pytest.raises(pymysql.err.OperationalError):
        mycat_node.login("rotated_pw")
    assert main(["mycat", "online", *manager]) == 0
    mycat_node.login("rotated_pw")

    # With the manager port gone the reload fails: the old files come back, the version is
    # reported rolled back (to be tried again: nothing said the files are wrong), and MyCat
    # keeps serving what it had.
    assert mycat_node.standin is not None
    mycat_node.standin.send_signal(signal.SIGTERM)
    mycat_node.standin.wait(timeout=20)
    server.write_text(server.read_text().replace(">rotated_pw<", ">third_pw<"))
    assert _push(configs) == 0

    def rejected() -> bool:
        status = node_status(configs, zookeeper.hosts, "mycat1")
        return bool(status) and status["last_error"].startswith("retrying version 4 in ") \
            and "rolled back at reload" in status["last_error"]

    wait_for(rejected, 30, "version 4 to be rolled back")
    assert b">rotated_pw<" in (mycat_node.conf / "server.xml").read_bytes()


def test_agent_drains_mycat_on_stop_and_undrains_on_start(mycat_node, configs, zookeeper):
    assert _push(configs) == 0
    mycat_node.start_agent("--mycat-drain", "0.5")
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    mycat_node.login("app_pw")
    assert mycat_node.agent is not None
    mycat_node.agent.send_signal(signal.SIGTERM)
    assert mycat_node.agent.wait(timeout=20) == 0
    assert "event=mycat_drained" in mycat_node.log("agent")
    with pytest.raises(pymysql.err.OperationalError):
        mycat_node.login("app_pw")  # offline: MyCat refuses new logins until `online`
    mycat_node.start_agent("--mycat-drain", "0.5")
    # The log is appended across runs: the first agent undrained once already.
    wait_for(lambda: mycat_node.log("agent").count("event=mycat_undrained") == 2, 30, "undrain")
    mycat_node.login("app_pw")


STARTER = """
import socket, subprocess, sys, time
conf, port, manager, log = sys.argv[1:5]
with open(log, "ab") as out:
    subprocess.Popen([sys.executable, "-m", "stackha.lab.standin", "--conf", conf, "--host",
                      "127.0.0.1", "--port", port, "--manager-port", manager],
                     stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                     start_new_session=True)
for _ in range(100):
    try:
        socket.create_connection(("127.0.0.1", int(manager)), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.2)
sys.exit("mycat-standin did not start")
"""


def test_agent_starts_mycat_when_the_manager_port_does_not_answer(mycat_node, configs,
                                                                 zookeeper):
    # MyCat is not running (a node's first version): the manager reload has nothing to talk
    # to, so the agent runs --mycat-reload to start it; later versions reload through 9066.
    assert mycat_node.standin is not None
    mycat_node.standin.send_signal(signal.SIGTERM)
    mycat_node.standin.wait(timeout=20)
    starter = mycat_node.root / "start-standin.py"
    starter.write_text(STARTER)
    start = " ".join([sys.executable, str(starter), str(mycat_node.conf), str(mycat_node.port),
                      str(mycat_node.manager_port), str(mycat_node.root / "standin.log")])
    assert _push(configs) == 0
    try:
        _first_start_then_reload(mycat_node, configs, zookeeper, start)
    finally:  # the standin the agent started is no child of this test
        subprocess.run(["pkill", "-f", "--", f"--manager-port {mycat_node.manager_port}"],
                       check=False)


def _first_start_then_reload(mycat_node, configs, zookeeper, start: str) -> None:
    mycat_node.start_agent("--mycat-reload", start)
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    assert "event=mycat_not_running action=start" in mycat_node.log("agent")
    mycat_node.login("app_pw")

    server = configs / "mycat/server.xml"
    server.write_text(server.read_text().replace(">app_pw<", ">rotated_pw<"))
    assert _push(configs) == 0
    wait_for(lambda: _applied(configs, zookeeper, 2), 30, "mycat1 to apply version 2")
    mycat_node.login("rotated_pw")
    assert mycat_node.log("agent").count("event=mycat_not_running") == 1
    assert "command='reload @@config' result=ok" in mycat_node.log("standin")


def test_maintenance_takes_mycat_offline_and_off_brings_it_back(mycat_node, configs,
                                                               zookeeper):
    # Issue #18: `stackha maintenance NODE on` puts MyCat offline on its manager port (new
    # logins refused, so the directors' checks drop it), and it stays so across an agent
    # restart; off puts it online again.
    assert _push(configs) == 0
    mycat_node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    mycat_node.login("app_pw")
    command = ["maintenance", "mycat1", "--configs", str(configs)]
    assert main([*command[:2], "on", *command[2:], "--reason", "jvm", "--drain-timeout",
                 "2"]) == 0
    assert "event=mycat_offline why=maintenance" in mycat_node.log("agent")
    with pytest.raises(pymysql.err.OperationalError):
        mycat_node.login("app_pw")
    status = node_status(configs, zookeeper.hosts, "mycat1")
    assert status is not None and status["maintenance_reason"] == "jvm"
    assert mycat_node.agent is not None
    mycat_node.agent.send_signal(signal.SIGTERM)
    assert mycat_node.agent.wait(timeout=20) == 0
    mycat_node.start_agent()
    wait_for(lambda: mycat_node.log("agent").count("event=mycat_offline") == 2, 30,
             "the restarted agent to keep MyCat offline")
    assert "event=mycat_undrained" not in mycat_node.log("agent")
    with pytest.raises(pymysql.err.OperationalError):
        mycat_node.login("app_pw")
    assert main([*command[:2], "off", *command[2:]]) == 0
    wait_for(lambda: "event=mycat_online why=maintenance_off" in mycat_node.log("agent"), 30,
             "MyCat online again")
    mycat_node.login("app_pw")


def test_a_version_that_leaves_mycat_alone_does_not_touch_what_mycat_rewrote(mycat_node,
                                                                             configs, zookeeper):
    """In ZooKeeper mode MyCat rewrites conf/{schema,server,rule}.xml from the layout (in its
    own rendering). A version that changes nothing of MyCat's must not put the agent's bytes
    back and reload: in the lab every push, nginx-only ones too, cost all three MyCat nodes a
    `reload @@config`, which under load stalled SQL (85 of 2538 drill probes in bad-config)."""
    assert _push(configs) == 0
    mycat_node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    # MyCat's rendering of the same schema: another attribute value it carries, say.
    schema = mycat_node.conf / "schema.xml"
    rewritten = schema.read_text().replace('sqlMaxLimit="1000"', 'sqlMaxLimit="1001"')
    assert rewritten != schema.read_text()
    schema.write_text(rewritten)
    reloads = mycat_node.log("standin").count("command='reload @@config")
    page = configs / "nginx/html/index.html"
    page.write_text(page.read_text() + "<!-- a change for the nginx nodes only -->\n")
    assert _push(configs) == 0
    wait_for(lambda: _applied(configs, zookeeper, 2), 30, "mycat1 to apply version 2")
    assert schema.read_text() == rewritten
    assert mycat_node.log("standin").count("command='reload @@config") == reloads
    assert "event=mycat_files_left_to_mycat version=2" in mycat_node.log("agent")
    # A version that does change MyCat's files is written (and reloaded) as before.
    server = configs / "mycat/server.xml"
    server.write_text(server.read_text().replace(">app_pw<", ">rotated_pw<"))
    assert _push(configs) == 0
    wait_for(lambda: _applied(configs, zookeeper, 3), 30, "mycat1 to apply version 3")
    mycat_node.login("rotated_pw")
    assert mycat_node.log("standin").count("command='reload @@config") > reloads


def test_a_version_mycat_could_not_take_is_tried_again_once_it_answers(mycat_node, configs,
                                                                       zookeeper):
    """MyCat 1.6 opens its ports before its start-up is done and sends no greeting while its
    main thread waits for the backends (60 s in the lab when MariaDB was not up yet). That
    says nothing about the files: the version is put back and tried again later, never
    refused for good (the lab's first version was refused on it once). A stopped process is
    that MyCat from outside: the kernel takes the connection, nothing answers."""
    assert _push(configs) == 0
    mycat_node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), 30, "mycat1 to apply version 1")
    assert mycat_node.standin is not None
    mycat_node.standin.send_signal(signal.SIGSTOP)
    try:
        server = configs / "mycat/server.xml"
        server.write_text(server.read_text().replace(">app_pw<", ">rotated_pw<"))
        assert _push(configs) == 0

        def retrying() -> str:
            status = node_status(configs, zookeeper.hosts, "mycat1") or {}
            error = str(status.get("last_error", ""))
            return error if error.startswith("retrying version 2 in ") else ""

        error = str(wait_for(retrying, 60, "version 2 to be put back and retried"))
        assert "rolled back at reload" in error and "not a MySQL greeting" in error, error
        status = node_status(configs, zookeeper.hosts, "mycat1")
        assert status is not None and status["applied_version"] == 1
        assert status["rejected_version"] != 2
        assert b">app_pw<" in (mycat_node.conf / "server.xml").read_bytes()
    finally:
        mycat_node.standin.send_signal(signal.SIGCONT)
    wait_for(lambda: _applied(configs, zookeeper, 2), 60, "version 2 applied once MyCat answers")
    mycat_node.login("rotated_pw")
    assert "event=apply_retry_planned version=2 attempt=1" in mycat_node.log("agent")
