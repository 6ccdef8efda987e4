"""The grammar of spec values that end up in files, names, znodes, rules and commands: a table
of good and bad values per field, then the same values through the spec parser."""

from __future__ import annotations

import pytest

from stackha.model import grammar
from stackha.model.spec import parse_spec
from testkit import EXAMPLE_CONFIGS

# The URL an attacker used: a quote closes keepalived's script string, the newlines add a
# startup_script that keepalived ran as root.
INJECTED_URL = ('http://127.0.0.1/healthz"\n}\nglobal_defs {\n    startup_script '
                '"/bin/sh -c id"\n}\nvrrp_script x {\n    script "/bin/true')

NAMES_GOOD = ["nginx1", "a", "mycat-2", "0", "a" * 63]
NAMES_BAD = ["", "..", ".", "ng/x", "a\nb", "Nginx1", "-a", "a-", "a_b", "a.b", "a b",
             "a" * 64, "a\"b", "a#b", "a!b", "a{b", "é"]

INTERFACES_GOOD = ["eth0", "lo", "ens3.100", "br_lab-1", "x" * 15, "veth0@"[:-1]]
INTERFACES_BAD = ["", ".", "..", "x" * 16, "eth 0", "eth0\n", "eth/0", "eth0:1", '"eth0"',
                  "-eth0", ".eth0", "eth0;", "eth0}"]

URLS_GOOD = [
    ("http://127.0.0.1/healthz", "http://127.0.0.1/healthz"),
    ("https://web.example:8443/a/b?x=1&y=2", "https://web.example:8443/a/b?x=1&y=2"),
    ("http://127.0.0.1", "http://127.0.0.1/"),
    ("http://127.0.0.1:80/%20x", "http://127.0.0.1:80/%20x"),
]
URLS_BAD = [INJECTED_URL, 'http://127.0.0.1/"', "http://127.0.0.1/a b", "ftp://127.0.0.1/",
            "file:///etc/passwd", "http://u:p@127.0.0.1/", "http://127.0.0.1/#x",
            "http://127.0.0.1/!x", "http://127.0.0.1/${X}", "http://127.0.0.1/{x}",
            "http:///x", "http://127.0.0.1:99999/", "http://127.0.0.1/\\x",
            "http://127.0.0.1/%zz", "http://[::1]/", "http://127.0.0.1/\t", "http://h_x/",
            "http://127.0.0.1/é", "http://127.0.0.1/'x'"]

HOSTS_GOOD = ["127.0.0.1", "mycat.lab", "localhost", "db-1.example.org."]
HOSTS_BAD = ["", "127.0.0.1 ", "a b", "a\nb", "-a.b", "a..b", "1.2.3.999", "h_x", "a;b"]

USERS_GOOD = ["app", "app_user", "a.b-c", "x" * 32]
USERS_BAD = ["", "a b", "a\nb", "x" * 33, "a'b", "-a", "a=b"]

ZK_HOSTS_GOOD = [("127.0.0.1:2181", "127.0.0.1:2181"),
                 ("10.0.0.1:2181, 10.0.0.2:2182", "10.0.0.1:2181,10.0.0.2:2182"),
                 ("zk1", "zk1:2181")]
ZK_HOSTS_BAD = ["", "127.0.0.1:0", "127.0.0.1:x", "a b:1", "127.0.0.1:2181/chroot",
                "127.0.0.1:2181\nloadZk=false", "127.0.0.1:2181,"]

ZNODE_GOOD = ["/stackha", "/a/b_c/d-1", "/mycat"]
ZNODE_BAD = ["", "/", "stackha", "/a/", "/a//b", "/a/../b", "/.", "/a\nb", "/a b"]


# Each checker that answers a reason (None when the value is good), with values on each side.
REASON_CHECKS = {
    "name": (grammar.name_reason, NAMES_GOOD, NAMES_BAD),
    "interface": (grammar.interface_reason, INTERFACES_GOOD, INTERFACES_BAD),
    "host": (grammar.host_reason, HOSTS_GOOD, HOSTS_BAD),
    "user": (grammar.user_reason, USERS_GOOD, USERS_BAD),
    "znode path": (grammar.znode_path_reason, ZNODE_GOOD, ZNODE_BAD),
}
# Each normaliser that answers (normal form, None) or (None, reason).
NORMALISERS = {
    "url": (grammar.normal_url, URLS_GOOD, URLS_BAD),
    "zookeeper hosts": (grammar.normal_zk_hosts, ZK_HOSTS_GOOD, ZK_HOSTS_BAD),
}


@pytest.mark.parametrize(("check", "value", "good"), [
    (check, value, good) for check, (_, goods, bads) in REASON_CHECKS.items()
    for good, values in ((True, goods), (False, bads)) for value in values])
def test_reason_checks(check, value, good):
    reason = REASON_CHECKS[check][0](value)
    assert (reason is None) if good else reason


