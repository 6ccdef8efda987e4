"""zookeeper.tls in the spec, the small CA, the lab's TLS files, and the host override."""

from __future__ import annotations

import ssl

import pytest

from stackha.lab.compose.backend import LabError
from stackha.lab.compose.certs import (
    alt_names_of,
    is_issued_by,
    make_ca,
    make_client_cert,
    make_server_cert,
)
from stackha.lab.compose.labtls import client_files, lab_tls_env, lab_tls_files
from stackha.model.problems import errors, warnings
from stackha.model.spec import parse_spec
from stackha.store.base import StoreError
from stackha.store.connect import TLS_DIR_ENV, tls_settings
from stackha.store.tls import TlsSettings
from tests.conftest import EXAMPLE_CONFIGS, without_tls

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()
AGENT_AUTH = "  agent_auth: {env: STACKHA_AGENT_CREDENTIAL}\n"


def _with_tls(block: str) -> str:
    """The example with ``block`` in place of its zookeeper.tls."""
    text = without_tls(EXAMPLE)
    assert AGENT_AUTH in text and "  tls:" not in text
    return text.replace(AGENT_AUTH, AGENT_AUTH + block)


def test_the_example_talks_tls_with_a_client_certificate():
    spec, problems = parse_spec(EXAMPLE, "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    tls = spec.zookeeper.tls
    assert tls is not None and tls.verify_hostname
    assert (tls.ca, tls.cert, tls.key) == ("/etc/stackha/tls/ca.pem",
                                           "/etc/stackha/tls/client.pem",
                                           "/etc/stackha/tls/client.key")
    assert spec.mycat_zookeeper is not None
    assert spec.mycat_zookeeper.hosts == "10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181"


@pytest.mark.parametrize("block,expected", [
    ("  tls: {cert: /c.pem, key: /c.key}\n", "zookeeper.tls: missing required key 'ca'"),
    ("  tls: {ca: ca.pem}\n", "zookeeper.tls.ca: must be an absolute path on the node"),
    ("  tls: {ca: /ca.pem, cert: /c.pem}\n", "give both cert and key"),
    ("  tls: {ca: /ca.pem, verify_hostname: yes please}\n",
     "zookeeper.tls.verify_hostname: must be boolean"),
    ("  tls: {ca: /ca.pem, pem: -----BEGIN}\n", "zookeeper.tls.pem: unknown key"),
    ("  tls: /etc/stackha/tls\n", "zookeeper.tls: must be a mapping"),
])
def test_bad_tls_settings_are_one_line_each_with_the_field(block, expected):
    spec, problems = parse_spec(_with_tls(block), "s.yaml")
    assert spec is None
    lines = [str(p) for p in errors(problems)]
    assert any(expected in line and line.startswith("s.yaml: line ") for line in lines), lines


def test_hostname_checks_off_is_a_warning():
    spec, problems = parse_spec(_with_tls("  tls: {ca: /ca.pem, verify_hostname: false}\n"))
    assert spec is not None and spec.zookeeper.tls is not None
    assert not spec.zookeeper.tls.verify_hostname
    assert any("verify_hostname" in str(p) for p in warnings(problems))


def test_mycat_needs_a_plain_port_when_stackha_talks_tls():
    text = EXAMPLE.replace('  hosts: "10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181"\n', "")
    spec, problems = parse_spec(text, "s.yaml")
    assert spec is None
    assert any("MyCat 1.6 cannot connect over TLS" in str(p) for p in errors(problems))


def test_without_tls_nothing_changes(monkeypatch):
    text = _with_tls("")
    spec, problems = parse_spec(text)
    assert spec is not None and spec.zookeeper.tls is None, problems
    monkeypatch.setenv(TLS_DIR_ENV, "/somewhere")
    assert tls_settings(spec) is None


def test_the_host_override_looks_the_files_up_by_name(monkeypatch):
    spec, _ = parse_spec(EXAMPLE)
    assert spec is not None
    monkeypatch.delenv(TLS_DIR_ENV, raising=False)
    assert tls_settings(spec) == TlsSettings("/etc/stackha/tls/ca.pem",
                                             "/etc/stackha/tls/client.pem",
                                             "/etc/stackha/tls/client.key", True)
    monkeypatch.setenv(TLS_DIR_ENV, "/lab/tls/coordinator")
    assert tls_settings(spec) == TlsSettings("/lab/tls/coordinator/ca.pem",
                                             "/lab/tls/coordinator/client.pem",
                                             "/lab/tls/coordinator/client.key", True)


def test_certificates_chain_to_their_ca_and_name_their_hosts(tmp_path):
    ca, other = make_ca(), make_ca("other")
    server = make_server_cert(ca, "zk1", ["10.77.0.5", "zk1"])
    client = make_client_cert(ca, "nginx1")
    assert set(alt_names_of(server.cert)) == {"10.77.0.5", "zk1"}
    assert alt_names_of(client.cert) == ()
    assert is_issued_by(server.cert, ca.cert) and is_issued_by(client.cert, ca.cert)
    assert not is_issued_by(client.cert, other.cert)
    # Python's ssl loads them as they are written (a key store is key then certificate).
    (tmp_path / "ca.pem").write_bytes(ca.cert)
    (tmp_path / "c.pem").write_bytes(client.cert)
    (tmp_path / "c.key").write_bytes(client.key)
    (tmp_path / "store.pem").write_bytes(server.key_store)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "store.pem")
    TlsSettings(str(tmp_path / "ca.pem"), str(tmp_path / "c.pem"), str(tmp_path / "c.key")
                ).context()


