"""Signed versions, from the side of someone who holds the coordinator's ZooKeeper credential
(or is ZooKeeper's admin) but not its signing key: a real agent, real ZooKeeper, real nginx.

Each forged version must be refused before anything is staged: the node's files stay exactly
as they were, nginx keeps serving the signed version, and the status names the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackha.coordinator.publish import Coordinator, Signer
from stackha.model.bundle import Bundle, sha256_hex
from stackha.trust.signing import generate
from testkit.agentlab import NginxNode, coordinator_store, fetch, node_status, wait_for
from testkit.localzk import LocalZooKeeper
from testkit.signing import harness_keys, make_keypair, sign_document
from tests.integration.test_agent import _applied, _cluster, _push, _set_page

pytestmark = pytest.mark.integration


def _bundle(configs: Path, page: str) -> Bundle:
    contents = {p.relative_to(configs).as_posix(): p.read_bytes()
                for p in configs.rglob("*") if p.is_file()}
    contents["nginx/html/index.html"] = page.encode()
    return Bundle.from_contents(contents)


def _snapshot(node: NginxNode) -> dict[str, tuple[bytes, int]]:
    """Every file under the node's nginx prefix and state dir, with its mtime: untouched
    means byte for byte and not rewritten either."""
    found = {}
    for root in (node.prefix, node.root / "state"):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != "rejected.json" and "logs" not in path.parts:
                found[str(path)] = (path.read_bytes(), path.stat().st_mtime_ns)
    return found


def _signed_one(node: NginxNode, configs: Path, zookeeper: LocalZooKeeper, *extra: str
                ) -> dict[str, tuple[bytes, int]]:
    _set_page(configs, "signed one\n")
    _push(configs)
    node.start_agent(*extra)
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    assert fetch(node.url) == "signed one\n"
    return _snapshot(node)


def _refusal(configs: Path, zookeeper: LocalZooKeeper, number: int) -> str:
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["rejected_version"] == number and s,
                      what=f"refusal of version {number}")
    assert status["applied_version"] == 1
    return status["last_error"]


def _kept_serving(node: NginxNode, before: dict[str, tuple[bytes, int]], number: int) -> None:
    assert fetch(node.url) == "signed one\n"
    assert _snapshot(node) == before
    log = node.agent_log()
    assert f"event=rejected version={number} stage=signature" in log
    # Nothing of it reached the resources: no staging, no nginx -t, no write.
    assert "event=apply_refused" not in log and f"version={number} roles" not in log


def _attack(configs: Path, zookeeper: LocalZooKeeper, document) -> int:
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        return store.publish(document, store.current_number())
    finally:
        store.close()


def test_an_unsigned_version_is_refused(node, configs, zookeeper):
    before = _signed_one(node, configs, zookeeper)
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        number = Coordinator(store).push(_bundle(configs, "owned\n"), "unsigned").number
    finally:
        store.close()
    assert number == 2
    reason = _refusal(configs, zookeeper, number)
    assert reason == "version 2 rejected at signature: spec part is unsigned"
    _kept_serving(node, before, number)


def test_a_version_signed_by_an_unknown_key_is_refused(node, configs, zookeeper):
    before = _signed_one(node, configs, zookeeper)
    stranger = generate()
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        number = Coordinator(store, signer=Signer(stranger, _cluster(configs))).push(
            _bundle(configs, "owned\n"), "their own key").number
    finally:
        store.close()
    reason = _refusal(configs, zookeeper, number)
    assert f"spec part is signed by unknown key {stranger.key_id}" in reason
    assert harness_keys().key.key_id in reason  # and names the keys it does trust
    _kept_serving(node, before, number)


def test_a_signed_version_with_a_changed_file_is_refused(node, configs, zookeeper):
    before = _signed_one(node, configs, zookeeper)
    good = _bundle(configs, "signed two\n")

    def tampered(n: int) -> bytes:
        # Signed for this very number and cluster, then one file changed (its checksum and
        # the bundle digest fixed up, so only the signature can tell).
        from stackha.model.bundle import ConfigVersion, serialise_version

        document = json.loads(sign_document(serialise_version(
            ConfigVersion(n, good, "now", "coordinator", "two")), n, _cluster(configs)))
        entry = document["files"]["nginx/html/index.html"]
        entry["content"], entry["sha256"] = "owned\n", sha256_hex(b"owned\n")
        files = {p: f["sha256"] for p, f in document["files"].items()}
        document["digest"] = sha256_hex("".join(f"{files[p]}  {p}\n"
                                                for p in sorted(files)).encode())
        return json.dumps(document).encode()

    number = _attack(configs, zookeeper, tampered)
    reason = _refusal(configs, zookeeper, number)
    assert f"nginx part: bad signature by key {harness_keys().key.key_id}" in reason
    _kept_serving(node, before, number)


def test_a_signed_version_replayed_under_a_new_number_is_refused(node, configs, zookeeper):
    before = _signed_one(node, configs, zookeeper)
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        # The whole of version 1 (manifest and role parts) with its signatures, as stored.
        from stackha.model.bundle import serialise_version

        old = serialise_version(store.read_version(1))
    finally:
        store.close()
    # Version 1 as it was signed, verbatim, as version 2: an old configuration brought back.
    _set_page(configs, "signed one\n")
    number = _attack(configs, zookeeper, lambda _n: old)
    reason = _refusal(configs, zookeeper, number)
    assert "spec part: bad signature" in reason and "version number 2" in reason
    _kept_serving(node, before, number)


def test_a_version_signed_for_another_cluster_is_refused(node, configs, zookeeper):
    before = _signed_one(node, configs, zookeeper)
    bundle = _bundle(configs, "from the other cluster\n")

    def elsewhere(n: int) -> bytes:
        from stackha.model.bundle import ConfigVersion, serialise_version

        # The same key signs another cluster's version n: valid there, copied in here.
        return sign_document(serialise_version(ConfigVersion(n, bundle, "now", "c", "m")),
                             n, "some-other-cluster")

    number = _attack(configs, zookeeper, elsewhere)
    reason = _refusal(configs, zookeeper, number)
    assert f"cluster {_cluster(configs)}" in reason and "bad signature" in reason
    _kept_serving(node, before, number)


def test_either_of_two_pinned_keys_is_applied_while_keys_rotate(node, configs, zookeeper,
                                                                tmp_path, monkeypatch):
    new = make_keypair(tmp_path / "keys", "new")
    _signed_one(node, configs, zookeeper, "--trusted-key", str(harness_keys().public),
                "--trusted-key", str(new.public))
    monkeypatch.setenv("STACKHA_SIGNING_KEY", str(new.private))  # the coordinator rotates
    _set_page(configs, "signed with the new key\n")
    _push(configs)
    wait_for(lambda: _applied(configs, zookeeper, 2), what="version 2 applied")
    assert fetch(node.url) == "signed with the new key\n"
    both = ",".join(sorted([harness_keys().key.key_id, new.key.key_id]))
    assert f"event=trusted_keys keys={both}" in node.agent_log()



def test_rollback_does_not_re_sign_a_version_someone_wrote_into_the_store(configs, zookeeper,
                                                                          capsys):
    from stackha.cli.main import main

    _push(configs)
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        Coordinator(store).push(_bundle(configs, "owned\n"), "unsigned")  # version 2
    finally:
        store.close()
    capsys.readouterr()
    assert main(["config", "rollback", "2", "--configs", str(configs)]) == 1
    err = capsys.readouterr().err
    assert "version 2 is not signed by a trusted key (spec part is unsigned)" in err
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        assert store.current_number() == 2  # nothing published
    finally:
        store.close()
    assert main(["config", "rollback", "1", "--configs", str(configs)]) == 0