@pytest.mark.parametrize(("check", "value", "normal"), [
    (check, *case) for check, (_, goods, _bads) in NORMALISERS.items() for case in goods])
def test_good_values_are_re_serialised(check, value, normal):
    assert NORMALISERS[check][0](value) == (normal, None)


@pytest.mark.parametrize(("check", "value"), [
    (check, value) for check, (_, _goods, bads) in NORMALISERS.items() for value in bads])
def test_bad_values_are_not_normalised(check, value):
    out, reason = NORMALISERS[check][0](value)
    assert out is None and reason


def test_env_names_and_file_paths():
    assert grammar.env_name_reason("STACKHA_AGENT_CREDENTIAL") is None
    assert grammar.env_name_reason("A B") and grammar.env_name_reason("1X")
    assert grammar.file_path_reason("/etc/stackha/agent.cred") is None
    assert grammar.file_path_reason("/etc/../x") and grammar.file_path_reason("a\nb")


# --- the same values through the parser: each refusal is one line naming file, line, field --

def _example() -> str:
    return (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def _errors(text: str) -> list[str]:
    spec, problems = parse_spec(text, "configs/stackha.yaml")
    assert spec is None, "the spec was accepted"
    return [str(p) for p in problems if p.is_error]


def _yaml_string(value: str) -> str:
    return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'


def test_the_example_spec_parses():
    spec, problems = parse_spec(_example())
    assert spec is not None, problems
    assert spec.health_check("nginx").url == "http://127.0.0.1/healthz"


def test_injected_health_url_is_refused_with_file_line_and_field():
    text = _example().replace('url: "http://127.0.0.1/healthz"',
                              f"url: {_yaml_string(INJECTED_URL)}")
    assert text != _example()
    found = _errors(text)
    assert len(found) == 1
    assert found[0].startswith("configs/stackha.yaml: line ")
    assert "health_checks.nginx.url" in found[0]
    assert "\n" not in found[0]


@pytest.mark.parametrize("name", ["..", "ng/x", "a\nb"])
def test_hostile_node_names_are_refused(name):
    text = _example().replace("{name: nginx2,", f"{{name: {_yaml_string(name)},")
    found = _errors(text)
    assert any("nodes[1].name" in line and "must be 1-63" in line for line in found), found
    assert all("\n" not in line for line in found)


@pytest.mark.parametrize(("old", "new", "field"), [
    ("cluster: demo", "cluster: ../demo", "cluster"),
    ("interface: eth0, roles: [nginx]}", 'interface: "eth0\\n", roles: [nginx]}',
     "nodes[0].interface"),
    ("  - name: web", '  - name: "web\\n}"', "vrrp_groups[0].name"),
    ("    interface: eth0\n    vips: [10.77.0.100/24]",
     "    interface: eth0 x\n    vips: [10.77.0.100/24]", "vrrp_groups[0].interface"),
    ("members: {nginx1: 150,", 'members: {"nginx1\\n": 150,', "vrrp_groups[0].members"),
    ("realservers: [mycat1,", 'realservers: ["mycat1\\nx",', "lvs_services[0].realservers"),
    ("user: app,", 'user: "app\\nx",', "health_checks.mycat.user"),
    ("mycat: {port: 8066,", 'mycat: {host: "127.0.0.1 --x", port: 8066,',
     "health_checks.mycat.host"),
    ("chroot: /stackha", "chroot: /stackha/../x", "zookeeper.chroot"),
    ('hosts: "10.77.0.5:2281,', 'hosts: "10.77.0.5:2281\\nloadZk=false,', "zookeeper.hosts"),
    ('hosts: "10.77.0.5:2181,', 'hosts: "10.77.0.5:2181\\nloadZk=false,',
     "mycat_zookeeper.hosts"),
    ("root: /mycat", "root: /a/../mycat", "mycat_zookeeper.root"),
    ("cluster_id: mycat-cluster-1", 'cluster_id: "c\\nloadZk=false"',
     "mycat_zookeeper.cluster_id"),
    ("{env: STACKHA_AGENT_CREDENTIAL}", '{env: "X Y"}', "zookeeper.agent_auth.env"),
])
def test_each_field_that_is_written_somewhere_is_checked(old, new, field):
    text = _example().replace(old, new, 1)
    assert text != _example(), old
    found = _errors(text)
    assert any(f": {field}" in line for line in found), found


@pytest.mark.parametrize("canary", ["../x", "ng/x", "a\nb", ""])
def test_a_canary_that_is_no_name_is_ignored(canary):
    from types import MappingProxyType

    from stackha.model.bundle import Bundle, ConfigVersion, parse_version, serialise_version

    version = ConfigVersion(3, Bundle.from_contents({"stackha.yaml": b"x: 1\n"}), "now", "t",
                            "m", MappingProxyType({"nginx": canary, "mycat": "mycat1"}))
    parsed, problems = parse_version(serialise_version(version), "v3")
    assert parsed is not None, problems
    assert dict(parsed.canaries) == {"mycat": "mycat1"}
