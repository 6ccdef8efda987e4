"""stackha drill: agent-restarted and switchover step by step against a fake lab, a fake
status and probes that answer as the fake world says: the targets come out of what the
probes and the nodes showed, and a missing switchover is "not run", not a crash."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest

from stackha.lab.drill.agentops import (
    KEEPALIVE,
    AgentRestarted,
    DirectorAgentRestarted,
    Switchover,
)
from stackha.lab.drill.analysis import StatusSample
from stackha.lab.drill.probes import Outcome
from stackha.lab.drill.result import SQL, WEB
from stackha.lab.drill.scenarios import SCENARIOS, Context, DrillOptions, NotRun
from stackha.model.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = DrillOptions(settle=0.2, max_hold=3.0)


class World:
    """Who is MASTER, the agents' and keepalived's pids, and what clients get."""

    def __init__(self, spec, restart_moves_vip: bool = False,
                 restart_restarts_keepalived: bool = False) -> None:
        self.spec = spec
        self.masters = {"web": "nginx1", "mycat": "director1"}
        self.agents = {n.name: 100 for n in spec.nodes}
        self.keepalived = {n.name: 50 for n in spec.nodes}
        self.restart_moves_vip = restart_moves_vip
        self.restart_restarts_keepalived = restart_restarts_keepalived
        self.failing_until = 0.0
        self.signalled: list[tuple[str, int]] = []
        self.started: list[str] = []
        self.lock = threading.Lock()

    # what the probes see
    def answer(self, kind: str = "") -> Outcome:
        if time.monotonic() < self.failing_until:
            return Outcome(False, f"{kind}ConnectionResetError: reset".strip())
        return Outcome(True)


class FakeLab:
    def __init__(self, world: World) -> None:
        self.world, self.spec = world, world.spec
        self.web_group, self.sql_group = "web", "mycat"
        self.web_vip, self.sql_vip = "10.77.0.100", ("10.77.0.200", 8066)

    def agent_pid(self, node: str) -> int | None:
        return self.world.agents[node]

    def signal_agent(self, node: str, pid: int) -> None:
        world = self.world
        world.signalled.append((node, pid))
        world.agents[node] = None

        def comes_back() -> None:
            time.sleep(0.2)
            world.agents[node] = pid + 1
            if world.restart_restarts_keepalived:
                world.keepalived[node] += 1
            if world.restart_moves_vip:
                group = next(g for g, m in world.masters.items() if m == node)
                world.masters[group] = {"nginx1": "nginx2",
                                        "director1": "director2"}[node]
                world.failing_until = time.monotonic() + 0.1
        threading.Thread(target=comes_back, daemon=True).start()

    def keepalived_pid(self, node: str) -> int | None:
        return self.world.keepalived[node]

    def vip_holders(self, nodes: list[str], vip: str) -> list[str]:
        return [n for n in nodes if n in self.world.masters.values()]

    def start(self, name: str) -> None:
        self.world.started.append(name)


class FakeWatch:
    def __init__(self, world: World, origin: float) -> None:
        self.world, self.origin = world, origin
        self.taken: list[StatusSample] = []

    def read(self) -> StatusSample:
        sample = StatusSample(time.monotonic() - self.origin, True,
                              masters={g: (m,) for g, m in self.world.masters.items()})
        self.taken.append(sample)
        return sample

    def latest(self) -> StatusSample:
        return self.read()

    def wait_for(self, predicate, timeout: float) -> StatusSample | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(sample := self.read()):
                return sample
            time.sleep(0.02)
        return None


@pytest.fixture
def spec():
    parsed, problems = parse_spec((ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert parsed is not None, problems
    return parsed


def run_steps(scenario, world: World) -> Context:
    """inject, hold, heal, assess as the runner calls them, with probes running throughout."""
    lab = FakeLab(world)
    origin = time.monotonic()
    watch = FakeWatch(world, origin)
    ctx = Context(lab, watch, {}, origin, OPTIONS)  # type: ignore[arg-type]
    probes = {WEB: lambda: world.answer("fresh "), SQL: lambda: world.answer("")}
    probes.update({name: (lambda: world.answer("keep-alive "))
                   for name in scenario.probes(lab, OPTIONS)})
    for name, probe in probes.items():
        ctx.add_prober(name, probe)
    time.sleep(0.1)
    ctx.events["inject"] = ctx.now()
    try:
        scenario.inject(ctx)
        scenario.hold(ctx)
    finally:
        ctx.events["heal"] = ctx.now()
        scenario.heal(ctx)
        for prober in ctx.probers.values():
            prober.stop()
    scenario.assess(ctx, watch.taken)
    return ctx


def targets(ctx: Context) -> dict[str, bool]:
    return {t.text: t.met for t in ctx.targets}


def test_the_scenarios_are_listed():
    names = [s.name for s in SCENARIOS]
    assert {"agent-restarted", "agent-restarted-director", "switchover"} <= set(names)


def test_agent_restarted_signals_only_the_masters_agent_and_meets_its_targets(spec):
    world = World(spec)
    ctx = run_steps(AgentRestarted(), world)
    assert world.signalled == [("nginx1", 100)]
    assert world.started == []  # the agent came back by itself: no container started
    assert ctx.state["restarted"] > 0.1 and ctx.state["holders"] == ["nginx1"]
    assert targets(ctx) == {"0 failed probes": True, "no VIP move": True,
                            "keepalived adopted, not restarted": True}
    assert KEEPALIVE in ctx.probers
    assert any(f.startswith("new agent (pid 101) running") for f in ctx.findings)


def test_agent_restarted_director_works_on_the_mycat_group(spec):
    world = World(spec)
    ctx = run_steps(DirectorAgentRestarted(), world)
    assert world.signalled == [("director1", 100)]
    assert all(targets(ctx).values()) and KEEPALIVE not in ctx.probers


def test_a_restart_that_moves_the_vip_misses_its_targets(spec):
    world = World(spec, restart_moves_vip=True, restart_restarts_keepalived=True)
    ctx = run_steps(AgentRestarted(), world)
    met = targets(ctx)
    assert met == {"0 failed probes": False, "no VIP move": False,
                   "keepalived adopted, not restarted": False}
    moved = next(t for t in ctx.targets if t.text == "no VIP move")
    assert "nginx2" in moved.detail


def test_an_agent_that_does_not_come_back_gets_its_container_started(spec, monkeypatch):
    world = World(spec)
    lab_signal = FakeLab.signal_agent
    monkeypatch.setattr(FakeLab, "signal_agent",
                        lambda self, node, pid: self.world.agents.__setitem__(node, None))
    ctx = run_steps(AgentRestarted(), world)
    monkeypatch.setattr(FakeLab, "signal_agent", lab_signal)
    assert world.started == ["nginx1"]
    assert any(f.startswith("no new agent on nginx1") for f in ctx.findings)


def test_no_agent_running_is_not_run(spec):
    world = World(spec)
    world.agents["nginx1"] = None
    with pytest.raises(NotRun, match="no running agent found on nginx1"):
        run_steps(AgentRestarted(), world)


# switchover --------------------------------------------------------------------------------

def control_module(world: World, calls: list, refuse: str | None = None,
                   resets: bool = False) -> ModuleType:
    module = ModuleType("stackha.coordinator.control")

    def request_switchover(store, spec, group, to, wait=30.0):
        calls.append((store, group, to, wait))
        if refuse:
            raise RuntimeError(refuse)
        world.masters[group] = to
        if resets:
            world.failing_until = time.monotonic() + 0.05
    module.request_switchover = request_switchover  # type: ignore[attr-defined]
    return module


class Store:
    closed = False

    def close(self) -> None:
        self.closed = True


def test_switchover_moves_the_vip_to_the_backup_and_back(spec, monkeypatch):
    world, calls, store = World(spec), [], Store()
    monkeypatch.setitem(sys.modules, "stackha.coordinator.control",
                        control_module(world, calls))
    ctx = run_steps(Switchover(open_store=lambda ctx: store), world)
    assert [(group, to, wait) for _, group, to, wait in calls] == [
        ("web", "nginx2", 30.0), ("web", "nginx1", 30.0)]
    assert calls[0][0] is store and store.closed
    assert world.masters["web"] == "nginx1"
    assert targets(ctx) == {"0 failed requests on keep-alive connections": True,
                            "at most 1 failed fresh connection per move": True}
    assert ctx.events["inject"] < ctx.events["back"]


def test_switchover_that_resets_connections_misses_the_keepalive_target(spec, monkeypatch):
    world, calls = World(spec), []
    monkeypatch.setitem(sys.modules, "stackha.coordinator.control",
                        control_module(world, calls, resets=True))
    ctx = run_steps(Switchover(open_store=lambda ctx: Store()), world)
    met = targets(ctx)
    assert met["0 failed requests on keep-alive connections"] is False
    assert met["at most 1 failed fresh connection per move"] is False


def test_a_refused_switchover_is_not_run_and_closes_its_store(spec, monkeypatch):
    world, calls, store = World(spec), [], Store()
    monkeypatch.setitem(sys.modules, "stackha.coordinator.control",
                        control_module(world, calls, refuse="nginx2 is not healthy"))
    with pytest.raises(NotRun, match="switchover to nginx2 refused: nginx2 is not healthy"):
        run_steps(Switchover(open_store=lambda ctx: store), world)
    assert store.closed and world.masters["web"] == "nginx1"


def test_switchover_picks_the_highest_priority_backup(spec):
    group = next(g for g in spec.vrrp_groups if g.name == "web")
    assert Switchover.backup(group, "nginx1") == "nginx2"
    assert Switchover.backup(group, "nginx2") == "nginx1"


def test_switchover_needs_two_members():
    lab = SimpleNamespace(web_group=None, spec=SimpleNamespace(vrrp_groups=()))
    assert Switchover().needs(lab) == "no VRRP group of nginx nodes in the spec"  # type: ignore[arg-type]
