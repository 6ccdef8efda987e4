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

