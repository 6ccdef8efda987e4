"""Every renderer refuses a value it cannot write safely, even one the parser never let
through (the spec is built here with hostile values put straight into the value objects)."""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from pathlib import Path

import pytest

from stackha.cli.main import main
from stackha.keepalived.render import RenderOptions, UnsafeValue, render_keepalived
from stackha.lab.compose.backend import LabError
from stackha.lab.compose.render import render_compose
from stackha.lvs.nftrender import render_ruleset
from stackha.model.spec import HealthCheck, StackSpec, parse_spec
from stackha.mycat.myid import render_myid
from stackha.mycat.zklayout import build_layout
from testkit import EXAMPLE_CONFIGS
from tests.unit.test_grammar import INJECTED_URL

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def _spec() -> StackSpec:
    spec, problems = parse_spec(EXAMPLE)
    assert spec is not None, problems
    return spec


def _with_node_name(spec: StackSpec, old: str, new: str) -> StackSpec:
    nodes = tuple(replace(n, name=new) if n.name == old else n for n in spec.nodes)
    groups = tuple(replace(g, members=tuple(replace(m, node=new) if m.node == old else m
                                            for m in g.members)) for g in spec.vrrp_groups)
    return replace(spec, nodes=nodes, vrrp_groups=groups)


def test_keepalived_refuses_the_injected_url():
    spec = _spec()
    checks = tuple(replace(c, url=INJECTED_URL) if c.name == "nginx" else c
                   for c in spec.health_checks)
    with pytest.raises(UnsafeValue, match=r"health_checks\.nginx\.url"):
        render_keepalived(replace(spec, health_checks=checks), "nginx1")


@pytest.mark.parametrize("bad", ['x"y', "x\ny", "x#y", "x!y", "x{y", "x}y", "x y", "x$y",
                                 "x\\y"])
def test_keepalived_refuses_every_special_character(bad):
    spec = _spec()
    checks = (HealthCheck("nginx", url=f"http://127.0.0.1/{bad}"),)
    with pytest.raises(UnsafeValue):
        render_keepalived(replace(spec, health_checks=checks), "nginx1")
    groups = tuple(replace(g, interface=bad) for g in spec.vrrp_groups)
    with pytest.raises(UnsafeValue):
        render_keepalived(replace(spec, vrrp_groups=groups), "nginx1")
    groups = tuple(replace(g, name=bad) for g in spec.vrrp_groups)
    with pytest.raises(UnsafeValue):
        render_keepalived(replace(spec, vrrp_groups=groups), "nginx1")
    with pytest.raises(UnsafeValue):
        render_keepalived(_with_node_name(spec, "nginx1", bad or "x y"), bad or "x y")
    with pytest.raises(UnsafeValue):
        render_keepalived(spec, "nginx1", RenderOptions(stackha_command=f"/usr/bin/{bad}"))


def test_keepalived_still_renders_the_example():
    assert "vrrp_instance web {" in render_keepalived(_spec(), "nginx1")


@pytest.mark.parametrize("name", ["mycat1\nloadZk=false", "mycat1\rx", "myc\u00e4t"])
def test_myid_refuses_a_name_that_would_add_lines(name):
    spec = _with_node_name(_spec(), "mycat1", name)
    with pytest.raises(ValueError, match=r"myid\.properties"):
        render_myid(spec, name)


def test_myid_of_the_example_is_unchanged():
    text = render_myid(_spec(), "mycat1").decode()
    assert "myid=mycat1\n" in text and text.count("\n") == 8


@pytest.mark.parametrize("device", ["eth0\n", "eth0\nadd table x", 'eth0"', "eth 0", ""])
def test_nftables_refuses_a_device_that_is_no_single_word(device):
    with pytest.raises(ValueError, match="interface"):
        render_ruleset(device, "02:00:00:00:00:21", [], {})


def test_zklayout_refuses_a_myid_that_is_no_name():
    files = {f"mycat/{p.name}": p.read_bytes() for p in (EXAMPLE_CONFIGS / "mycat").iterdir()}
    layout, problems = build_layout(files, ("mycat1", "../x"))
    assert layout is None and any("'../x'" in str(p) for p in problems)
    layout, _ = build_layout(files, ("mycat1", "mycat2"))
    assert layout is not None


def test_compose_refuses_a_node_name_compose_would_substitute():
    from stackha.lab.compose.backend import Backend

    spec = _with_node_name(_spec(), "mycat3", "${HOME}")
    with pytest.raises(LabError, match="HOME"):
        render_compose(spec, Backend(ipaddress.IPv4Address("10.77.0.40"), 3306, "app", "pw",
                                     ("db1",)))


# --- render keepalived --all --out: nothing outside --out, nothing half-written ------------

def _configs_with(tmp_path: Path, old: str, new: str) -> Path:
    configs = tmp_path / "configs"
    configs.mkdir()
    text = EXAMPLE.replace(old, new)
    assert text != EXAMPLE
    (configs / "stackha.yaml").write_text(text)
    return configs


@pytest.mark.parametrize("name", ["../escaped", "..", "ng/x"])
def test_render_all_cannot_write_outside_out(tmp_path, capsys, name):
    configs = _configs_with(tmp_path, "nginx2", name)
    out = tmp_path / "deep" / "out"
    code = main(["render", "keepalived", "--all", "--out", str(out), "--configs", str(configs)])
    assert code != 0
    written = [p for p in tmp_path.rglob("*.conf")]
    assert written == [], f"written despite the refusal: {written}"
    assert "must be 1-63" in capsys.readouterr().err


def test_render_all_does_not_follow_a_symlink_in_out(tmp_path):
    configs = _configs_with(tmp_path, "cluster: demo", "cluster: demo2")
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    (out / "nginx1.conf").symlink_to(victim)
    code = main(["render", "keepalived", "--all", "--out", str(out), "--configs", str(configs)])
    assert code != 0
    assert victim.read_text() == "keep me\n"


def test_render_all_writes_every_vrrp_node(tmp_path):
    configs = _configs_with(tmp_path, "cluster: demo", "cluster: demo2")
    out = tmp_path / "out"
    assert main(["render", "keepalived", "--all", "--out", str(out),
                 "--configs", str(configs)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "director1.conf", "director2.conf", "nginx1.conf", "nginx2.conf"]
