"""TLS to a real ZooKeeper (Netty, PEM stores, client certificates required), from the side
of a client that should be refused: an untrusted CA, no client certificate, a certificate of
another CA, a server certificate that names another host, plain TCP on the TLS port."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackha.cli.main import main
from stackha.lab.compose.certs import make_ca, make_client_cert, make_server_cert
from stackha.store.base import StoreError
from stackha.store.tls import TlsSettings
from stackha.store.zookeeper import Identity, ZooKeeperStore
from testkit import COORDINATOR
from testkit.agentlab import NginxNode, adapt_configs_for_loopback, fetch, node_status, wait_for
from testkit.localzk import LocalZooKeeper, ServerTls

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path
    rogue_ca: Path         # trusted by nobody
    rogue_cert: Path       # a client certificate the rogue CA signed
    rogue_key: Path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[Pki, Path, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca, rogue = make_ca("test CA"), make_ca("rogue CA")
    client, rogue_client = make_client_cert(ca, "coordinator"), make_client_cert(rogue, "evil")
    good_server = make_server_cert(ca, "zk", ["127.0.0.1"])
    misnamed_server = make_server_cert(ca, "zk", ["zk9.invalid", "10.99.0.9"])
    files = Pki(_write(d / "ca.pem", ca.cert), _write(d / "client.pem", client.cert),
                _write(d / "client.key", client.key), _write(d / "rogue-ca.pem", rogue.cert),
                _write(d / "rogue.pem", rogue_client.cert),
                _write(d / "rogue.key", rogue_client.key))
    return (files, _write(d / "server.pem", good_server.key_store),
            _write(d / "misnamed.pem", misnamed_server.key_store))


@pytest.fixture(scope="module")
def tls_zk(tmp_path_factory, pki):
    files, server, _ = pki
    zk = LocalZooKeeper(tmp_path_factory.mktemp("tlszk"), tls=ServerTls(server, files.ca))
    zk.start()
    yield zk
    zk.stop()


@pytest.fixture(scope="module")
def misnamed_zk(tmp_path_factory, pki):
    files, _, misnamed = pki
    zk = LocalZooKeeper(tmp_path_factory.mktemp("misnamedzk"),
                        tls=ServerTls(misnamed, files.ca))
    zk.start()
    yield zk
    zk.stop()


def _store(hosts: str, tls: TlsSettings | None, connect_timeout: float = 30.0
           ) -> ZooKeeperStore:
    return ZooKeeperStore(hosts, "/stackha", "tls", Identity.parse(COORDINATOR, "test"),
                          connect_timeout=connect_timeout, tls=tls)


def _refusal(hosts: str, tls: TlsSettings | None, connect_timeout: float = 30.0) -> str:
    store = _store(hosts, tls, connect_timeout)
    with pytest.raises(StoreError) as refused:
        store.start()
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_right_ca_and_client_cert_connect(pki, tls_zk):
    files, _, _ = pki
    store = _store(tls_zk.secure_hosts, TlsSettings(str(files.ca), str(files.cert),
                                                    str(files.key)))
    store.start()
    try:
        # A read that needs a live session: the TLS handshake and the digest auth both held.
        assert store.current_number() in (None, 0)
        assert store.connected
    finally:
        store.close()


def test_an_untrusted_ca_is_refused_with_the_reason(pki, tls_zk):
    files, _, _ = pki
    message = _refusal(tls_zk.secure_hosts, TlsSettings(str(files.rogue_ca), str(files.cert),
                                                        str(files.key)))
    assert message.startswith(f"TLS to ZooKeeper refused: {tls_zk.secure_hosts}: ")
    assert "certificate verify failed" in message


def test_no_client_certificate_is_refused_when_the_server_needs_one(pki, tls_zk):
    files, _, _ = pki
    message = _refusal(tls_zk.secure_hosts, TlsSettings(str(files.ca)))
    assert "refused this client's certificate" in message


def test_a_client_certificate_of_another_ca_is_refused(pki, tls_zk):
    files, _, _ = pki
    message = _refusal(tls_zk.secure_hosts, TlsSettings(str(files.ca), str(files.rogue_cert),
                                                        str(files.rogue_key)))
    assert "refused this client's certificate" in message


def test_a_server_certificate_for_another_host_is_refused(pki, misnamed_zk):
    files, _, _ = pki
    settings = TlsSettings(str(files.ca), str(files.cert), str(files.key))
    message = _refusal(misnamed_zk.secure_hosts, settings)
    assert "mismatch, certificate is not valid for '127.0.0.1'" in message
    # The same certificate passes without the hostname check: it is the check that refuses.
    store = _store(misnamed_zk.secure_hosts,
                   TlsSettings(settings.ca, settings.cert, settings.key, check_hostname=False))
    store.start()
    store.close()


def test_plain_tcp_to_the_tls_port_fails(tls_zk):
    message = _refusal(tls_zk.secure_hosts, None, connect_timeout=3.0)
    assert "cannot reach ZooKeeper" in message


def test_tls_to_the_plain_port_is_refused(pki, tls_zk):
    files, _, _ = pki
    message = _refusal(tls_zk.hosts, TlsSettings(str(files.ca), str(files.cert),
                                                 str(files.key)))
    assert message.startswith("TLS to ZooKeeper refused")


def test_a_missing_ca_file_is_one_line_naming_it(tls_zk, tmp_path):
    with pytest.raises(StoreError, match=r"zookeeper.tls.ca: cannot load .*nothing.pem"):
        _store(tls_zk.secure_hosts, TlsSettings(str(tmp_path / "nothing.pem")))


def test_rotation_to_a_new_ca_goes_through_files_holding_both(pki, tmp_path):
    """The README's rotation: trust stores holding the old and the new CA accept clients of
    either, so certificates can be replaced one host at a time."""
    files, _, _ = pki
    both = tmp_path / "both.pem"
    rogue = make_ca("new CA")
    server = tmp_path / "server.pem"
    server.write_bytes(make_server_cert(rogue, "zk", ["127.0.0.1"]).key_store)
    new_ca = _write(tmp_path / "new-ca.pem", rogue.cert)
    both.write_bytes(files.ca.read_bytes() + rogue.cert)
    new_client = make_client_cert(rogue, "coordinator")
    new_cert = _write(tmp_path / "new.pem", new_client.cert)
    new_key = _write(tmp_path / "new.key", new_client.key)
    zk = LocalZooKeeper(tmp_path / "zk", tls=ServerTls(server, both))
    zk.start()
    try:
        for settings in (TlsSettings(str(both), str(files.cert), str(files.key)),
                         TlsSettings(str(new_ca), str(new_cert), str(new_key))):
            store = _store(zk.secure_hosts, settings)
            store.start()
            store.close()
        # A client that still trusts only the old CA is refused by the new server cert.
        assert "certificate verify failed" in _refusal(
            zk.secure_hosts, TlsSettings(str(files.ca), str(files.cert), str(files.key)))
    finally:
        zk.stop()


# push-config and an agent, each through the spec's zookeeper.tls --------------------------

def _tls_spec(configs: Path, zk: LocalZooKeeper, ca: Path, cert: Path, key: Path) -> None:
    """stackha over the TLS port; MyCat's own layout (no TLS in MyCat) on the plain one."""
    spec = configs / "stackha.yaml"
    text = spec.read_text()
    zookeeper, mycat = re.findall(r'(?m)^  hosts: "[^"]*"', text)
    text = text.replace(zookeeper, f'  hosts: "{zk.secure_hosts}"').replace(
        mycat, f'  hosts: "{zk.hosts}"')
    text = text.replace("  agent_auth: {env: STACKHA_AGENT_CREDENTIAL}\n",
                        "  agent_auth: {env: STACKHA_AGENT_CREDENTIAL}\n"
                        f"  tls: {{ca: {ca}, cert: {cert}, key: {key}}}\n")
    spec.write_text(text)


