"""The ZooKeeper tree from an attacker's side (issue #15): a squatter who makes the tree
first, a node that forges another's status, an nginx node after MyCat's passwords."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE, make_digest_acl, make_digest_acl_credential

from stackha.cli.main import main
from stackha.model.bundle import Bundle, ConfigVersion, serialise_version
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus
from stackha.store.base import StoreError
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import COORDINATOR, agent_credential
from testkit.agentlab import (
    NginxNode,
    adapt_configs_for_loopback,
    coordinator_store,
    fetch,
    node_status,
    wait_for,
)
from testkit.localzk import LocalZooKeeper
from testkit.signing import sign_document

pytestmark = pytest.mark.integration
SERVER_XML_SECRET = re.compile(rb'name="password">([^<]+)<')


def _base(configs: Path) -> str:
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    return f"{spec.zookeeper.chroot}/{spec.cluster}"


def _client(zookeeper, credential: str | None) -> KazooClient:
    client = KazooClient(hosts=zookeeper.hosts,
                         auth_data=[("digest", credential)] if credential else None)
    client.start(timeout=10)
    return client


def _store(configs: Path, zookeeper, credential: str) -> ZooKeeperStore:
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    store = ZooKeeperStore(zookeeper.hosts, spec.zookeeper.chroot, spec.cluster,
                           Identity.parse(credential, "test"))
    store.start()
    return store


def _own_chroot(configs: Path) -> None:
    """A chroot nobody made yet, as on a fresh ZooKeeper: the squatter can make it."""
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace("chroot: /stackha",
                                             f"chroot: /fresh{uuid.uuid4().hex[:8]}"))


def _push(configs: Path) -> int:
    return main(["push-config", "--configs", str(configs)])


def test_an_anonymous_squat_is_refused_by_name_and_init_takes_the_tree_over(
        configs, zookeeper, capsys):
    _own_chroot(configs)
    base = _base(configs)
    squatter = _client(zookeeper, None)
    forged = b'{"format": 1, "version": 1, "files": {}, "digest": "x"}'
    try:
        squatter.create(f"{base}/config/versions/0000000001", forged, acl=OPEN_ACL_UNSAFE,
                        makepath=True)
        squatter.create(f"{base}/config/current", b"1", acl=OPEN_ACL_UNSAFE)
        assert _push(configs) == 1
        err = capsys.readouterr().err
        assert f"{base}: ACL grants world:anyone:rwcda, which stackha did not design" in err
        assert "stackha init" in err
        assert squatter.get_children(f"{base}/config/versions") == ["0000000001"]
        assert squatter.get(f"{base}/config/current")[0] == b"1"

        assert main(["init", "--configs", str(configs)]) == 0
        out = capsys.readouterr().out
        assert f"{base}/config/versions/0000000001: deleted" in out
        assert f"{base}/config/current: set to 0 (was 1)" in out
        for path in (base, f"{base}/config", f"{base}/config/current",
                     f"{base}/config/versions", f"{base}/status"):
            with pytest.raises(NoAuthError):
                squatter.get(path)
            with pytest.raises(NoAuthError):
                squatter.set(path, b"2")
        assert _push(configs) == 0
        assert "published version 1" in capsys.readouterr().out
        with pytest.raises(NoAuthError):
            squatter.get(f"{base}/config/versions/0000000001")
        with pytest.raises(NoAuthError):
            squatter.get(f"{base}/config/versions/0000000001/mycat")
        with pytest.raises(NoAuthError):
            squatter.create(f"{base}/status/nginx1/report", b"{}")
    finally:
        squatter.stop()


def test_a_squat_the_coordinator_cannot_rewrite_names_the_znode_to_delete(
        configs, zookeeper, capsys):
    _own_chroot(configs)
    base = _base(configs)
    squatter = _client(zookeeper, "mallory:mallory-secret")
    try:
        squatter.create(base, b"", acl=[make_digest_acl("mallory", "mallory-secret", all=True)],
                        makepath=True)
        for command in (["push-config"], ["init"]):
            assert main([*command, "--configs", str(configs)]) == 1
            err = capsys.readouterr().err
            assert f"{base}: exists and the coordinator may not even read its ACL" in err
            assert f"deleteall {base}" in err
    finally:
        squatter.stop()


def test_one_node_cannot_touch_another_nodes_status_or_invent_one(configs, zookeeper):
    assert _push(configs) == 0
    base = _base(configs)
    nginx1 = _store(configs, zookeeper, agent_credential("nginx1"))
    nginx2 = _client(zookeeper, agent_credential("nginx2"))
    coordinator = _store(configs, zookeeper, COORDINATOR)
    try:
        nginx1.put_status(NodeStatus("nginx1", applied_version=1))
        report = f"{base}/status/nginx1/report"
        # nginx2 may read it (it follows a canary's verdict), nothing more.
        assert json.loads(nginx2.get(report)[0])["applied_version"] == 1
        for attempt in (lambda: nginx2.set(report, b'{"rejected_version": 1}'),
                        lambda: nginx2.delete(report),
                        lambda: nginx2.set_acls(report, OPEN_ACL_UNSAFE),
                        lambda: nginx2.create(f"{base}/status/nginx1/other", b"{}"),
                        lambda: nginx2.create(f"{base}/status/ghost", b"{}"),
                        lambda: nginx2.create(f"{base}/status/ghost/report", b"{}",
                                              makepath=True),
                        lambda: nginx2.delete(f"{base}/status/nginx1")):
            with pytest.raises(NoAuthError):
                attempt()
        impostor = _store(configs, zookeeper, agent_credential("nginx2"))
        try:
            with pytest.raises(StoreError, match="not allowed to report as node nginx1"):
                impostor.put_status(NodeStatus("nginx1", rejected_version=1))
        finally:
            impostor.close()  # left open, its session outlived ZooKeeper and logged at exit
        with pytest.raises(StoreError, match="node ghost is not registered"):
            nginx1.put_status(NodeStatus("ghost", applied_version=1))
        nginx2_store = _store(configs, zookeeper, agent_credential("nginx2"))
        try:
            nginx2_store.put_status(NodeStatus("nginx2", applied_version=1))
            assert set(coordinator.statuses()) == {"nginx1", "nginx2"}
        finally:
            nginx2_store.close()
    finally:
        nginx1.close()
        nginx2.stop()
        coordinator.close()


def test_an_nginx_node_cannot_read_mycat_files(configs, zookeeper):
    assert _push(configs) == 0
    version = f"{_base(configs)}/config/versions/0000000001"
    secrets = SERVER_XML_SECRET.findall((configs / "mycat/server.xml").read_bytes())
    assert secrets
    nginx1 = _client(zookeeper, agent_credential("nginx1"))
    try:
        with pytest.raises(NoAuthError):
            nginx1.get(f"{version}/mycat")
        manifest = nginx1.get(version)[0]
        assert b"nginx.conf" not in manifest or b"events" not in manifest
        assert not any(s in manifest for s in secrets)
        assert b"events" in nginx1.get(f"{version}/nginx")[0]
    finally:
        nginx1.stop()
    readers = {who: _store(configs, zookeeper, cred) for who, cred in (
        ("nginx1", agent_credential("nginx1")), ("mycat1", agent_credential("mycat1")),
        ("director1", agent_credential("director1")), ("coordinator", COORDINATOR))}
    try:
        seen = {who: store.read_version(1) for who, store in readers.items()}
    finally:
        for store in readers.values():
            store.close()
    files = {who: {p.split("/")[0] for p in v.bundle.files} for who, v in seen.items()}
    assert files["nginx1"] == {"stackha.yaml", "nginx"} and seen["nginx1"].withheld == {"mycat"}
    assert files["mycat1"] == {"stackha.yaml", "mycat"} and seen["mycat1"].withheld == {"nginx"}
    assert files["director1"] == {"stackha.yaml"}
    assert files["coordinator"] == {"stackha.yaml", "nginx", "mycat"}
    assert not seen["coordinator"].withheld


def test_the_nginx_agent_applies_only_nginx_files_and_keeps_no_mycat_secret(
        tmp_path, configs, zookeeper):
    node = NginxNode(tmp_path / "node", configs, zookeeper.hosts)
    adapt_configs_for_loopback(configs, node.port)
    node.start_nginx()
    try:
        assert _push(configs) == 0
        node.start_agent()
        wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                 and s["applied_version"] == 1, what="version 1 applied")
        secrets = SERVER_XML_SECRET.findall((configs / "mycat/server.xml").read_bytes())
        for path in (tmp_path / "node").rglob("*"):
            if path.is_file() and path.suffix != ".log":
                data = path.read_bytes()
                assert b"mycat/server.xml" not in data, path
                assert not any(s in data for s in secrets), path
        assert not list((tmp_path / "node").rglob("server.xml"))
    finally:
        node.close()


def test_a_rotated_credential_locks_the_old_one_out(configs, zookeeper, tmp_path, capsys,
                                                    monkeypatch):
    registry = tmp_path / "rotated.registry"
    registry.write_text(Path(__import__("os").environ["STACKHA_AGENT_REGISTRY"]).read_text())
    monkeypatch.setenv("STACKHA_AGENT_REGISTRY", str(registry))
    assert _push(configs) == 0
    new_file = tmp_path / "nginx1.credential"
    assert main(["credentials", "issue", "nginx1", "--out", str(new_file)]) == 0
    assert new_file.stat().st_mode & 0o777 == 0o600
    new = new_file.read_text().strip()
    assert new.startswith("nginx1:") and new != agent_credential("nginx1")
    assert new.split(":", 1)[1] not in registry.read_text()
    assert main(["init", "--configs", str(configs)]) == 0
    capsys.readouterr()
    old_store = _store(configs, zookeeper, agent_credential("nginx1"))
    new_store = _store(configs, zookeeper, new)
    try:
        with pytest.raises(StoreError, match="not allowed to report as node nginx1"):
            old_store.put_status(NodeStatus("nginx1", applied_version=1))
        with pytest.raises(StoreError):
            old_store.read_version(1)
        new_store.put_status(NodeStatus("nginx1", applied_version=1))
        assert "nginx" in {p.split("/")[0] for p in new_store.read_version(1).bundle.files}
    finally:
        old_store.close()
        new_store.close()


def test_init_adopts_a_tree_of_the_shared_credential_design_without_losing_history(
        configs, zookeeper, capsys):
    # The layout before one identity per node: everything readable by one shared agent
    # identity, each version one document holding every file.
    base = _base(configs)
    shared = make_digest_acl("agent", "agent-secret", read=True)
    acl = [make_digest_acl("coordinator", "coordinator-secret", all=True), shared]
    bundle = Bundle.from_contents({p.relative_to(configs).as_posix(): p.read_bytes()
                                   for p in configs.rglob("*") if p.is_file()})
    old = serialise_version(ConfigVersion(1, bundle, "then", "someone", "before"))
    coordinator = _client(zookeeper, COORDINATOR)
    try:
        coordinator.ensure_path("/stackha")
        for path, data in ((base, b""), (f"{base}/config", b""),
                           (f"{base}/config/current", b"1"), (f"{base}/config/versions", b""),
                           (f"{base}/config/versions/0000000001", old), (f"{base}/status", b"")):
            coordinator.create(path, data, acl=acl)
    finally:
        coordinator.stop()
    assert _push(configs) == 1
    assert f"{base}: ACL grants digest:agent:" in capsys.readouterr().err
    assert main(["init", "--configs", str(configs)]) == 0
    assert "files moved into role parts mycat, nginx" in capsys.readouterr().out
    nginx1 = _store(configs, zookeeper, agent_credential("nginx1"))
    former = _client(zookeeper, "agent:agent-secret")
    try:
        version = nginx1.read_version(1)
        assert version is not None and version.message == "before"
        assert version.withheld == {"mycat"}
        assert version.bundle.files["nginx/nginx.conf"].content == \
            (configs / "nginx/nginx.conf").read_bytes()
        with pytest.raises(NoAuthError):
            former.get(f"{base}/config/versions/0000000001")
    finally:
        nginx1.close()
        former.stop()
    reader = _store(configs, zookeeper, COORDINATOR)
    try:
        assert reader.read_version(1).digest == bundle.digest
    finally:
        reader.close()
    assert _push(configs) == 0
    assert "unchanged" in capsys.readouterr().out


def test_an_agent_refuses_a_version_that_withholds_its_roles_files(tmp_path, configs,
                                                                    zookeeper):
    node = NginxNode(tmp_path / "node", configs, zookeeper.hosts)
    adapt_configs_for_loopback(configs, node.port)
    node.start_nginx()
    try:
        (configs / "nginx/html/index.html").write_text("one\n")
        assert _push(configs) == 0
        node.start_agent()
        wait_for(lambda: fetch(node.url) == "one\n", what="version 1 served")
        # A version whose nginx part the node may not read (ACLs behind the spec): applied,
        # it would empty the node's nginx directory.
        (configs / "nginx/html/index.html").write_text("two\n")
        store = coordinator_store(configs, zookeeper.hosts)
        try:
            assert store.access is not None
            store.access = replace(store.access, roles={**store.access.roles, "nginx1": ()})
            contents = {p.relative_to(configs).as_posix(): p.read_bytes()
                        for p in configs.rglob("*") if p.is_file()}
            document = serialise_version(ConfigVersion(0, Bundle.from_contents(contents),
                                                       "now", "test", "withheld"))
            cluster = _base(configs).rsplit("/", 1)[1]
            two = store.publish(lambda n: sign_document(document.replace(
                b'"version": 0', f'"version": {n}'.encode()), n, cluster),
                store.current_number())
        finally:
            store.close()
        status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                          and s["rejected_version"] == two and s, what="version 2 refused")
        assert "files of role nginx are not readable with this node's credential" \
            in status["last_error"]
        assert fetch(node.url) == "one\n"
        assert (node.prefix / "nginx.conf").exists()
    finally:
        node.close()


class _ZooKeeperWithSuperuser(LocalZooKeeper):
    """ZooKeeper 3.8 turns unknown zoo.cfg keys into ``zookeeper.<key>`` properties."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        digest = make_digest_acl_credential("super", "super-secret")
        config.write_text(config.read_text()
                          + f"DigestAuthenticationProvider.superDigest={digest}\n")
        return config


