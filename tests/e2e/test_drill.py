"""`stackha drill` against the compose lab: four short scenarios, their figures sane.

The scenarios chosen restart no agent container, so they are not exposed to keepalived
refusing to start after a container restart (a stale pid file: see the drill's report).
Traffic goes only to the lab's private compose network (10.77.0.0/24 on this machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import Lab, lab_ready, stackha

pytestmark = pytest.mark.e2e


def test_drill_four_short_scenarios(lab: Lab, tmp_path: Path):
    done = stackha("drill", "--scenario", "nginx-stopped", "--scenario", "zk-outage",
                   "--zk-outage", "5", "--scenario", "bad-config",
                   "--scenario", "bad-config-health", "--json",
                   "--png-dir", str(tmp_path), timeout=900, check=False)
    assert done.returncode == 0, f"stackha drill exited {done.returncode}:\n{done.stdout}\n" \
                                 f"{done.stderr[-3000:]}"
    doc = json.loads(done.stdout)
    assert doc["options"]["zk_outage"] == 5.0
    by_name = {s["name"]: s for s in doc["scenarios"]}
    assert list(by_name) == ["nginx-stopped", "zk-outage", "bad-config", "bad-config-health"]
    for scenario in by_name.values():
        assert scenario["ran"], scenario["not_run"]
        for probe in ("web", "sql"):
            figures = scenario["probes"][probe]
            assert figures["sent"] > 100, (scenario["name"], probe, figures)
            assert 0 <= figures["failed"] < figures["sent"]
            assert figures["recovered"], (scenario["name"], probe, figures["outages"])
            assert 0 <= figures["longest_outage_s"] < 15
        assert scenario["green_after_heal_s"] is not None
        assert scenario["events"]["inject"] < scenario["events"]["heal"]
        assert (tmp_path / f"drill-{scenario['name']}.png").read_bytes()[:4] == b"\x89PNG"

    stopped = by_name["nginx-stopped"]
    assert stopped["served_rejected_config"] is None
    assert any(f.startswith("nginx -s stop on") for f in stopped["findings"])
    # the health check has to notice first: the web VIP is gone for a moment
    assert stopped["probes"]["web"]["failed"] > 0

    zk = by_name["zk-outage"]
    assert any("status unreadable" in f for f in zk["findings"])

    bad = by_name["bad-config"]
    assert bad["served_rejected_config"] is False
    assert any(f.startswith("coordinator refused") for f in bad["findings"])
    assert any("rejected at validate" in f for f in bad["findings"])
    for node in ("web@nginx1", "web@nginx2"):
        assert bad["probes"][node]["marked"] == 0

    # Valid but sick once loaded: only its canary (holding no VIP) loads it, then rolls back;
    # the other node refuses it behind the canary and clients never see it.
    sick = by_name["bad-config-health"]
    canary = next(f.rsplit("canary ", 1)[1] for f in sick["findings"]
                  if f.startswith("published version") and "canary" in f)
    other = "nginx1" if canary == "nginx2" else "nginx2"
    assert sick["served_rejected_config"] is False and sick["served_by_canary_only"] is True
    assert sick["probes"]["web"]["marked"] == 0
    assert sick["probes"][f"web@{other}"]["marked"] == 0
    assert sick["probes"][f"web@{canary}"]["marked"] > 0
    assert lab_ready()


def test_drill_list_and_unknown_scenario(lab: Lab):
    done = stackha("drill", "--scenario", "no-such-thing", check=False)
    assert done.returncode == 1 and "unknown scenario no-such-thing" in done.stderr
    listing = stackha("drill", "--list").stdout
    assert "nginx-master-killed" in listing and "node-cut" in listing
