"""The node agent against a real ZooKeeper and a real nginx."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import MappingProxyType

import pytest

from stackha.cli.main import main
from stackha.coordinator.publish import Coordinator, Signer
from stackha.model.bundle import Bundle, ConfigVersion, serialise_version, sha256_hex
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus
from testkit.agentlab import (
    NginxNode,
    adapt_configs_for_loopback,
    coordinator_store,
    fetch,
    node_status,
    node_store,
    wait_for,
)
from testkit.localzk import LocalZooKeeper, free_port
from testkit.signing import harness_keys, sign_document

pytestmark = pytest.mark.integration


@pytest.fixture
def own_zookeeper(tmp_path):
    """A ZooKeeper this test may stop and start."""
    server = LocalZooKeeper(tmp_path / "zk")
    server.start()
    yield server
    server.stop()


def _node(tmp_path: Path, configs: Path, zk: LocalZooKeeper) -> NginxNode:
    node = NginxNode(tmp_path / "node", configs, zk.hosts)
    adapt_configs_for_loopback(configs, node.port)
    node.start_nginx()
    return node


def _set_page(configs: Path, text: str) -> None:
    (configs / "nginx/html/index.html").write_text(text)


def _push(configs: Path) -> None:
    assert main(["push-config", "--configs", str(configs)]) == 0


def _applied(configs: Path, zk: LocalZooKeeper, number: int) -> bool:
    status = node_status(configs, zk.hosts, "nginx1")
    return bool(status) and status["applied_version"] == number


def _cluster(configs: Path) -> str:
    spec, _ = parse_spec((configs / "stackha.yaml").read_text())
    assert spec is not None
    return spec.cluster


def _publish_raw(configs: Path, zk: LocalZooKeeper, document: bytes, sign: bool = True) -> int:
    """``document`` as the next version; signed with the harnesses' key, as a coordinator
    would, unless ``sign`` is False (these tests attack what comes after the signature)."""
    store = coordinator_store(configs, zk.hosts)

    def numbered(n: int) -> bytes:
        raw = document.replace(b'"version": 0', f'"version": {n}'.encode())
        return sign_document(raw, n, _cluster(configs)) if sign else raw

    try:
        return store.publish(numbered, store.current_number())
    finally:
        store.close()


def test_agent_applies_versions_and_nginx_serves_them(node, configs, zookeeper):
    _set_page(configs, "version one\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: fetch(node.url) == "version one\n", what="nginx to serve version one")
    wait_for(lambda: _applied(configs, zookeeper, 1), what="status applied 1")
    _set_page(configs, "version two\n")
    _push(configs)
    wait_for(lambda: fetch(node.url) == "version two\n", what="nginx to serve version two")
    status = wait_for(lambda: _applied(configs, zookeeper, 2) and
                      node_status(configs, zookeeper.hosts, "nginx1"))
    assert status["health"] == {"nginx": "ok"} and status["last_error"] == ""
    assert (node.prefix / "html/index.html").stat().st_mode & 0o777 == 0o644
    assert "event=applied version=2" in node.agent_log()


def test_node_side_validation_failure_keeps_the_old_version(node, configs, zookeeper):
    _set_page(configs, "good\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    # Passes the coordinator only because this coordinator trusts the certificate exists on
    # the nodes; it does not on this node, so the node's own nginx -t must refuse it.
    conf = (configs / "nginx/nginx.conf").read_text().replace(
        "server_name _;", "server_name _;\n        ssl_certificate /nonexistent/site.pem;"
                          "\n        ssl_certificate_key /nonexistent/site.key;")
    contents = {p: f.content for p, f in Bundle.from_contents(
        {p.relative_to(configs).as_posix(): p.read_bytes()
         for p in configs.rglob("*") if p.is_file()}).files.items()}
    contents["nginx/nginx.conf"] = conf.encode()
    contents["nginx/html/index.html"] = b"must never be served\n"
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        Coordinator(store, signer=Signer(harness_keys().key, _cluster(configs))).push(
            Bundle.from_contents(contents), "bad cert")
    finally:
        store.close()
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["last_error"] and s)
    assert "version 2 rejected at validate" in status["last_error"]
    assert "/nonexistent/site.pem" in status["last_error"]
    assert status["applied_version"] == 1
    assert fetch(node.url) == "good\n"
    assert (node.prefix / "html/index.html").read_text() == "good\n"


def test_failed_health_check_rolls_back_and_reloads(node, configs, zookeeper):
    _set_page(configs, "healthy\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    conf = configs / "nginx/nginx.conf"
    conf.write_text(conf.read_text().replace('return 200 "ok\\n";', 'return 503 "sick\\n";'))
    _set_page(configs, "from the sick version\n")
    _push(configs)
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["last_error"] and s, what="rollback reported")
    assert "version 2 rolled back at health" in status["last_error"]
    assert status["applied_version"] == 1
    wait_for(lambda: fetch(node.url) == "healthy\n", what="old content back")
    assert 'return 200 "ok\\n";' in (node.prefix / "nginx.conf").read_text()
    assert "event=rollback" in node.agent_log()


def test_zookeeper_outage_tears_nothing_down_and_agent_resyncs(tmp_path, configs,
                                                               own_zookeeper):
    node = _node(tmp_path, configs, own_zookeeper)
    try:
        _set_page(configs, "before outage\n")
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent()
        wait_for(lambda: fetch(node.url) == "before outage\n", what="first version served")
        own_zookeeper.stop()
        time.sleep(3)
        assert node.agent.poll() is None, "agent must survive ZooKeeper going away"
        assert fetch(node.url) == "before outage\n"
        own_zookeeper.start()
        _set_page(configs, "after outage\n")
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        wait_for(lambda: fetch(node.url) == "after outage\n", what="resync after outage")
        wait_for(lambda: _applied(configs, own_zookeeper, 2), what="status back")
        assert "state=SUSPENDED" in node.agent_log()
    finally:
        node.close()


def test_agent_restarted_while_zookeeper_is_down_keeps_the_node(tmp_path, configs,
                                                                 own_zookeeper):
    node = _node(tmp_path, configs, own_zookeeper)
    try:
        _set_page(configs, "last known good\n")
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent()
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="version 1 applied")
        assert node.stop_agent(signal.SIGTERM) == 0
        page = node.prefix / "html/index.html"
        written = page.stat().st_mtime_ns
        own_zookeeper.stop()
        node.start_agent()
        time.sleep(3)
        assert node.agent.poll() is None
        assert fetch(node.url) == "last known good\n"
        assert page.stat().st_mtime_ns == written, "nothing may be rewritten without ZooKeeper"
        assert "event=last_good_loaded version=1" in node.agent_log()
        own_zookeeper.start()
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="status after ZK returns")
    finally:
        node.close()


def _document(files: dict[str, dict]) -> bytes:
    contents = {p: f["content"].encode() for p, f in files.items()}
    fake = ConfigVersion(0, Bundle.from_contents({}), "now", "test", "crafted")
    document = json.loads(serialise_version(fake))
    document["files"] = files
    lines = "".join(f"{sha256_hex(contents[p])}  {p}\n" for p in sorted(files))
    document["digest"] = sha256_hex(lines.encode())
    return json.dumps(document, indent=1).encode()


def _files_of(configs: Path) -> dict[str, dict]:
    return {p.relative_to(configs).as_posix(): {"content": p.read_text(), "encoding": "utf-8",
                                                "sha256": sha256_hex(p.read_bytes()),
                                                "mode": "0644"}
            for p in configs.rglob("*") if p.is_file()}


def test_bundle_with_parent_path_is_refused_and_nothing_escapes(node, configs, zookeeper,
                                                                tmp_path):
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    files = _files_of(configs)
    evil = "owned\n"
    files["nginx/../../escaped.txt"] = {"content": evil, "encoding": "utf-8",
                                        "sha256": sha256_hex(evil.encode()), "mode": "0644"}
    number = _publish_raw(configs, zookeeper, _document(files))
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["last_error"] and s)
    assert f"version {number} rejected at verify" in status["last_error"]
    assert "refused path 'nginx/../../escaped.txt'" in status["last_error"]
    assert not list(tmp_path.rglob("escaped.txt"))
    assert status["applied_version"] == 1


def test_tampered_file_is_refused(node, configs, zookeeper):
    _set_page(configs, "genuine\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    files = _files_of(configs)
    files["nginx/html/index.html"]["content"] = "tampered\n"  # checksum left as it was
    number = _publish_raw(configs, zookeeper, _document(files))
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["last_error"] and s)
    assert f"version {number} rejected at verify" in status["last_error"]
    assert "does not match its sha256" in status["last_error"]
    assert fetch(node.url) == "genuine\n"


def test_status_command_shows_drift_and_missing_nodes(node, configs, zookeeper, capsys):
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    capsys.readouterr()
    assert main(["status", "--configs", str(configs)]) == 0
    table = capsys.readouterr().out
    nginx1 = next(line for line in table.splitlines() if line.startswith("nginx1"))
    assert "1" in nginx1.split() and "(drift)" not in nginx1 and "nginx=ok" in nginx1
    assert any(line.startswith("nginx2") and "missing" in line for line in table.splitlines())
    assert main(["status", "--json", "--configs", str(configs)]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["node"]: row for row in data["nodes"]}
    assert rows["nginx1"]["drift"] is False and rows["nginx2"]["reporting"] is False


def test_expired_session_reregisters_status_and_resyncs(tmp_path, configs, own_zookeeper):
    # A frozen agent (a long pause, a stopped VM) outlives its 2 s session: ZooKeeper drops
    # the ephemeral status node, and on waking the agent must see LOST and start over.
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace("session_timeout: 10", "session_timeout: 2"))
    node = _node(tmp_path, configs, own_zookeeper)
    try:
        _set_page(configs, "first\n")
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent()
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="first version applied")
        node.agent.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: node_status(configs, own_zookeeper.hosts, "nginx1") is None,
                     what="ZooKeeper to expire the frozen agent's session")
            assert fetch(node.url) == "first\n"
        finally:
            node.agent.send_signal(signal.SIGCONT)
        wait_for(lambda: "state=LOST" in node.agent_log(), what="agent to see LOST")
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="status re-registered")
        _set_page(configs, "second\n")
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        wait_for(lambda: fetch(node.url) == "second\n", what="resync after the new session")
    finally:
        node.close()


def test_metrics_endpoint_reports_version_and_connection(tmp_path, configs, own_zookeeper):
    node = _node(tmp_path, configs, own_zookeeper)
    port = free_port()
    try:
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent("--metrics-port", str(port), "--metrics-address", "127.0.0.1")
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="first version applied")
        text = wait_for(lambda: fetch(f"http://127.0.0.1:{port}/metrics"), what="metrics")
        assert "stackha_applied_version 1.0" in text
        assert "stackha_zookeeper_connected 1.0" in text
        assert "stackha_reload_seconds_count" in text
    finally:
        node.close()


def test_restarted_agent_takes_over_its_status_node(tmp_path, configs, own_zookeeper):
    # The killed agent's session outlives it by the session timeout; its status node must not
    # take the new agent's reports with it when that session finally expires.
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace("session_timeout: 10", "session_timeout: 2"))
    node = _node(tmp_path, configs, own_zookeeper)
    try:
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent()
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="first version applied")
        node.stop_agent(signal.SIGKILL)
        node.start_agent()
        wait_for(lambda: "event=status_node_taken_over" in node.agent_log(),
                 what="the new agent to take the status node over")
        time.sleep(4)  # twice the session timeout: the killed agent's session has expired
        assert _applied(configs, own_zookeeper, 1)
    finally:
        node.close()


def _publish_with_canary(configs: Path, zk: LocalZooKeeper, page: str, canary: str) -> int:
    _set_page(configs, page)
    contents = {p.relative_to(configs).as_posix(): p.read_bytes()
                for p in configs.rglob("*") if p.is_file()}
    version = ConfigVersion(0, Bundle.from_contents(contents), "now", "test", page.strip(),
                            MappingProxyType({"nginx": canary}))
    return _publish_raw(configs, zk, serialise_version(version))


def test_a_version_waits_for_its_canary_and_follows_its_verdict(node, configs, zookeeper):
    # nginx2 is the canary here; its reports are written as its agent would write them.
    _set_page(configs, "one\n")
    _push(configs)
    node.start_agent("--rollout-wait", "5")
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    peer = node_store(configs, zookeeper.hosts, "nginx2")
    try:
        def report(**fields) -> None:
            peer.put_status(NodeStatus(node="nginx2", **fields))

        report(applied_version=1)
        two = _publish_with_canary(configs, zookeeper, "two\n", "nginx2")
        wait_for(lambda: "event=rollout_wait version=2" in node.agent_log(), what="the wait")
        time.sleep(1.0)  # several polls of the canary's status
        assert fetch(node.url) == "one\n"
        assert node_status(configs, zookeeper.hosts, "nginx1")["applied_version"] == 1
        report(applied_version=two)
        wait_for(lambda: fetch(node.url) == "two\n", what="version 2 after its canary")

        three = _publish_with_canary(configs, zookeeper, "three\n", "nginx2")
        report(applied_version=two, rejected_version=three,
               last_error=f"version {three} rolled back at health: HTTP 503")
        status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                          and s["rejected_version"] == three and s, what="refused after canary")
        assert f"version {three} rejected at canary: canary nginx2 (nginx) refused it" \
            in status["last_error"]
        assert status["applied_version"] == two
        assert fetch(node.url) == "two\n"
        assert "three" not in (node.prefix / "html/index.html").read_text()

        # A canary that is gone holds the rollout up only until --rollout-wait.
        peer.delete_status("nginx2")
        four = _publish_with_canary(configs, zookeeper, "four\n", "nginx2")
        wait_for(lambda: f"event=rollout_wait version={four}" in node.agent_log(),
                 what="the wait for a gone canary")
        assert fetch(node.url) == "two\n"
        wait_for(lambda: fetch(node.url) == "four\n", what="version 4 without its canary")
        assert f"event=rollout_proceed version={four}" in node.agent_log()
        assert "canary nginx2 (nginx) gone for " in node.agent_log()
    finally:
        peer.close()


def test_push_config_names_a_canary_that_holds_no_vip(node, configs, zookeeper, capsys):
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    peer = node_store(configs, zookeeper.hosts, "nginx2")
    try:
        # nginx2 holds the web VIP: nginx1 (this node, no VIP) must go first.
        peer.put_status(NodeStatus(node="nginx2", applied_version=1,
                                   vrrp=MappingProxyType({"web": "MASTER"})))
        capsys.readouterr()
        _set_page(configs, "canary first\n")
        _push(configs)
        assert "canary first: nginx1 (nginx)" in capsys.readouterr().out
        wait_for(lambda: fetch(node.url) == "canary first\n", what="the canary applies at once")
        assert "event=rollout_wait" not in node.agent_log()
        _set_page(configs, "everyone\n")
        assert main(["push-config", "--configs", str(configs), "--all-at-once"]) == 0
        assert "; canary first:" not in capsys.readouterr().out
    finally:
        peer.close()


def test_the_health_check_asks_what_the_applied_version_says(node, configs, zookeeper):
    """Found in review: the agent froze health_checks.nginx.url from the spec it was started
    with, while keepalived's check followed the published version. A version whose own
    health URL fails must be rolled back, whatever the agent's local spec says."""
    _set_page(configs, "good\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace(f"127.0.0.1:{node.port}/healthz",
                                             f"127.0.0.1:{node.port}/no-such-page"))
    _set_page(configs, "its own health URL fails\n")
    _push(configs)
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["last_error"] and s, what="version 2 refused")
    assert "version 2" in status["last_error"] and "health" in status["last_error"]
    assert status["applied_version"] == 1
    assert fetch(node.url) == "good\n"