def test_a_key_that_is_not_the_certificates_is_one_line(tmp_path):
    ca = make_ca()
    (tmp_path / "ca.pem").write_bytes(ca.cert)
    (tmp_path / "c.pem").write_bytes(make_client_cert(ca, "a").cert)
    (tmp_path / "c.key").write_bytes(make_client_cert(ca, "b").key)
    with pytest.raises(StoreError, match=r"cannot load the client certificate .*c\.pem"):
        TlsSettings(str(tmp_path / "ca.pem"), str(tmp_path / "c.pem"),
                    str(tmp_path / "c.key")).context()


def test_lab_tls_files_are_made_once_kept_and_reissued_when_stale(tmp_path):
    spec, _ = parse_spec(EXAMPLE)
    assert spec is not None
    members = [(1, "10.77.0.5"), (2, "10.77.0.6"), (3, "10.77.0.7")]
    made = lab_tls_files(spec, tmp_path, members)
    assert made == ["CA", "zk1", "zk2", "zk3", "coordinator", *(n.name for n in spec.nodes)]
    tls = tmp_path / "tls"
    assert tls.stat().st_mode & 0o777 == 0o700
    assert (tls / "ca.key").stat().st_mode & 0o077 == 0
    assert (tls / "nginx1/client.key").stat().st_mode & 0o077 == 0
    assert (tls / "zk2/server.pem").stat().st_mode & 0o077 == 0
    ca = (tls / "ca.pem").read_bytes()
    assert set(alt_names_of((tls / "zk2/server.pem").read_bytes())) == {"10.77.0.6", "zk2"}
    assert is_issued_by((tls / "mycat3/client.pem").read_bytes(), ca)
    assert (tls / "director1/ca.pem").read_bytes() == ca == (tls / "zk1/ca.pem").read_bytes()
    # Kept on the next `stackha up`...
    assert lab_tls_files(spec, tmp_path, members) == []
    # ...but a member that moved, or a node's deleted files, are issued again (rotation).
    (tls / "nginx2/client.pem").unlink()
    assert lab_tls_files(spec, tmp_path, [(1, "10.77.0.9"), *members[1:]]) == ["zk1", "nginx2"]
    env = lab_tls_env(tmp_path, environ={})
    assert env == {TLS_DIR_ENV: str((tls / "coordinator").resolve())}
    assert (tmp_path / "tls.env").read_text() == f"{TLS_DIR_ENV}={env[TLS_DIR_ENV]}\n"
    assert lab_tls_env(tmp_path, environ={TLS_DIR_ENV: "/mine"}) == {}


def test_the_lab_needs_the_three_files_in_one_directory():
    spec, _ = parse_spec(_with_tls("  tls: {ca: /a/ca.pem, cert: /b/c.pem, key: /b/c.key}\n"))
    assert spec is not None and spec.zookeeper.tls is not None
    with pytest.raises(LabError, match="same directory"):
        client_files(spec.zookeeper.tls)
    spec, _ = parse_spec(_with_tls("  tls: {ca: /a/ca.pem}\n"))
    assert spec is not None and spec.zookeeper.tls is not None
    with pytest.raises(LabError, match="requires client certificates"):
        client_files(spec.zookeeper.tls)
