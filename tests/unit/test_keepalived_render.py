"""keepalived.conf timers and scheduling: what holds issue 4's failover targets."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from stackha.keepalived.render import RenderOptions, render_keepalived
from stackha.model.spec import parse_spec
from tests.conftest import EXAMPLE_CONFIGS

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def _spec(text: str = EXAMPLE):
    spec, problems = parse_spec(text)
    assert spec is not None, [str(p) for p in problems]
    return spec


def test_default_adverts_and_realtime_vrrp_process():
    conf = render_keepalived(_spec(EXAMPLE.replace("    advert_int: 0.03\n", "")), "nginx1")
    assert "    advert_int 0.03\n" in conf
    for line in ("vrrp_rt_priority 50", "vrrp_rlimit_rttime 1000000", "vrrp_no_swap"):
        assert f"    {line}\n" in conf
    assert "version 2" not in conf


def test_classic_timers_render_version_2():
    text = EXAMPLE.replace("    checks: [nginx]\n", "    checks: [nginx]\n    version: 2\n")
    conf = render_keepalived(_spec(text.replace("    advert_int: 0.03\n", "", 1)), "nginx1")
    web = conf[conf.index("vrrp_instance web"):]
    assert "    advert_int 1\n" in web and "    version 2\n" in web


@pytest.mark.parametrize(("timeout", "rendered"), [(0.5, 10), (1.0, 10), (1.5, 11), (2.0, 11)])
def test_script_timeout_leaves_room_for_a_slow_start(timeout, rendered):
    spec = _spec()
    checks = tuple(replace(c, timeout=timeout) if c.name == "nginx" else c
                   for c in spec.health_checks)
    conf = render_keepalived(replace(spec, health_checks=checks), "nginx1",
                             RenderOptions(stackha_command="/x/stackha"))
    block = conf[conf.index("vrrp_script chk_nginx"):]
    assert re.search(r"^    timeout (\d+)$", block, re.MULTILINE).group(1) == str(rendered)
    assert f"--timeout {timeout:g}" in block



def test_render_prints_exactly_what_the_agent_writes(tmp_path, capsys):
    """Found in review: `stackha render keepalived` built its own render options (another
    FIFO path, another check command) and printed something the agent never writes."""
    from stackha.agent.vrrp import keepalived_conf
    from stackha.cli.agent import agent_args, vrrp_settings
    from stackha.cli.main import main

    shared = ["--configs", str(EXAMPLE_CONFIGS), "--state-dir", str(tmp_path),
              "--stackha-command", "/opt/stackha/bin/stackha", "--vrrp-interface", "eth9"]
    assert main(["render", "keepalived", "--node", "nginx1", *shared]) == 0
    printed = capsys.readouterr().out
    agent = agent_args(["--node", "nginx1", "--keepalived-dir", str(tmp_path / "keepalived"),
                        *shared])
    spec, _ = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text(), "stackha.yaml")
    assert spec is not None
    assert printed == keepalived_conf(spec, "nginx1", vrrp_settings(agent, agent.keepalived_dir))
    assert str(tmp_path / "run" / "keepalived.fifo") in printed and "eth9" in printed


def test_render_all_never_follows_a_node_name_out_of_out(tmp_path, capsys):
    """Found in review: `render keepalived --all --out DIR` wrote ../NAME.conf for a node
    named ../NAME."""
    import shutil

    from stackha.cli.main import main

    configs = tmp_path / "configs"
    shutil.copytree(EXAMPLE_CONFIGS, configs)
    spec = configs / "stackha.yaml"
    spec.write_text(spec.read_text().replace("nginx1", "../nginx1"))
    out = tmp_path / "deep" / "out"
    code = main(["render", "keepalived", "--all", "--out", str(out), "--configs", str(configs)])
    assert code != 0
    assert "nginx1" in capsys.readouterr().err
    assert not (tmp_path / "deep" / "nginx1.conf").exists()
    assert sorted(p.name for p in tmp_path.rglob("*.conf")
                  if configs not in p.parents) == []


def test_every_instance_tracks_the_trial_and_yield_files_down_to_priority_one():
    spec = _spec(EXAMPLE.replace("{nginx1: 150, nginx2: 100}", "{nginx1: 150, nginx2: 1}"))
    options = RenderOptions(track_dir="/var/lib/stackha/run")
    first = render_keepalived(spec, "nginx1", options)
    assert 'track_file stackha_trial {\n    file "/var/lib/stackha/run/trial.track"' in first
    assert 'track_file stackha_yield {\n    file "/var/lib/stackha/run/yield.track"\n' \
           "    weight 0\n" in first
    web = first[first.index("vrrp_instance web"):]
    assert "        stackha_trial weight -149\n        stackha_yield\n" in web
    # priority 1 is already the lowest: a weight would take it to 0, which keepalived makes FAULT
    lowest = render_keepalived(spec, "nginx2", options)
    web = lowest[lowest.index("vrrp_instance web"):]
    assert "stackha_trial weight" not in web and "        stackha_yield\n" in web
    assert "track_file" not in render_keepalived(spec, "mycat1", options)