def _endpoint(port: int, path: str) -> tuple[int, dict] | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def test_agent_yaml_is_used_and_flags_override_it(tmp_path, configs, own_zookeeper):
    # Issue #18: the options come from agent.yaml; a flag given as well wins.
    node = _node(tmp_path, configs, own_zookeeper)
    port = free_port()
    config = tmp_path / "agent.yaml"
    config.write_text(f"# what the flags held\nmetrics-port: {port}\nheartbeat: 9\n"
                      f"health_timeout: 1.5\n")
    config.chmod(0o600)
    try:
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent("--config", str(config))  # start_agent also passes --heartbeat 0.5
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="first version applied")
        code, body = wait_for(lambda: _endpoint(port, "/health"), what="the file's port")
        assert code == 200 and body["healthy"] is True and body["applied_version"] == 1
        status = node_status(configs, own_zookeeper.hosts, "nginx1")
        assert status["heartbeat_interval"] == 0.5  # the flag, not the file's 9
    finally:
        node.close()


def test_a_bad_agent_yaml_is_refused_with_file_and_line_and_nothing_starts(
        tmp_path, configs, own_zookeeper):
    import subprocess
    import sys

    config = tmp_path / "agent.yaml"
    config.write_text("node: nginx1\nnginx-dir: /srv/nginx\nheartbeat: often\nnginx_port: 80\n")
    config.chmod(0o600)
    assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
    done = subprocess.run([sys.executable, "-m", "stackha", "agent", "--config", str(config),
                           "--configs", str(configs), "--zk", own_zookeeper.hosts,
                           "--state-dir", str(tmp_path / "state")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines()[:2] == [
        f"{config}: line 3: heartbeat: invalid float value 'often'",
        f"{config}: line 4: nginx_port: unknown option (did you mean nginx-dir, nginx-reload?)"]
    assert node_status(configs, own_zookeeper.hosts, "nginx1") is None  # never registered
    assert not (tmp_path / "state").exists()


def test_health_endpoint_is_503_while_nginx_is_down_and_status_is_the_stored_one(
        tmp_path, configs, own_zookeeper):
    node = _node(tmp_path, configs, own_zookeeper)
    port = free_port()
    try:
        assert main(["push-config", "--configs", str(configs), "--zk", own_zookeeper.hosts]) == 0
        node.start_agent("--metrics-port", str(port))
        wait_for(lambda: _applied(configs, own_zookeeper, 1), what="first version applied")
        wait_for(lambda: (_endpoint(port, "/health") or (0,))[0] == 200, what="/health 200")
        assert _endpoint(port, "/vrrp/web")[0] == 503  # a member, but no keepalived runs here
        assert _endpoint(port, "/vrrp/nosuch")[0] == 404
        node.stop_nginx()
        code, body = wait_for(lambda: (r := _endpoint(port, "/health")) and r[0] == 503 and r,
                              what="/health 503")
        assert body["healthy"] is False and body["reasons"][0].startswith("nginx: ")
        code, document = _endpoint(port, "/status")
        assert code == 200 and document["node"] == "nginx1"
        assert document["health"]["nginx"] != "ok"
        node.start_nginx()
        wait_for(lambda: (_endpoint(port, "/health") or (0,))[0] == 200, what="/health back")
        # /status is the document the agent writes to ZooKeeper.
        stored = node_status(configs, own_zookeeper.hosts, "nginx1")
        assert set(_endpoint(port, "/status")[1]) == set(stored)
    finally:
        node.close()


def test_status_watch_refreshes_in_place_on_a_terminal_and_in_blocks_otherwise(
        configs, zookeeper, capsys):
    import os
    import pty
    import subprocess
    import sys

    _push(configs)
    capsys.readouterr()
    watch = ["status", "--configs", str(configs), "--watch", "--interval", "0.1",
             "--count", "3"]
    assert main(watch) == 0
    out = capsys.readouterr().out
    # A log gets plain blocks, each headed by its time.
    assert out.count("--- ") == 3 and out.count("NODE") == 3 and "\x1b[" not in out
    assert main([*watch, "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(json.loads(line)["schema_version"] == 1 for line in lines)
    # On a terminal each refresh clears the screen and starts at the top.
    leader, follower = pty.openpty()
    try:
        done = subprocess.run([sys.executable, "-m", "stackha", *watch], stdout=follower,
                              stderr=subprocess.PIPE, timeout=60, env=os.environ.copy())
        os.close(follower)
        follower = -1
        screen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            screen += chunk
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)
    assert done.returncode == 0, done.stderr
    assert screen.count(b"\x1b[H\x1b[2J") == 3 and b"--- " not in screen
    assert screen.count(b"NODE") == 3
