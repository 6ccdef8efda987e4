"""The compose lab's pure parts: the rendered compose file, backend, progress, digests."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from kazoo.security import make_digest_acl_credential

from stackha.keepalived.process import parse_notify_line
from stackha.lab.compose.backend import LabError, backend_from_schema
from stackha.lab.compose.digests import image_digests
from stackha.lab.compose.render import (
    LabOptions,
    compose_document,
    images,
    render_compose,
    service_name,
)
from stackha.lab.compose.secrets import lab_credentials, parse_env_file
from stackha.model.cluster import ClusterView
from stackha.model.spec import StackSpec, parse_spec
from stackha.model.status import NodeStatus
from stackha.store.registry import read_registry
from tests.conftest import without_tls

ROOT = Path(__file__).resolve().parents[2]


def _spec(text: str | None = None) -> StackSpec:
    spec, problems = parse_spec(text or (ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert spec is not None, problems
    return spec


@pytest.fixture
def backend():
    return backend_from_schema((ROOT / "configs/mycat/schema.xml").read_bytes())


def test_committed_compose_file_is_the_rendering_of_the_example_spec(backend):
    # compose/compose.yaml is what `stackha up` writes for configs/: a golden file.
    assert (ROOT / "compose/compose.yaml").read_text() == render_compose(_spec(), backend)


def test_backend_comes_from_the_datahost(backend):
    assert str(backend.address) == "10.77.0.30"
    assert backend.port == 3306
    assert backend.user == "mycat"
    assert backend.databases == ("db0", "db1", "db2")


def test_every_address_is_static_on_the_spec_network(backend):
    doc = compose_document(_spec(), backend)
    subnet = doc["networks"]["lab"]["ipam"]["config"][0]
    assert subnet == {"subnet": "10.77.0.0/24", "gateway": "10.77.0.1"}
    addresses = {name: s["networks"]["lab"]["ipv4_address"]
                 for name, s in doc["services"].items() if "networks" in s}
    assert addresses["zk1"] == "10.77.0.5" and addresses["zk3"] == "10.77.0.7"
    assert addresses["mysql"] == "10.77.0.30"
    assert addresses["nginx1"] == "10.77.0.11"
    assert addresses["mycat2-standin"] == "10.77.0.32"
    assert len(set(addresses.values())) == len(addresses)


def test_capabilities_and_sysctls_follow_the_roles(backend):
    services = compose_document(_spec(), backend)["services"]
    assert services["nginx1"]["cap_add"] == ["NET_ADMIN", "NET_RAW", "SYS_NICE"]
    assert "sysctls" not in services["nginx1"]
    assert services["director1"]["cap_add"] == ["NET_ADMIN", "NET_RAW", "SYS_NICE"]
    assert services["mycat1-standin"]["cap_add"] == ["NET_ADMIN"]
    assert services["mycat1-standin"]["sysctls"] == {
        "net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
        "net.ipv4.conf.eth0.arp_ignore": "1", "net.ipv4.conf.eth0.arp_announce": "2"}
    for name in ("zk1", "mysql"):
        assert "cap_add" not in services[name] and "sysctls" not in services[name]
    assert not any(s.get("privileged") for s in services.values())


def _agent_yaml(document: dict, node: str) -> dict:
    service = document["services"][node]
    assert service["command"] == ["/opt/stackha/bin/stackha", "agent", "--config",
                                  "/etc/stackha/agent.yaml"]
    [mount] = service["configs"]
    assert mount == {"source": f"agent-{service['hostname']}",
                     "target": "/etc/stackha/agent.yaml"}
    return yaml.safe_load(document["configs"][mount["source"]]["content"])


def test_agent_commands(backend):
    document = compose_document(_spec(), backend)
    services = document["services"]
    nginx = _agent_yaml(document, "nginx1")
    assert nginx["node"] == "nginx1" and "nginx-reload" in nginx
    assert "keepalived-dir" in nginx and "lvs" not in nginx
    assert nginx["on-stop"] == "leave" and nginx["metrics-address"] == "10.77.0.11"
    director = _agent_yaml(document, "director2")
    assert director["lvs"] is True and "mycat-password-file" in director
    mycat = _agent_yaml(document, "mycat3-standin")
    assert mycat["lvs"] is True and "mycat-dir" in mycat and "keepalived-dir" not in mycat
    # Reloads through the manager port; the lab script only starts MyCat the first time.
    assert mycat["mycat-manager"] == "127.0.0.1:9066"
    assert mycat["mycat-health"] is True and "mycat-reload" in mycat
    assert services["mycat3-standin"]["environment"]["STACKHA_LAB_SERVICES"] == "mycat"


def test_every_lab_agent_yaml_passes_the_agents_own_check(backend, tmp_path):
    # What the containers run: each file through the very parser `stackha agent` uses.
    from stackha.cli.agent import agent_args

    document = compose_document(_spec(), backend)
    for name, config in document["configs"].items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(config["content"])
        path.chmod(0o400)
        args = agent_args(["--config", str(path)])
        assert args.node == name.removeprefix("agent-") and args.heartbeat == 1.0


def test_stand_in_is_named_as_such_and_a_release_is_not(backend):
    spec = _spec()
    mycat1 = spec.node("mycat1")
    assert mycat1 is not None
    assert service_name(mycat1, LabOptions()) == "mycat1-standin"
    assert service_name(mycat1, LabOptions(mycat_release=True)) == "mycat1"
    tags = {i.service: i.tag for i in images(LabOptions())}
    assert tags["image-mycat"] == "stackha/mycat-standin:latest"
    doc = compose_document(spec, backend, LabOptions())
    assert doc["services"]["mycat1-standin"]["labels"]["stackha.mycat"] == "standin"


def test_images_are_built_only_by_build_profile_services(backend):
    services = compose_document(_spec(), backend)["services"]
    for name, service in services.items():
        if "build" in service:
            assert name.startswith("image-") and service["profiles"] == ["build"]
        else:
            assert service["pull_policy"] == "never"


def test_node_outside_the_network_is_refused(backend):
    text = (ROOT / "configs/stackha.yaml").read_text().replace(
        'hosts: "10.77.0.5:2281', 'hosts: "10.78.0.5:2281')
    with pytest.raises(LabError, match=r"zookeeper member 1: 10\.78\.0\.5 is outside"):
        compose_document(_spec(text), backend)


def test_the_ensemble_serves_tls_and_every_agent_mounts_its_own_client_files(backend):
    services = compose_document(_spec(), backend)["services"]
    for myid in (1, 2, 3):
        zk = services[f"zk{myid}"]
        assert zk["environment"]["ZOO_SECURE_CLIENT_PORT"] == "2281"
        assert zk["environment"]["ZOO_TLS_DIR"] == "/etc/zookeeper/tls"
        assert zk["volumes"] == [f".stackha/tls/zk{myid}:/etc/zookeeper/tls:ro"]
    nodes = [name for name, s in services.items() if "stackha.node" in s.get("labels", {})]
    assert len(nodes) == 7
    for name in nodes:
        node = services[name]["labels"]["stackha.node"]
        # Each node its own certificate, where the spec's zookeeper.tls looks for it.
        assert f".stackha/tls/{node}:/etc/stackha/tls:ro" in services[name]["volumes"]
    assert "zookeeper.tls" not in " ".join(services["nginx1"]["command"])


def test_the_entrypoint_turns_on_tls_only_with_the_secure_port():
    script = (ROOT / "compose/zookeeper/zookeeper-entrypoint").read_text()
    for line in ("serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory",
                 "secureClientPort=$ZOO_SECURE_CLIENT_PORT", "ssl.keyStore.type=PEM",
                 "ssl.trustStore.type=PEM", "ssl.clientAuth=need"):
        assert f'echo "{line}"' in script, line


def test_hosts_on_the_plain_port_are_refused_when_the_spec_says_tls(backend):
    text = (ROOT / "configs/stackha.yaml").read_text().replace(
        '"10.77.0.5:2281,10.77.0.6:2281,10.77.0.7:2281"',
        '"10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181"', 1)
    with pytest.raises(LabError, match="serve their TLS client port on 2281"):
        compose_document(_spec(text), backend)


def test_a_spec_without_tls_renders_no_tls(backend):
    text = (ROOT / "configs/stackha.yaml").read_text()
    text = without_tls(text).replace(":2281", ":2181")
    services = compose_document(_spec(text), backend)["services"]
    assert "volumes" not in services["zk1"]
    assert "ZOO_SECURE_CLIENT_PORT" not in services["zk1"]["environment"]
    assert not any("tls" in v for v in services["nginx1"]["volumes"])


def test_rendered_yaml_parses_back(backend):
    text = render_compose(_spec(), backend)
    assert text.startswith("# The stackha lab")
    assert yaml.safe_load(text)["name"] == "stackha"


def _status(node: str, applied: int, health: str = "ok", vrrp: dict | None = None,
            error: str = "") -> NodeStatus:
    return NodeStatus(node=node, agent_version="t", applied_version=applied,
                      health=MappingProxyType({"nginx": health}),
                      vrrp=MappingProxyType(vrrp or {}), last_error=error)


def _all_ready(spec: StackSpec, version: int) -> dict[str, NodeStatus | None]:
    statuses: dict[str, NodeStatus | None] = {n.name: _status(n.name, version) for n in spec.nodes}
    statuses["nginx1"] = _status("nginx1", version, vrrp={"web": "MASTER"})
    statuses["nginx2"] = _status("nginx2", version, vrrp={"web": "BACKUP"})
    statuses["director1"] = _status("director1", version, vrrp={"mycat": "MASTER"})
    return statuses


def test_progress_ready_when_applied_healthy_and_one_master_each():
    spec = _spec()
    progress = ClusterView.of(spec, 3, _all_ready(spec, 3)).progress()
    assert progress.done
    assert progress.describe() == "7/7 nodes ready at version 3"


def test_progress_waits_and_names_why():
    spec = _spec()
    statuses = _all_ready(spec, 3)
    statuses["mycat2"] = None
    statuses["nginx2"] = _status("nginx2", 2, vrrp={"web": "MASTER"})
    statuses["director2"] = _status("director2", 3, health="connection refused")
    progress = ClusterView.of(spec, 3, statuses).progress()
    assert not progress.done
    assert dict(progress.waiting) == {
        "mycat2": "not reporting", "nginx2": "applied 2, current 3",
        "director2": "unhealthy: nginx: connection refused",
        "vrrp group web": "several MASTERs: nginx1, nginx2"}


def test_progress_fails_on_a_refused_current_version():
    spec = _spec()
    statuses = _all_ready(spec, 3)
    statuses["nginx2"] = _status("nginx2", 2, error="version 4 rejected at verify: bad")
    progress = ClusterView.of(spec, 4, statuses).progress()
    assert ("nginx2", "version 4 rejected at verify: bad") in progress.failed


def test_image_digests_follow_the_build_chain():
    opts = LabOptions()
    contexts = {"base": {"Dockerfile": b"a"}, "node": {"Dockerfile": b"b"},
                "mycat": {"Dockerfile": b"c"}, "zookeeper": {}, "mariadb": {}}
    first = image_digests(images(opts), contexts, {"stackha/x.py": b"1"})
    changed = image_digests(images(opts), contexts, {"stackha/x.py": b"2"})
    assert first["image-base"] != changed["image-base"]
    assert first["image-node"] != changed["image-node"]
    assert first["image-mycat"] != changed["image-mycat"]
    assert first["image-zookeeper"] == changed["image-zookeeper"]
    tarball = image_digests(images(opts), contexts, {"stackha/x.py": b"1"}, "Mycat.tar.gz")
    assert tarball["image-mycat"] != first["image-mycat"]
    assert tarball["image-node"] == first["image-node"]


def test_lab_credentials_are_generated_once_and_kept(tmp_path):
    spec = _spec()
    first = lab_credentials(spec, tmp_path, environ={})
    assert set(first) == {"STACKHA_COORDINATOR_CREDENTIAL", "STACKHA_AGENT_REGISTRY"}
    assert first["STACKHA_COORDINATOR_CREDENTIAL"].startswith("coordinator:")
    assert lab_credentials(spec, tmp_path, environ={}) == first
    assert (tmp_path / "lab.env").stat().st_mode & 0o077 == 0
    given = lab_credentials(spec, tmp_path,
                            environ={"STACKHA_COORDINATOR_CREDENTIAL": "coordinator:x"})
    assert given["STACKHA_COORDINATOR_CREDENTIAL"] == "coordinator:x"


def test_every_lab_node_gets_its_own_credential_and_only_its_own(tmp_path, backend):
    spec = _spec()
    lab_credentials(spec, tmp_path, environ={})
    registry = read_registry(tmp_path / "agents.registry")
    assert set(registry.digests) == {n.name for n in spec.nodes}
    seen = set()
    for node in spec.nodes:
        path = tmp_path / f"agent-{node.name}.env"
        assert path.stat().st_mode & 0o077 == 0
        env = parse_env_file(path.read_text())
        assert list(env) == ["STACKHA_AGENT_CREDENTIAL"]
        user, _, password = env["STACKHA_AGENT_CREDENTIAL"].partition(":")
        assert user == node.name and password not in seen
        seen.add(password)
        assert registry.digests[node.name] == make_digest_acl_credential(user, password)
    kept = (tmp_path / "agent-nginx1.env").read_text()
    lab_credentials(spec, tmp_path, environ={})
    assert (tmp_path / "agent-nginx1.env").read_text() == kept
    # Each container is handed its own file, never another node's or the coordinator's.
    services = yaml.safe_load(render_compose(spec, backend))["services"]
    for node in spec.nodes:
        service = next(s for s in services.values()
                       if s.get("labels", {}).get("stackha.node") == node.name)
        assert service["env_file"] == [f".stackha/agent-{node.name}.env"]
    assert not list(tmp_path.glob("*.credential")) and not list(tmp_path.glob(".*.credential"))


def test_notify_fifo_events_that_are_not_states_are_ignored():
    assert parse_notify_line('INSTANCE "web" MASTER 150') == ("web", "MASTER", 150)
    assert parse_notify_line('INSTANCE "web" MASTER_RX_LOWER_PRI 150') is None


def test_every_agent_pins_the_lab_signing_key(backend):
    document = compose_document(_spec(), backend)
    services = document["services"]
    agents = {name: s for name, s in services.items() if "stackha.node" in s.get("labels", {})}
    assert agents
    for name, service in agents.items():
        # The agent's options are its agent.yaml (a compose config), not its command line.
        assert _agent_yaml(document, name)["trusted-key"] == [
            "/etc/stackha/trusted/lab-signing.pub"]
        assert ".stackha/signing.pub:/etc/stackha/trusted/lab-signing.pub:ro" \
            in service["volumes"]
        assert not any("signing.key" in v for v in service["volumes"])


def test_lab_signing_key_is_made_once_and_only_the_host_knows_it(tmp_path):
    from stackha.lab.compose.signing import lab_signing_key
    from stackha.trust.signing import load_private, load_trusted

    private = lab_signing_key(tmp_path)
    assert private.stat().st_mode & 0o777 == 0o600
    assert lab_signing_key(tmp_path) == private  # kept: the agents pin its public half
    key = load_private(private)
    assert load_trusted([tmp_path / "signing.pub"]).ids == (key.key_id,)
    lab_credentials(_spec(), tmp_path, environ={},
                    extra={"STACKHA_SIGNING_KEY": str(private)})
    assert parse_env_file((tmp_path / "lab.env").read_text())["STACKHA_SIGNING_KEY"] == \
        str(private)
    agent_files = sorted(tmp_path.glob("agent-*.env"))
    assert agent_files  # one per node, and none of them names the signing key
    for agent_file in agent_files:
        assert "STACKHA_SIGNING_KEY" not in parse_env_file(agent_file.read_text())
    (tmp_path / "signing.pub").unlink()
    with pytest.raises(LabError, match=r"only one of signing\.key and signing\.pub"):
        lab_signing_key(tmp_path)


def test_lab_network_is_internal_and_mycat_nodes_know_it(backend):
    # No route out of the lab: an internal network has no NAT and no outward gateway.
    document = compose_document(_spec(), backend)
    assert document["networks"]["lab"]["internal"] is True
    mycat = document["services"]["mycat1-standin"]
    assert mycat["environment"]["STACKHA_LAB_NETWORK"] == "10.77.0.0/24"
    options = _agent_yaml(document, "mycat1-standin")  # the agent's options: its agent.yaml
    assert options["reload-timeout"] == 120
    assert options["mycat-backend-network"] == ["10.77.0.0/24"]


def test_mycat_tarball_is_placed_alone_in_the_build_context(tmp_path: Path):
    from stackha.lab.compose.commands import place_tarball

    (tmp_path / "mycat").mkdir()
    (tmp_path / "mycat/Mycat-server-old.tar.gz").write_bytes(b"old")
    release = tmp_path / "Mycat-server-1.6.6.1-release.tar.gz"
    release.write_bytes(b"release")
    assert place_tarball(release, tmp_path) == release.name
    assert [p.name for p in (tmp_path / "mycat").glob("*.tar.gz")] == [release.name]
    with pytest.raises(LabError, match="no such file"):
        place_tarball(tmp_path / "missing.tar.gz", tmp_path)


def test_keepalived_containers_get_a_realtime_budget_only_when_the_host_has_one(backend):
    # cgroup v1 RT group scheduling gives a container no realtime time unless asked: without
    # it keepalived's VRRP child cannot go realtime and a busy host makes the backups flap.
    plain = compose_document(_spec(), backend)["services"]
    assert not any("cpu_rt_runtime" in s for s in plain.values())
    budget = compose_document(_spec(), backend, LabOptions(rt_runtime_us=20_000))["services"]
    with_rt = {s["hostname"] for s in budget.values() if "cpu_rt_runtime" in s}
    assert with_rt == {"nginx1", "nginx2", "director1", "director2"}
    assert all(s["cpu_rt_period"] == 1_000_000 for s in budget.values() if "cpu_rt_runtime" in s)


def test_keepalived_containers_get_a_realtime_budget_only_where_docker_has_one(tmp_path,
                                                                               caplog):
    from stackha.lab.compose.commands import CONTAINER_RT_US, container_rt_budget

    root = tmp_path / "cpu.rt_runtime_us"
    group = tmp_path / "docker" / "cpu.rt_runtime_us"
    assert container_rt_budget(group, root) == 0  # cgroup v2 (no RT knob): none needed
    assert "lab_no_realtime_budget" not in caplog.text
    root.write_text("950000\n")
    # RT group scheduling, and docker's cgroup not made yet (no container ever started):
    # the VRRP would run SCHED_OTHER, and the operator is told
    assert container_rt_budget(group, root) == 0
    assert "event=lab_no_realtime_budget" in caplog.text
    group.parent.mkdir()
    group.write_text("400000\n")
    assert container_rt_budget(group, root) == CONTAINER_RT_US


def test_stackha_up_runs_its_own_rendering_and_leaves_the_committed_file_alone(tmp_path):
    # `make up` renders the release's lines (--mycat-tarball): written over the committed
    # compose/compose.yaml they left the checkout changed and failed the golden test above
    # in the `make test` that follows.
    from stackha.lab.compose import engine
    from stackha.lab.compose.paths import lab_compose_file, running_compose_file

    compose = tmp_path / "compose"
    compose.mkdir()
    running = running_compose_file(compose)
    assert running == compose / ".stackha" / "compose.yaml"
    assert lab_compose_file(compose) == compose / "compose.yaml"  # an older lab's file
    running.parent.mkdir()
    running.write_text("services: {}\n")
    assert lab_compose_file(compose) == running
    project = engine.ComposeProject(running, "stackha", directory=compose)
    command = project.command("up", "--detach")
    # Relative build contexts and mounts still start at compose/.
    assert command[command.index("--project-directory") + 1] == str(compose)
    assert command[command.index("--file") + 1] == str(running)


def test_mycat_nodes_start_once_the_backend_answers(backend):
    # A MyCat started before MariaDB waited 60 s for its backend pool and answered nothing on
    # its ports meanwhile (this lab's first version failed its check once on that).
    document = compose_document(_spec(), backend)
    services = document["services"]
    assert services["mysql"]["healthcheck"]["test"][:2] == ["CMD", "mariadb-admin"]
    waiting = {name for name, service in services.items()
               if service.get("depends_on") == {"mysql": {"condition": "service_healthy"}}}
    assert waiting == {service_name(node, LabOptions()) for node in _spec().nodes
                       if "mycat" in node.roles}
    assert len(waiting) == 3