def test_only_the_superuser_takes_over_a_squat_that_shuts_the_coordinator_out(
        tmp_path, configs, capsys):
    server = _ZooKeeperWithSuperuser(tmp_path / "zk")
    server.start()
    try:
        zk = ["--zk", server.hosts]
        base = _base(configs)
        squatter = _client(server, "mallory:mallory-secret")
        try:
            squatter.create(base, b"", makepath=True,
                            acl=[make_digest_acl("mallory", "mallory-secret", all=True)])
            assert main(["init", "--configs", str(configs), *zk]) == 1
            assert f"deleteall {base}" in capsys.readouterr().err
            admin = tmp_path / "super.credential"
            admin.write_text("super:super-secret\n")
            assert main(["init", "--configs", str(configs), *zk,
                         "--admin-credential-file", str(admin)]) == 0
            assert f"{base}: ACL set (was digest:mallory:" in capsys.readouterr().out
            assert main(["push-config", "--configs", str(configs), *zk]) == 0
            with pytest.raises(NoAuthError):
                squatter.get(f"{base}/config/current")
            with pytest.raises(NoAuthError):
                squatter.create(f"{base}/config/versions/0000000009", b"{}")
        finally:
            squatter.stop()
    finally:
        server.stop()


def test_zookeeper_shows_agents_no_digest_so_the_report_acl_comes_from_the_data(
        configs, zookeeper):
    """Why status/<node> carries its report's ACL as data: getACL by a node (READ, no
    ADMIN) shows every digest as ``user:x`` in ZooKeeper 3.8."""
    assert _push(configs) == 0
    status = f"{_base(configs)}/status"
    nginx1 = _client(zookeeper, agent_credential("nginx1"))
    coordinator = _client(zookeeper, COORDINATOR)
    try:
        assert {a.id.id.split(":", 1)[1] for a in nginx1.get_acls(status)[0]} == {"x"}
        assert "x" not in {a.id.id.split(":", 1)[1] for a in coordinator.get_acls(status)[0]}
        plan = json.loads(nginx1.get(f"{status}/nginx1")[0])["report_acl"]
        assert {e["id"] for e in plan} == {a.id.id for a in coordinator.get_acls(status)[0]}
    finally:
        nginx1.stop()
        coordinator.stop()
