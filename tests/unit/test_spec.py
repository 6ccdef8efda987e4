"""The spec parser: the example is valid, and each kind of mistake is named precisely."""

from __future__ import annotations

import pytest

from stackha.model.problems import errors, warnings
from stackha.model.spec import DEFAULT_ADVERT_INT_V3, HealthCheck, parse_spec
from tests.conftest import EXAMPLE_CONFIGS

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def test_example_spec_is_valid():
    spec, problems = parse_spec(EXAMPLE, "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    assert not errors(problems)
    assert {g.name for g in spec.vrrp_groups} == {"web", "mycat"}
    web = next(g for g in spec.vrrp_groups if g.name == "web")
    assert web.virtual_router_id == 51 and web.advert_int == 0.03 and web.version == 3
    assert [m.node for m in web.members] == ["nginx1", "nginx2"]
    assert spec.lvs_services[0].realservers == ("mycat1", "mycat2", "mycat3")
    assert spec.zookeeper.coordinator_auth.env == "STACKHA_COORDINATOR_CREDENTIAL"


CASES = [
    ("syntax", ("vrrp_groups:\n  - name: web", "vrrp_groups:\n  - name: [web"),
     "YAML syntax error"),
    ("unknown-key", ("  chroot: /stackha", "  chroot: /stackha\n  chroott: /x"),
     "zookeeper.chroott: unknown key"),
    ("wrong-type", ("virtual_router_id: 51", "virtual_router_id: fifty"),
     "vrrp_groups[0].virtual_router_id: must be integer, got string"),
    ("vrid-range", ("virtual_router_id: 51", "virtual_router_id: 256"),
     "virtual_router_id: must be between 1 and 255"),
    ("duplicate-vrid", ("virtual_router_id: 52", "virtual_router_id: 51\n    vrrp_strict: false"),
     "virtual_router_id 51 is already used by group 'web' on the same network segment"),
    ("duplicate-vip", ("vips: [10.77.0.200/24]", "vips: [10.77.0.100/24]"),
     "VIP 10.77.0.100 is already claimed by group 'web'"),
    ("priority-range", ("{nginx1: 150, nginx2: 100}", "{nginx1: 255, nginx2: 100}"),
     "priority 255 outside 1..254"),
    ("priority-zero", ("{nginx1: 150, nginx2: 100}", "{nginx1: 0, nginx2: 100}"),
     "priority 0 outside 1..254"),
    ("master-nopreempt", ("{director1: 150, director2: 100}",
                          "{director1: {priority: 150, state: MASTER}, director2: 100}"),
     "state MASTER cannot be combined with preempt: false"),
    ("unknown-member", ("{nginx1: 150, nginx2: 100}", "{nginx1: 150, nginx9: 100}"),
     "member 'nginx9' is not a node of the spec"),
    ("bad-scheduler", ("scheduler: sh", "scheduler: fastest"), "unknown scheduler 'fastest'"),
    ("bad-role", ("roles: [nginx]}", "roles: [nginks]}"), "unknown role 'nginks'"),
    ("bad-address", ("address: 10.77.0.11/24", "address: 10.77.0.311/24"),
     "'10.77.0.311/24' is not an IPv4 address"),
    ("missing-key", ("cluster: demo\n", ""), "missing required key 'cluster'"),
    ("duplicate-key", ("cluster: demo\n", "cluster: demo\ncluster: other\n"), "duplicate key"),
    ("unknown-realserver", ("realservers: [mycat1, mycat2, mycat3]",
                            "realservers: [mycat1, mycat2, mycat7]"),
     "realserver 'mycat7' is not a node of the spec"),
]


@pytest.mark.parametrize("old_new,expected", [(c[1], c[2]) for c in CASES],
                         ids=[c[0] for c in CASES])
def test_invalid_spec_is_rejected_with_its_reason(old_new, expected):
    old, new = old_new
    assert old in EXAMPLE
    spec, problems = parse_spec(EXAMPLE.replace(old, new, 1), "configs/stackha.yaml")
    assert spec is None
    messages = [str(p) for p in errors(problems)]
    assert any(expected in m for m in messages), messages
    assert all(m.startswith("configs/stackha.yaml: line ") for m in messages), messages


def test_errors_name_the_line():
    text = EXAMPLE.replace("virtual_router_id: 51", "virtual_router_id: 0")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "virtual_router_id: 0" in t)
    _, problems = parse_spec(text, "s.yaml")
    assert any(p.where.startswith(f"line {line}: ") for p in problems), [str(p) for p in problems]


