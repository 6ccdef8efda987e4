"""stackha drill: one scenario through the runner, with a fake lab, fake probes and a fake
status: the figures come out of what the probes saw, the heal always runs."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stackha.lab.drill.probes import Outcome, Prober
from stackha.lab.drill.result import SQL, WEB
from stackha.lab.drill.runner import DrillRunner
from stackha.lab.drill.scenarios import Context, DrillOptions, NotRun, Scenario

GREEN = {"current_version": 1, "split_brain": {}, "nodes": [
    {"node": "n1", "reporting": True, "applied_version": 1, "health": {"nginx": "ok"},
     "vrrp": {"web": "MASTER"}, "last_error": ""}]}


class FakeLab(SimpleNamespace):
    def sessions_from_here(self) -> dict[str, int]:
        return {}


class Flip(Scenario):
    name, title = "flip", "the web VIP fails while the fault lasts"

    def __init__(self, world: dict, fail_inject: bool = False, not_run: bool = False) -> None:
        self.world, self.fail_inject, self.not_run = world, fail_inject, not_run

    def inject(self, ctx: Context) -> None:
        if self.not_run:
            raise NotRun("nothing to break here")
        self.world["down"] = True
        if self.fail_inject:
            raise RuntimeError("docker said no")
        ctx.note("broke the web VIP")

    def hold(self, ctx: Context) -> None:
        ctx.sleep(0.3)

    def heal(self, ctx: Context) -> None:
        self.world["down"] = False
        self.world["healed"] = True


@pytest.fixture
def world():
    return {"down": False, "healed": False}


@pytest.fixture
def runner(world, monkeypatch):
    options = DrillOptions(baseline=0.2, tail=0.2, settle=0.1, green_stable=0.1,
                           green_timeout=5, max_hold=2)
    lab = FakeLab(spec=SimpleNamespace(zookeeper=SimpleNamespace(session_timeout=0.5)))
    run = DrillRunner(lab, lambda: GREEN, options)

    def probers(origin: float) -> dict[str, Prober]:
        web = Prober(WEB, lambda: Outcome(not world["down"], "refused" if world["down"]
                                          else ""), origin)
        sql = Prober(SQL, lambda: Outcome(True), origin)
        return {WEB: web, SQL: sql}

    monkeypatch.setattr(run, "_probers", probers)
    return run


def test_a_scenario_costs_what_its_probes_saw(runner, world):
    result = runner.run(Flip(world))
    assert result.ran and world["healed"]
    web, sql = result.figures[WEB], result.figures[SQL]
    assert web.failed > 5 and web.recovered and 0.2 < web.longest < 1.5
    assert sql.failed == 0 and sql.sent > 20
    assert result.green_after_heal == 0.0
    assert result.served_rejected is None
    assert result.events["inject"] < result.events["heal"] <= result.events["green"]
    assert result.findings[0] == "broke the web VIP"
    assert any(f.startswith("host load average") for f in result.findings)
    assert result.timeline is not None and result.timeline.status


def test_a_failing_inject_is_reported_and_healed(runner, world):
    result = runner.run(Flip(world, fail_inject=True))
    assert result.ran and world["healed"]
    assert "FAULT STEP FAILED: RuntimeError: docker said no" in result.findings


def test_not_run_before_anything_changed(runner, world):
    result = runner.run(Flip(world, not_run=True))
    assert not result.ran and result.not_run == "nothing to break here"


def test_not_run_when_a_vip_does_not_answer_before(runner, world):
    world["down"] = True
    runner.stop.set()  # do not retry for 30 s
    result = runner.run(Flip(world))
    assert result.not_run is not None and "web VIP does not answer" in result.not_run


def test_status_red_again_after_green_is_reported_and_waited_for(world, monkeypatch):
    import time

    options = DrillOptions(baseline=0.1, tail=0.1, settle=0.1, green_stable=0.1,
                           green_timeout=5, max_hold=2)
    lab = FakeLab(spec=SimpleNamespace(zookeeper=SimpleNamespace(session_timeout=1.0)))
    red = dict(GREEN, nodes=[dict(GREEN["nodes"][0], reporting=False)])

    def read() -> dict:
        # red for a moment some time after the heal, as when a killed agent's old session
        # expires and takes the restarted agent's status node with it
        healed = world.get("healed_at")
        return red if healed and 0.4 < time.monotonic() - healed < 0.7 else GREEN

    run = DrillRunner(lab, read, options)
    monkeypatch.setattr(run, "_probers", lambda origin: {
        WEB: Prober(WEB, lambda: Outcome(True), origin)})

    class Healer(Flip):
        def heal(self, ctx: Context) -> None:
            super().heal(ctx)
            self.world["healed_at"] = time.monotonic()

    result = run.run(Healer(world))
    relapse = [f for f in result.findings if f.startswith("status went red again")]
    assert relapse and "n1: not reporting" in relapse[0]
    assert result.green_after_heal is not None and result.green_after_heal >= 0.6


def test_extra_probes_targets_and_load_reach_the_result(world, monkeypatch):
    import stackha.lab.drill.runner as runner_module

    started: list[int] = []
    stopped: list[int] = []

    class RecordingLoad:
        def __init__(self, processes: int) -> None:
            self.processes = processes

        def __enter__(self):
            started.append(self.processes)
            return self

        def __exit__(self, *exc: object) -> None:
            stopped.append(self.processes)

    monkeypatch.setattr(runner_module, "CpuLoad", RecordingLoad)
    options = DrillOptions(baseline=0.1, tail=0.1, settle=0.1, green_stable=0.1,
                           green_timeout=5, max_hold=2, load=3)
    lab = FakeLab(spec=SimpleNamespace(zookeeper=SimpleNamespace(session_timeout=0.2)))
    run = DrillRunner(lab, lambda: GREEN, options)
    monkeypatch.setattr(run, "_probers", lambda origin: {
        WEB: Prober(WEB, lambda: Outcome(True), origin)})

    class Promising(Flip):
        def probes(self, lab, options):
            return {"web-keepalive": lambda: Outcome(True)}

        def assess(self, ctx, series):
            ctx.target("0 failed keep-alive requests", True, "0/10")

    result = run.run(Promising(world))
    assert started == [3] and stopped == [3]
    assert result.load == 3 and result.figures["web-keepalive"].sent > 5
    assert [t.line() for t in result.targets] == [
        "TARGET MET: 0 failed keep-alive requests (0/10)"]
