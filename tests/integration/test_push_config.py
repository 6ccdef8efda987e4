"""`stackha push-config` and `stackha config …` against a real ZooKeeper."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from stackha.cli.main import main
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import agent_credential
from tests.conftest import AGENT, COORDINATOR

pytestmark = pytest.mark.integration


def _store(configs: Path, zookeeper, credential: str | None = COORDINATOR) -> ZooKeeperStore:
    # Read the cluster name directly: some tests break the spec on purpose.
    cluster = re.search(r"^cluster: (\S+)$", (configs / "stackha.yaml").read_text(), re.M)[1]
    identity = Identity.parse(credential, "test") if credential else None
    store = ZooKeeperStore(zookeeper.hosts, "/stackha", cluster, identity)
    store.start()
    return store


def _snapshot(configs: Path, zookeeper) -> tuple[int | None, list[int]]:
    store = _store(configs, zookeeper)
    try:
        return store.current_number(), store.version_numbers()
    finally:
        store.close()


def _push(configs: Path, *extra: str) -> int:
    return main(["push-config", "--configs", str(configs), *extra])


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_valid_push_publishes_a_version_with_every_file(configs, zookeeper, capsys):
    assert _push(configs, "-m", "first") == 0
    assert "published version 1" in capsys.readouterr().out
    store = _store(configs, zookeeper)
    try:
        assert store.current_number() == 1
        version, problems = store.read_version(1), []
    finally:
        store.close()
    assert not problems and version is not None
    assert version.message == "first"
    for path in ("stackha.yaml", "nginx/nginx.conf", "mycat/schema.xml", "mycat/server.xml"):
        assert version.bundle.files[path].content == (configs / path).read_bytes()
    assert version.bundle.files["mycat/server.xml"].mode == 0o600


def test_identical_push_says_unchanged(configs, zookeeper, capsys):
    assert _push(configs) == 0
    capsys.readouterr()
    assert _push(configs) == 0
    assert "unchanged" in capsys.readouterr().out
    assert _snapshot(configs, zookeeper) == (1, [1])


def test_dry_run_prints_a_diff_and_publishes_nothing(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _edit(configs / "nginx/html/index.html", "demo stack", "demo stack, edited")
    capsys.readouterr()
    assert _push(configs, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "+<p>Served by the stackha demo stack, edited" in out
    assert "--- v1/nginx/html/index.html" in out
    assert _snapshot(configs, zookeeper) == (1, [1])


INVALID = [
    ("spec", "stackha.yaml", "virtual_router_id: 51", "virtual_router_id: 300",
     "stackha.yaml: line"),
    ("nginx", "nginx/nginx.conf", "sendfile on;", "sendfile on;\n    no_such_directive 1;",
     'nginx/nginx.conf: line 16: nginx -t: unknown directive "no_such_directive"'),
    ("mycat-reference", "mycat/server.xml", ">shop<", ">warehouse<", "mycat/server.xml"),
    ("yaml-syntax", "stackha.yaml", "chroot: /stackha", "chroot: [/stackha",
     "stackha.yaml: line 8: YAML syntax error"),
    ("unknown-key", "stackha.yaml", "    preempt: true\n",
     "    preempt: true\n    prempt_delay: 1\n",
     "vrrp_groups[0].prempt_delay: unknown key"),
    ("wrong-type", "stackha.yaml", "port: 8066\n    scheduler", "port: eighty\n    scheduler",
     "lvs_services[0].port: must be integer, got string"),
    ("duplicate-vrid", "stackha.yaml", "virtual_router_id: 52", "virtual_router_id: 51",
     "virtual_router_id 51 is already used by group 'web' on the same network segment"),
    ("duplicate-vip", "stackha.yaml", "vips: [10.77.0.200/24]", "vips: [10.77.0.100/24]",
     "vrrp_groups[1].vips[0]: VIP 10.77.0.100 is already claimed by group 'web'"),
    ("priority", "stackha.yaml", "{nginx1: 150,", "{nginx1: 255,",
     "vrrp_groups[0].members.nginx1: priority 255 outside 1..254"),
    ("master-nopreempt", "stackha.yaml", "{director1: 150,",
     "{director1: {priority: 150, state: MASTER},",
     "state MASTER cannot be combined with preempt: false"),
    ("unknown-member", "stackha.yaml", "nginx2: 100}", "nginx9: 100}",
     "member 'nginx9' is not a node of the spec"),
    ("table-datanode", "mycat/schema.xml", 'dataNode="dn0"', 'dataNode="dn9"',
     "mycat/schema.xml: line 17: schema[name=shop]/table[name=customers]: dataNode 'dn9' is "
     "not defined"),
    ("table-rule", "mycat/schema.xml", 'rule="orders-by-id"', 'rule="no-such-rule"',
     "rule 'no-such-rule' is not a tableRule defined in rule.xml"),
    ("datanode-datahost", "mycat/schema.xml", 'dataHost="backend" database',
     'dataHost="nohost" database', "dataHost 'nohost' is not defined"),
]


@pytest.mark.parametrize("where,file,old,new,expected", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_input_is_rejected_and_zookeeper_untouched(configs, zookeeper, capsys,
                                                           where, file, old, new, expected):
    assert _push(configs) == 0
    before = _snapshot(configs, zookeeper)
    _edit(configs / file, old, new)
    capsys.readouterr()
    assert _push(configs) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert "nothing published" in err
    assert _snapshot(configs, zookeeper) == before


def test_vip_outside_the_subnet_is_a_warning_and_still_published(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _edit(configs / "stackha.yaml", "vips: [10.77.0.100/24]", "vips: [10.78.0.100/24]")
    capsys.readouterr()
    assert _push(configs) == 0
    err = capsys.readouterr().err
    assert "warning: " in err and "VIP 10.78.0.100/24 is outside the subnet" in err, err
    assert _snapshot(configs, zookeeper) == (2, [1, 2])


def test_oversize_bundle_is_refused_whole(configs, zookeeper, capsys):
    assert _push(configs) == 0
    (configs / "nginx/html/big.txt").write_text("x" * 1_200_000)
    capsys.readouterr()
    assert _push(configs) == 1
    err = capsys.readouterr().err
    assert "over the 1000000 byte limit" in err and "nothing was written" in err
    assert _snapshot(configs, zookeeper) == (1, [1])


def test_rollback_publishes_a_new_version_equal_to_the_old(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _edit(configs / "nginx/html/index.html", "demo stack", "demo stack v2")
    assert _push(configs) == 0
    assert main(["config", "rollback", "1", "--configs", str(configs)]) == 0
    assert "published version 3 equal to version 1" in capsys.readouterr().out
    store = _store(configs, zookeeper)
    try:
        v1 = store.read_version(1)
        v3 = store.read_version(3)
        assert store.current_number() == 3
    finally:
        store.close()
    assert v1.digest == v3.digest and v3.message == "rollback to version 1"
    assert main(["config", "history", "--configs", str(configs)]) == 0
    history = capsys.readouterr().out.splitlines()
    assert len(history) == 3 and history[-1].startswith("*     3")
    assert main(["config", "diff", "1", "2", "--configs", str(configs)]) == 0
    assert "+<p>Served by the stackha demo stack v2" in capsys.readouterr().out


def test_config_show_masks_passwords_unless_asked(configs, capsys):
    assert _push(configs) == 0
    capsys.readouterr()
    assert main(["config", "show", "1", "mycat/server.xml", "--configs", str(configs)]) == 0
    masked = capsys.readouterr().out
    assert "app_pw" not in masked and "******" in masked
    assert main(["config", "show", "1", "mycat/server.xml", "--show-secrets",
                 "--configs", str(configs)]) == 0
    assert "app_pw" in capsys.readouterr().out


def test_concurrent_pushes_stay_linear(configs, zookeeper, tmp_path):
    assert _push(configs) == 0
    copies = []
    for index in range(4):
        copy = tmp_path / f"c{index}"
        subprocess.run(["cp", "-r", str(configs), str(copy)], check=True)
        (copy / "nginx/html/index.html").write_text(f"writer {index}\n")
        copies.append(copy)
    codes: list[int] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(copies))

    def push(copy: Path) -> None:
        barrier.wait()
        done = subprocess.run([sys.executable, "-m", "stackha", "push-config",
                               "--configs", str(copy)], env=os.environ.copy(),
                              capture_output=True, text=True)
        codes.append(done.returncode)
        errors.append(done.stderr[-2000:] if done.returncode else "")

    threads = [threading.Thread(target=push, args=(c,)) for c in copies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [0, 0, 0, 0], "\n".join(errors)
    current, numbers = _snapshot(configs, zookeeper)
    assert numbers == [1, 2, 3, 4, 5] and current == 5
    store = _store(configs, zookeeper)
    try:
        pages = {store.read_version(n).bundle.text(
            "nginx/html/index.html") for n in numbers[1:]}
    finally:
        store.close()
    assert pages == {f"writer {i}\n" for i in range(4)}


def test_coordinator_killed_mid_push_leaves_no_partial_version(configs, zookeeper):
    assert _push(configs) == 0
    rng = random.Random(7)
    for attempt in range(12):
        (configs / "nginx/html/index.html").write_text(f"attempt {attempt}\n")
        process = subprocess.Popen([sys.executable, "-m", "stackha", "push-config",
                                    "--configs", str(configs)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, 1.2))
        process.kill()
        process.wait()
        store = _store(configs, zookeeper)
        try:
            current, numbers = store.current_number(), store.version_numbers()
            # Every version that exists is whole, and current names the newest one.
            assert current == numbers[-1]
            for number in numbers:
                version = store.read_version(number)
                assert version is not None
        finally:
            store.close()


def test_acls_keep_agents_read_only_and_anonymous_out(configs, zookeeper):
    assert _push(configs) == 0
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    base = f"{spec.zookeeper.chroot}/{spec.cluster}"
    agent = KazooClient(hosts=zookeeper.hosts, auth_data=[("digest", AGENT)])
    anonymous = KazooClient(hosts=zookeeper.hosts)
    agent.start(timeout=10)
    anonymous.start(timeout=10)
    try:
        assert agent.get(f"{base}/config/current")[0] == b"1"
        with pytest.raises(NoAuthError):
            agent.set(f"{base}/config/current", b"1")
        with pytest.raises(NoAuthError):
            agent.create(f"{base}/config/versions/0000000002", b"{}")
        with pytest.raises(NoAuthError):
            anonymous.get(f"{base}/config/current")
        with pytest.raises(NoAuthError):
            anonymous.get(f"{base}/config/versions/0000000001")
        with pytest.raises(NoAuthError):
            anonymous.get_children(f"{base}/status")
    finally:
        agent.stop()
        anonymous.stop()
    # The agent may write its own status, which the coordinator can read and anonymous not.
    agent_store = _store(configs, zookeeper, AGENT)
    try:
        agent_store.put_status(NodeStatus("nginx1", applied_version=1))
    finally:
        agent_store.close()
    coordinator = _store(configs, zookeeper)
    try:
        assert coordinator.statuses() == {}  # ephemeral: gone with the agent's session
    finally:
        coordinator.close()


def test_status_of_a_live_agent_is_readable_by_the_coordinator(configs, zookeeper):
    assert _push(configs) == 0
    agent_store = _store(configs, zookeeper, AGENT)
    coordinator = _store(configs, zookeeper)
    try:
        agent_store.put_status(NodeStatus("nginx1", applied_version=1))
        assert coordinator.statuses() == {"nginx1": NodeStatus("nginx1", applied_version=1)}
        with pytest.raises(NoAuthError):
            coordinator.client.set(coordinator.report_path("nginx1"), b"forged")
    finally:
        agent_store.close()
        coordinator.close()


def test_status_shows_an_old_report_as_stale_and_only_suspects_split_brain(configs, zookeeper,
                                                                          capsys):
    # nginx1 was hard-killed an hour ago (its session lingers); nginx2 took over just now.
    # The fresh one's long interval keeps it fresh however slow this machine is.
    assert _push(configs) == 0
    now = datetime.now(UTC)
    dead = NodeStatus("nginx1", applied_version=1, vrrp={"web": "MASTER"},
                      health={"nginx": "ok"}, heartbeat_interval=1.0,
                      heartbeat=_iso(now - timedelta(hours=1)))
    alive = NodeStatus("nginx2", applied_version=1, vrrp={"web": "MASTER"},
                       health={"nginx": "ok"}, heartbeat_interval=600.0, heartbeat=_iso(now))
    stores = [_store(configs, zookeeper, agent_credential(n)) for n in ("nginx1", "nginx2")]
    try:
        stores[0].put_status(dead)
        stores[1].put_status(alive)
        capsys.readouterr()
        assert main(["status", "--json", "--configs", str(configs)]) == 0
        data = json.loads(capsys.readouterr().out)
        assert main(["status", "--configs", str(configs)]) == 0
        table = capsys.readouterr().out
    finally:
        for store in stores:
            store.close()
    rows = {row["node"]: row for row in data["nodes"]}
    assert rows["nginx1"]["stale"] is True and rows["nginx1"]["report_age_s"] >= 3600
    assert rows["nginx1"]["vrrp"] == {"web": "STALE"}
    assert rows["nginx2"]["stale"] is False and rows["nginx2"]["vrrp"] == {"web": "MASTER"}
    assert data["split_brain"] == {}
    assert data["split_brain_suspected"] == {"web": ["nginx1", "nginx2"]}
    nginx1 = next(line for line in table.splitlines() if line.startswith("nginx1"))
    assert "MASTER" not in nginx1 and "(stale)" in nginx1
    assert "SPLIT BRAIN SUSPECTED: group web" in table
    assert "SPLIT BRAIN:" not in table


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_missing_credential_is_a_clear_error(configs, monkeypatch, capsys):
    monkeypatch.delenv("STACKHA_COORDINATOR_CREDENTIAL")
    assert _push(configs) == 1
    assert "STACKHA_COORDINATOR_CREDENTIAL is not set" in capsys.readouterr().err


def test_a_push_that_changes_mycats_system_says_mycat_must_restart(configs, zookeeper, capsys):
    # MyCat 1.6 takes <system> only when it starts; the agents' reloads cannot apply it, and
    # `push-config` is where an operator learns so.
    assert _push(configs) == 0
    server = configs / "mycat/server.xml"
    _edit(server, '<property name="useGlobleTableCheck">0</property>',
          '<property name="useGlobleTableCheck">1</property>')
    capsys.readouterr()
    assert _push(configs) == 0
    assert ("note: MyCat reads server.xml <system> (useGlobleTableCheck) only when it starts"
            in capsys.readouterr().out)
    _edit(server, ">app_pw<", ">rotated_pw<")
    assert _push(configs) == 0
    assert "note: MyCat reads" not in capsys.readouterr().out