@pytest.fixture
def tls_node(tmp_path, configs, tls_zk, pki):
    files, _, _ = pki
    _tls_spec(configs, tls_zk, files.ca, files.cert, files.key)
    node = NginxNode(tmp_path / "node", configs, tls_zk.secure_hosts)
    adapt_configs_for_loopback(configs, node.port)
    node.start_nginx()
    yield node
    node.close()


def _status(configs: Path, zk: LocalZooKeeper) -> dict | None:
    # Read over the plain port of the same server: the test's own view, not the agent's.
    return node_status(configs, zk.hosts, "nginx1")


def test_push_config_and_an_agent_apply_work_over_tls(tls_node, configs, tls_zk, capsys):
    (configs / "nginx/html/index.html").write_text("over tls\n")
    assert main(["push-config", "--configs", str(configs)]) == 0
    assert "published version 1" in capsys.readouterr().out
    tls_node.start_agent()
    wait_for(lambda: fetch(tls_node.url) == "over tls\n", what="nginx to serve the TLS push")
    status = wait_for(lambda: (s := _status(configs, tls_zk)) and s["applied_version"] == 1
                      and s)
    assert status["last_error"] == ""
    assert "zk_tls_refused" not in tls_node.agent_log()


def test_push_config_with_an_untrusted_ca_says_why_in_one_line(tls_node, configs, tls_zk,
                                                              pki, capsys):
    files, _, _ = pki
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace(f"ca: {files.ca}", f"ca: {files.rogue_ca}"))
    assert main(["push-config", "--configs", str(configs)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert any("TLS to ZooKeeper refused" in line and "certificate verify failed" in line
               for line in err), err


def test_an_agent_refused_by_tls_keeps_running_and_recovers_when_the_ca_is_fixed(
        tls_node, configs, tls_zk, pki, tmp_path):
    files, _, _ = pki
    assert main(["push-config", "--configs", str(configs)]) == 0
    ca = tmp_path / "agent-ca.pem"
    ca.write_bytes(files.rogue_ca.read_bytes())
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace(f"ca: {files.ca}", f"ca: {ca}"))
    tls_node.start_agent()
    wait_for(lambda: "event=zk_tls_refused" in tls_node.agent_log(),
             what="the agent to log the TLS refusal")
    line = next(x for x in tls_node.agent_log().splitlines() if "event=zk_tls_refused" in x)
    assert "certificate verify failed" in line
    assert tls_node.agent is not None and tls_node.agent.poll() is None
    assert _status(configs, tls_zk) is None
    # The right CA written in place: the next reconnection reads it, without a restart.
    ca.write_bytes(files.ca.read_bytes())
    wait_for(lambda: (s := _status(configs, tls_zk)) and s["applied_version"] == 1,
             what="the agent to connect with the fixed CA and apply version 1")
    assert tls_node.agent.poll() is None