def test_all_errors_are_reported_at_once():
    text = EXAMPLE.replace("virtual_router_id: 51", "virtual_router_id: 0").replace(
        "scheduler: sh", "scheduler: nope")
    _, problems = parse_spec(text, "s.yaml")
    assert len(errors(problems)) == 2, [str(p) for p in problems]


def test_vip_outside_member_subnet_is_a_warning_only():
    text = EXAMPLE.replace("vips: [10.77.0.100/24]", "vips: [10.78.0.100/24]")
    spec, problems = parse_spec(text, "s.yaml")
    assert spec is not None
    assert any("outside the subnet" in str(p) for p in warnings(problems))
    assert not errors(problems)


def test_timer_defaults_when_the_spec_gives_none():
    # The failover targets of bench/failover.py are met with these defaults (see spec.py).
    text = EXAMPLE.replace("    advert_int: 0.03\n", "")
    spec, problems = parse_spec(text)
    assert spec is not None, [str(p) for p in problems]
    assert {g.advert_int for g in spec.vrrp_groups} == {DEFAULT_ADVERT_INT_V3} == {0.03}
    classic, _ = parse_spec(text.replace("    checks: [nginx]\n",
                                         "    checks: [nginx]\n    version: 2\n"))
    assert classic is not None
    assert next(g for g in classic.vrrp_groups if g.name == "web").advert_int == 1.0
    check = HealthCheck("nginx")
    assert (check.interval, check.timeout, check.fall, check.rise) == (1, 1.0, 2, 2)


def test_a_spec_without_credentials_is_warned_about_open_acls():
    text = "\n".join(line for line in EXAMPLE.splitlines() if "_auth:" not in line)
    spec, problems = parse_spec(text, "s.yaml")
    assert spec is not None and spec.zookeeper.coordinator_auth is None
    assert any("open ACLs" in str(p) for p in warnings(problems)), [str(p) for p in problems]
    _, with_auth = parse_spec(EXAMPLE, "s.yaml")
    assert not any("open ACLs" in str(p) for p in with_auth)


def test_cross_section_errors_come_with_field_errors_in_one_run():
    # A bad scheduler, a VRID reused on the segment, a member that is no node, and a broken
    # node entry before them all: every one is reported, each at its own line.
    text = (EXAMPLE.replace("scheduler: sh", "scheduler: nope")
            .replace("virtual_router_id: 52", "virtual_router_id: 51")
            .replace("nginx2: 100}", "nginx9: 100}")
            .replace("{name: nginx2, address: 10.77.0.12/24,", "{name: nginx2, address: x,"))
    spec, problems = parse_spec(text, "s.yaml")
    assert spec is None
    found = [str(p) for p in errors(problems)]
    for expected in ("lvs_services[0].scheduler", "virtual_router_id 51 is already used",
                     "member 'nginx9' is not a node", "nodes[1].address"):
        assert any(expected in line for line in found), (expected, found)
    duplicate = next(line for line in found if "already used" in line)
    assert f"line {EXAMPLE.splitlines().index('    virtual_router_id: 52') + 1}:" in duplicate


def test_empty_vips_is_an_error_even_after_other_problems():
    """Found in review: `vips: []` passed once any earlier problem (even a warning) existed."""
    text = EXAMPLE.replace("virtual_router_id: 51", "virtual_router_id: fifty", 1)
    text = text.replace("vips: [10.77.0.200/24]", "vips: []", 1)
    _, problems = parse_spec(text, "stackha.yaml")
    lines = [str(p) for p in errors(problems)]
    assert any("virtual_router_id: must be integer" in line for line in lines), lines
    assert any("vrrp_groups[1].vips: at least one VIP is needed" in line for line in lines), lines


# ----------------------------------------------------------------------------------------------
# mycat.version: which MyCat release validation follows


def _with_mycat(section: str) -> str:
    return (EXAMPLE_CONFIGS / "stackha.yaml").read_text() + "\n" + section + "\n"


def test_mycat_version_defaults_to_1_6_6_1():
    spec, problems = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text())
    assert spec is not None, problems
    assert spec.mycat.version == "1.6.6.1"


def test_mycat_version_1_6_7_is_read():
    spec, problems = parse_spec(_with_mycat('mycat: {version: "1.6.7"}'))
    assert spec is not None, problems
    assert spec.mycat.version == "1.6.7"


@pytest.mark.parametrize("value", ["1.6", '"1.5.1"', "{a: 1}"])
def test_unknown_mycat_version_is_an_error(value: str):
    spec, problems = parse_spec(_with_mycat(f"mycat: {{version: {value}}}"))
    assert spec is None
    assert any(p.where.endswith("mycat.version") and "not a MyCat release" in p.reason
               for p in problems), problems
