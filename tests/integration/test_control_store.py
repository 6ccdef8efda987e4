"""The operator's requests in ZooKeeper from an attacker's side: only the coordinator writes
a switchover or maintenance request (agents obey them), every node reads them, and a request
someone else could have written is refused by the ownership check."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import OPEN_ACL_UNSAFE

from stackha.cli.main import main
from stackha.model.control import Maintenance, SwitchoverRequest
from stackha.model.spec import parse_spec
from stackha.store.base import StoreError
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import agent_credential
from testkit.agentlab import coordinator_store

pytestmark = pytest.mark.integration


def _agent(configs: Path, zookeeper, node: str) -> ZooKeeperStore:
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    store = ZooKeeperStore(zookeeper.hosts, spec.zookeeper.chroot, spec.cluster,
                           Identity.parse(agent_credential(node), "test"))
    store.start()
    return store


def test_only_the_coordinator_writes_requests_and_every_node_reads_them(configs, zookeeper):
    assert main(["push-config", "--configs", str(configs)]) == 0
    coordinator = coordinator_store(configs, zookeeper.hosts)
    nginx1 = _agent(configs, zookeeper, "nginx1")
    raw = KazooClient(hosts=zookeeper.hosts, auth_data=[("digest", agent_credential("nginx2"))])
    raw.start(timeout=10)
    try:
        seen: list[SwitchoverRequest | None] = []
        changed = threading.Event()

        def on_request(request: SwitchoverRequest | None) -> None:
            seen.append(request)
            changed.set()

        nginx1.watch_switchover("web", on_request)
        coordinator.put_switchover(SwitchoverRequest("web", "nginx2", "t", "id1"))
        coordinator.put_maintenance(Maintenance("nginx2", "disk", "t", 5.0))
        assert changed.wait(10)
        changed.clear()
        assert nginx1.switchover("web") == SwitchoverRequest("web", "nginx2", "t", "id1")
        assert nginx1.maintenance() == {"nginx2": Maintenance("nginx2", "disk", "t", 5.0)}
        path = coordinator.switchover_path("web")
        for attempt in (lambda: raw.set(path, b'{"to": "nginx2"}'),
                        lambda: raw.delete(path),
                        lambda: raw.set_acls(path, OPEN_ACL_UNSAFE),
                        lambda: raw.create(coordinator.maintenance_path("nginx1"), b"{}"),
                        lambda: raw.create(coordinator.switchover_path("mycat"), b"{}")):
            with pytest.raises(NoAuthError):
                attempt()
        coordinator.delete_switchover("web")
        assert changed.wait(10) and seen[-1] is None
        assert coordinator.delete_maintenance("nginx2") and coordinator.maintenance() == {}
    finally:
        raw.stop()
        nginx1.close()
        coordinator.close()


def test_a_request_someone_else_could_write_is_refused_and_init_deletes_it(configs,
                                                                           zookeeper):
    assert main(["push-config", "--configs", str(configs)]) == 0
    coordinator = coordinator_store(configs, zookeeper.hosts)
    try:
        coordinator.put_switchover(SwitchoverRequest("web", "nginx2", "t", "id1"))
        path = coordinator.switchover_path("web")
        coordinator.client.set_acls(path, OPEN_ACL_UNSAFE)  # as a careless admin might
        with pytest.raises(StoreError, match=f"{path}: ACL grants world:anyone"):
            coordinator.ensure_layout()
        actions = coordinator.ensure_layout(take_over=True)
        assert any(line.startswith(f"{path}: deleted") for line in actions), actions
        assert coordinator.switchover("web") is None
        coordinator.ensure_layout()  # as designed again
    finally:
        coordinator.close()
