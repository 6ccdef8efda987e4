"""stackha drill, pure: results as the terminal table, JSON and the PNG timeline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from stackha.lab.drill.analysis import StatusSample, probe_figures
from stackha.lab.drill.badconfig import _canaries
from stackha.lab.drill.probes import Sample
from stackha.lab.drill.report import (
    HEADER,
    format_outage,
    format_served,
    render_json,
    render_table,
    table_rows,
)
from stackha.lab.drill.result import ScenarioResult, Target, Timeline
from stackha.lab.drill.targets import run_targets


def samples(pattern: str, marked_at: int | None = None) -> tuple[Sample, ...]:
    return tuple(Sample(t=i * 0.01 - 0.1, duration=0.002, ok=c == ".", error="" if c == "."
                        else "TimeoutError: timed out", marked=i == marked_at)
                 for i, c in enumerate(pattern))


def ran(name: str = "nginx-master-killed", served: bool | None = None,
        green: float | None = 4.25) -> ScenarioResult:
    web, sql = samples("." * 20 + "x" * 150 + "." * 30), samples("." * 200)
    status = (StatusSample(0.0, True), StatusSample(0.5, True, problems=("a: not reporting",)),
              StatusSample(1.0, False, problems=("status unreadable: x",)),
              StatusSample(2.0, True))
    return ScenarioResult(
        name=name, title="nginx master killed", figures={
            "web": probe_figures(web), "sql": probe_figures(sql),
            "web@nginx1": probe_figures(samples("...", marked_at=1))},
        green_after_heal=green, non_green=1.5, served_rejected=served,
        findings=("killed nginx1", "web MASTER: nginx1 → nginx2 (0.4 s)"),
        events={"inject": 0.0, "heal": 1.2, "green": 2.0},
        timeline=Timeline({"web": web, "sql": sql}, status,
                          {"inject": 0.0, "heal": 1.2, "green": 2.0}))


def test_table_has_one_row_per_scenario_and_the_reason_of_those_not_run():
    results = [ran(), ran("bad-config", served=False), ran("node-cut", green=None),
               ScenarioResult("zk-outage", "all of ZooKeeper", not_run="no ZooKeeper leader")]
    text = render_table(results)
    lines = text.splitlines()
    assert lines[0].split("  ")[0] == "SCENARIO" and all(h in lines[0] for h in HEADER)
    assert lines[1].startswith("nginx-master-killed")
    assert "1.50 s" in lines[1] and "150/200" in lines[1] and "none" in lines[1]
    assert "0/200" in lines[1] and "4.2 s" in lines[1] and lines[1].rstrip().endswith("-")
    assert lines[2].rstrip().endswith("no")
    assert "NOT GREEN" in lines[3]
    assert lines[4].split()[0] == "zk-outage" and "not run: no ZooKeeper leader" in lines[4]
    assert "  - killed nginx1" in text
    assert "  - probe web@nginx1: outage none, failed 0/3, 1 answer(s) with the rejected " \
           "content" in text


def test_columns_line_up():
    lines = render_table([ran(), ran("bad-config-health", served=True)],
                         findings=False).splitlines()
    starts = {line.index(cell) for line in lines[1:]
              for cell in [line.split()[1]]}
    assert len(starts) == 1
    assert lines[2].rstrip().endswith("YES")


def test_a_rejected_config_served_only_by_its_canary_is_told_apart():
    assert format_served(None) == "-"
    assert format_served(True) == format_served(True, canary_only=True) == "YES"
    assert format_served(False) == "no"
    assert format_served(False, canary_only=True) == "canary only"


def test_canaries_are_read_from_what_push_config_printed():
    done = subprocess.CompletedProcess([], 0, stdout="--- diff\npublished version 7 (previous "
                                       "6); canary first: nginx2 (nginx), mycat1 (mycat)\n")
    assert _canaries(done) == {"nginx": "nginx2", "mycat": "mycat1"}
    assert _canaries(subprocess.CompletedProcess([], 0, stdout="published version 7\n")) == {}


def test_outage_formats():
    assert format_outage(None) == "-"
    assert format_outage(probe_figures(samples("...."))) == "none"
    assert format_outage(probe_figures(samples("..x.."))) == "10 ms"
    assert format_outage(probe_figures(samples(".xxxxxxxxxxxx.x."))) == "0.12 s (2x)"
    assert format_outage(probe_figures(samples("..xxxxxxxxxxxx"), end=0.5)) \
        == ">0.58 s (not recovered)"


def test_table_rows_of_a_scenario_not_run():
    assert table_rows([ScenarioResult("a", "b", not_run="why")]) == [("a", "not run: why")]


def test_json_document():
    results = [ran(served=True), ScenarioResult("zk-outage", "t", not_run="why")]
    data = json.loads(render_json(results, {"zk_outage": 60.0}))
    assert data["options"] == {"zk_outage": 60.0}
    first, second = data["scenarios"]
    assert first["ran"] and first["probes"]["web"]["failed"] == 150
    assert first["probes"]["web"]["longest_outage_s"] == pytest.approx(1.5)
    assert first["green_after_heal_s"] == 4.25 and first["served_rejected_config"] is True
    assert first["events"] == {"inject": 0.0, "heal": 1.2, "green": 2.0}
    assert second == {"name": "zk-outage", "title": "t", "ran": False, "not_run": "why",
                      "probes": {}, "green_after_heal_s": None, "non_green_s": 0.0,
                      "served_rejected_config": None, "served_by_canary_only": False,
                      "findings": [], "events": {}, "targets": [],
                      "cpu_load_processes": 0, "client_priority": ""}
    assert data["run_targets"][0] == {"target": "every scenario green after its heal",
                                      "met": True, "detail": "1 scenario(s)"}


def test_timeline_png(tmp_path: Path):
    from stackha.lab.drill.timeline import render_all, render_png

    path = render_png(ran(), tmp_path / "out" / "t.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    written = render_all([ran(), ScenarioResult("x", "y", not_run="z")], tmp_path)
    assert [p.name for p in written] == ["drill-nginx-master-killed.png"]


def test_timeline_needs_a_run():
    from stackha.lab.drill.timeline import render_png

    with pytest.raises(ValueError, match="not run"):
        render_png(ScenarioResult("x", "y", not_run="z"), Path("/nonexistent/x.png"))


def quiet_run(name: str, before: str, after: str, load: int = 2,
              green: float | None = 1.0) -> ScenarioResult:
    """Probes ``before`` the fault (t < 0) and ``after`` it, one every 10 ms."""
    web = tuple(Sample(t=(i - len(before)) * 0.01, duration=0.002, ok=c == ".",
                       error="" if c == "." else "TimeoutError: x")
                for i, c in enumerate(before + after))
    sql = tuple(Sample(t=(i - 50) * 0.01, duration=0.002, ok=True) for i in range(200))
    return ScenarioResult(name=name, title=name, figures={"web": probe_figures(web)},
                          green_after_heal=green, events={"inject": 0.0, "heal": 1.0},
                          timeline=Timeline({"web": web, "sql": sql}, (), {"inject": 0.0}),
                          load=load, targets=(Target("0 failed probes", False, "3 failed"),),
                          client_priority="SCHED_RR 10")


def test_a_loaded_run_is_marked_and_held_to_its_targets():
    results = [quiet_run("zk-outage", "." * 100, "." * 100),
               quiet_run("bad-config", "." * 100, "..x" + "." * 97, green=None)]
    text = render_table(results)
    assert text.startswith("LOADED RUN: 2 busy-loop process(es) at nice 0")
    assert "the drill's clients ran at SCHED_RR 10" in text.splitlines()[0]
    targets = text.split("targets of the loaded run:\n", 1)[1].split("\n\n", 1)[0]
    assert "TARGET MISSED: every scenario green after its heal (not green: bad-config)" \
        in targets
    assert "TARGET MET: zk-outage: 0 failed probes on both VIPs beyond the baseline" in targets
    assert "TARGET MISSED: bad-config: 0 failed probes on both VIPs beyond the baseline (web 1" \
        in targets
    assert "  - TARGET MISSED: 0 failed probes (3 failed)" in text  # a scenario's own


def test_failures_at_the_baselines_rate_are_not_the_faults():
    # One failure per 100 probes before the fault and after it: the load's, not the fault's.
    results = [quiet_run("zk-outage", "x" + "." * 99, "x" + "." * 99)]
    target = run_targets(results)[1]
    assert target.met and "web 0 beyond the baseline (1 failed after the fault, 1 before" \
        in target.detail


def test_an_unloaded_table_says_nothing_of_load():
    text = render_table([ran()])
    assert "LOADED" not in text and "targets of the loaded run" not in text
