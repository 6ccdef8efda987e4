"""keepalived.conf timers and scheduling: what holds issue 4's failover targets."""

from __future__ import annotations

import re
from dataclasses import replace

from stackha.keepalived.render import (
    RenderOptions,
    lower_priority_moves_at_once,
    render_keepalived,
)
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


def test_no_check_process_per_second_only_a_slow_backstop():
    """Issue 16: keepalived forked a Python `stackha check nginx` every second. The agent
    checks now; keepalived tracks its file and runs only a slow, small backstop probe."""
    conf = render_keepalived(_spec(), "nginx1", RenderOptions(stackha_command="/x/stackha"))
    scripts = re.findall(r"^vrrp_script (\S+) \{(.*?)^\}", conf, re.MULTILINE | re.DOTALL)
    assert [name for name, _ in scripts] == ["chk_nginx_backstop"]
    body = scripts[0][1]
    assert int(re.search(r"interval (\d+)", body).group(1)) >= 3
    assert '"/usr/bin/curl -fsS -o /dev/null --max-time 2 http://127.0.0.1/healthz"' in body
    assert "stackha check" not in body
    assert 'file "/run/stackha/chk_nginx.track"' in conf


def test_backstop_without_curl_runs_stackha_check():
    conf = render_keepalived(_spec(), "nginx1",
                             RenderOptions(stackha_command="/x/stackha", curl=None))
    assert 'script "/x/stackha check nginx --timeout 2 --url http://127.0.0.1/healthz"' in conf


def test_a_failed_check_lowers_priority_below_every_healthy_member_not_fault():
    """Fail open: weight 0 would send the node to FAULT, and every member failing at once
    (a starved checker) would leave the VIP without a holder."""
    conf = render_keepalived(_spec(), "nginx1")
    web = conf[conf.index("vrrp_instance web"):]
    # members 150 and 100: a failed nginx1 drops to 99, under a healthy nginx2
    assert "        stackha_chk_nginx weight -51\n" in web
    assert "        chk_nginx_backstop weight -51\n" in web
    tracker = conf[conf.index("track_file stackha_chk_nginx {"):]
    assert "    weight 0" not in tracker.split("}")[0]


def test_an_explicit_weight_sets_the_drop():
    text = EXAMPLE.replace('interval: 0.1, timeout: 0.5', 'interval: 0.1, weight: -80, '
                           'timeout: 0.5')
    conf = render_keepalived(_spec(text), "nginx2")
    assert "        stackha_chk_nginx weight -80\n" in conf


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


def test_where_a_lower_priority_alone_does_not_move_the_vip_quickly():
    """RFC 5798: without preempt a backup accepts a lower master; with a delay or slow
    adverts it takes over late (3 x advert_int). There the agent uses FAULT as well."""
    web = next(g for g in _spec().vrrp_groups if g.name == "web")
    assert lower_priority_moves_at_once(web)  # preempt, adverts every 0.03 s
    assert not lower_priority_moves_at_once(replace(web, preempt=False))
    assert not lower_priority_moves_at_once(replace(web, preempt_delay=2.0))
    assert not lower_priority_moves_at_once(replace(web, advert_int=1.0, version=2))
