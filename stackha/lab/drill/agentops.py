"""Planned operations an operator runs on a healthy cluster, measured like the faults: an
agent restarted in place (an upgrade, `systemctl restart stackha-agent`) must move nothing,
and a switchover must move the VIP without costing clients a request (issue #18)."""

from __future__ import annotations

import logging
from typing import Any

from stackha.lab.drill.analysis import (
    StatusSample,
    describe_masters,
    failed_between,
    master_history,
    other_masters,
)
from stackha.lab.drill.lab import DrillLab, LabProblem
from stackha.lab.drill.probes import FRESH_ERROR, KEEPALIVE_ERROR, KeepAliveWebProbe, Probe
from stackha.lab.drill.result import WEB
from stackha.lab.drill.scenario import Context, DrillOptions, NotRun, Scenario
from stackha.model.spec import VrrpGroup

log = logging.getLogger(__name__)

KEEPALIVE = "web-keepalive"


def _group(lab: DrillLab, name: str | None) -> VrrpGroup | None:
    return next((g for g in lab.spec.vrrp_groups if g.name == name), None)


def _vip(group: VrrpGroup) -> str:
    return str(group.vips[0].ip)


def _members(group: VrrpGroup) -> list[str]:
    return [m.node for m in group.members]


def _quiet(ctx: Context, since: float) -> bool:
    """Every probe answered every attempt in the last ``settle`` seconds (and after
    ``since``)."""
    start = max(since, ctx.now() - ctx.options.settle)
    if ctx.now() - start < ctx.options.settle:
        return False
    return all(p.recent_ok(start) is True for p in ctx.probers.values())


def _history(ctx: Context, series: list[StatusSample], group: str) -> None:
    inject = ctx.events.get("inject", 0.0)
    history = [(t - inject, m) for t, m in master_history(series, group)]
    if history:
        ctx.note(f"{group} MASTER (s after the start): {describe_masters(history)}")


def _keepalive_probe(lab: DrillLab, options: DrillOptions) -> dict[str, Probe]:
    if not lab.web_vip:
        return {}
    return {KEEPALIVE: KeepAliveWebProbe(lab.web_vip, timeout=options.probe_timeout)}


class _AgentRestarted(Scenario):
    """SIGTERM to the agent process of the group's MASTER, nothing else: the lab's entrypoint
    starts the agent again, which adopts the keepalived the old one left running."""

    role = ""

    def group_name(self, lab: DrillLab) -> str | None:
        raise NotImplementedError

    def needs(self, lab: DrillLab) -> str | None:
        return None if _group(lab, self.group_name(lab)) else \
            f"no VRRP group of {self.role} nodes in the spec"

    def inject(self, ctx: Context) -> None:
        group = self.group_name(ctx.lab)
        victim = ctx.master(group)
        try:
            old = ctx.lab.agent_pid(victim)
        except LabProblem as exc:
            raise NotRun(f"cannot read {victim}'s agent pid: {exc}") from exc
        if old is None:
            raise NotRun(f"no running agent found on {victim}")
        keepalived = ctx.lab.keepalived_pid(victim)
        ctx.lab.signal_agent(victim, old)
        ctx.state.update(victim=victim, group=group, old_pid=old, keepalived=keepalived)
        ctx.note(f"SIGTERM to {victim}'s agent (pid {old}) only; keepalived pid {keepalived}")

    def hold(self, ctx: Context) -> None:
        """Until a new agent runs, status shows the victim MASTER again and every probe has
        been quiet for ``settle`` s; meanwhile who holds the VIP is read from the nodes."""
        lab, state = ctx.lab, ctx.state
        group = _group(lab, state["group"])
        assert group is not None
        vip, members, victim = _vip(group), _members(group), state["victim"]
        inject = ctx.events["inject"]
        holders: set[str] = set()
        while ctx.now() - inject < ctx.options.max_hold:
            holders.update(lab.vip_holders(members, vip))
            if "restarted" not in state:
                pid = lab.agent_pid(victim)
                if pid is not None and pid != state["old_pid"]:
                    state.update(restarted=ctx.now() - inject, new_pid=pid)
            latest = ctx.watch.latest()
            if "restarted" in state and "reporting" not in state and latest is not None \
                    and latest.t - inject > state["restarted"] \
                    and tuple(latest.masters.get(group.name, ())) == (victim,):
                state["reporting"] = latest.t - inject
            if "reporting" in state and _quiet(ctx, inject):
                break
            if ctx.stop is not None and ctx.stop.is_set():
                break
            ctx.sleep(0.2)
        state["holders"] = sorted(holders)
        state["keepalived_after"] = lab.keepalived_pid(victim)
        if "restarted" not in state:
            ctx.note(f"no new agent on {victim} within {ctx.options.max_hold:.0f} s")

    def heal(self, ctx: Context) -> None:
        victim = ctx.state.get("victim")
        if victim is not None and "restarted" not in ctx.state:
            ctx.lab.start(victim)  # an entrypoint that does not restart the agent: the container

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        state, inject = ctx.state, ctx.events["inject"]
        victim, group = state.get("victim"), state.get("group")
        if victim is None or group is None:
            return
        if "restarted" in state:
            ctx.note(f"new agent (pid {state['new_pid']}) running {state['restarted']:.1f} s "
                     "after the SIGTERM" + (f", reporting {victim} MASTER after "
                                            f"{state['reporting']:.1f} s"
                                            if "reporting" in state else ""))
        _history(ctx, series, group)
        failed = {name: (failed_between(p.samples(), inject),
                         sum(1 for s in p.samples() if s.t >= inject))
                  for name, p in ctx.probers.items()}
        ctx.target("0 failed probes", all(f == 0 for f, _ in failed.values()),
                   ", ".join(f"{n} {f}/{sent}" for n, (f, sent) in failed.items()))
        others = other_masters(series, group, victim, since=inject)
        holders = state.get("holders", [])
        moved = bool(others) or holders != [victim]
        detail = (f"status: MASTER {', '.join(others)} besides {victim}; " if others else
                  f"status: no MASTER but {victim}; ")
        detail += f"ip addr: VIP on {', '.join(holders) or 'no node'}"
        ctx.target("no VIP move", not moved, detail)
        before, after = state.get("keepalived"), state.get("keepalived_after")
        ctx.target("keepalived adopted, not restarted", before is not None and before == after,
                   f"keepalived pid {before} before, {after} after")


class AgentRestarted(_AgentRestarted):
    name = "agent-restarted"
    title = "agent process restarted on the nginx master (keepalived adopted, nothing moves)"
    role = "nginx"

    def group_name(self, lab: DrillLab) -> str | None:
        return lab.web_group

    def probes(self, lab: DrillLab, options: DrillOptions) -> dict[str, Probe]:
        return _keepalive_probe(lab, options)


class DirectorAgentRestarted(_AgentRestarted):
    name = "agent-restarted-director"
    title = "agent process restarted on the active director (keepalived adopted)"
    role = "director"

    def group_name(self, lab: DrillLab) -> str | None:
        return lab.sql_group


def _open_coordinator_store(ctx: Context) -> Any:
    from stackha.store.connect import open_store

    return open_store(ctx.lab.spec, ctx.options.zk_override, "coordinator")


class Switchover(Scenario):
    """`stackha switchover` twice: the web VIP to the backup, then back to where it was."""

    name = "switchover"
    title = "planned web VIP move to the backup and back (stackha switchover)"
    wait = 30.0

    def __init__(self, open_store: Any = _open_coordinator_store) -> None:
        self.open_store = open_store

    def needs(self, lab: DrillLab) -> str | None:
        group = _group(lab, lab.web_group)
        if group is None:
            return "no VRRP group of nginx nodes in the spec"
        return None if len(group.members) > 1 else f"group {group.name} has one member"

    def probes(self, lab: DrillLab, options: DrillOptions) -> dict[str, Probe]:
        return _keepalive_probe(lab, options)

    @staticmethod
    def backup(group: VrrpGroup, master: str) -> str:
        """The member a failover would pick: the highest priority but the master's."""
        others = sorted((m for m in group.members if m.node != master),
                        key=lambda m: (-m.priority, m.node))
        return others[0].node

    def inject(self, ctx: Context) -> None:
        from stackha.coordinator.control import request_switchover

        group = _group(ctx.lab, ctx.lab.web_group)
        assert group is not None
        original = ctx.master(group.name)
        backup = self.backup(group, original)
        try:
            store = self.open_store(ctx)
        except Exception as exc:  # ZooKeeper or a credential: nothing changed yet
            raise NotRun(f"cannot open the coordinator's store: {exc}") from exc
        try:
            request_switchover(store, ctx.lab.spec, group.name, backup, wait=self.wait)
        except Exception as exc:
            _close(store)
            raise NotRun(f"switchover to {backup} refused: {exc}") from exc
        ctx.events["switched"] = ctx.now()
        ctx.state.update(store=store, request=request_switchover, group=group.name,
                         original=original, backup=backup)
        ctx.note(f"switchover {group.name} {original} -> {backup} returned "
                 f"{ctx.events['switched'] - ctx.events['inject']:.1f} s after the request")

    def _settle_on(self, ctx: Context, node: str, since: float) -> None:
        group = ctx.state["group"]
        seen = ctx.watch.wait_for(lambda s: tuple(s.masters.get(group, ())) == (node,),
                                  ctx.options.max_hold)
        if seen is None:
            ctx.note(f"status did not show {node} MASTER of {group} within "
                     f"{ctx.options.max_hold:.0f} s")
        deadline = ctx.now() + ctx.options.max_hold
        while ctx.now() < deadline and not _quiet(ctx, since):
            if ctx.stop is not None and ctx.stop.is_set():
                return
            ctx.sleep(0.1)

    def hold(self, ctx: Context) -> None:
        state = ctx.state
        self._settle_on(ctx, state["backup"], ctx.events["switched"])
        ctx.events["back"] = ctx.now()
        state["request"](state["store"], ctx.lab.spec, state["group"], state["original"],
                         wait=self.wait)
        state["back"] = True
        ctx.events["back_done"] = ctx.now()
        ctx.note(f"switchover {state['group']} {state['backup']} -> {state['original']} "
                 f"returned {ctx.events['back_done'] - ctx.events['back']:.1f} s after the "
                 "request")
        self._settle_on(ctx, state["original"], ctx.events["back_done"])

    def heal(self, ctx: Context) -> None:
        state = ctx.state
        try:
            if "original" in state and not state.get("back"):
                state["request"](state["store"], ctx.lab.spec, state["group"],
                                 state["original"], wait=self.wait)
                ctx.note(f"heal: VIP asked back to {state['original']}")
        finally:
            if "store" in state:
                _close(state.pop("store"))

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        if "group" not in ctx.state:
            return
        _history(ctx, series, ctx.state["group"])
        inject, back = ctx.events["inject"], ctx.events.get("back")
        moves = [("there", inject, back), ("back", back, None)] if back is not None \
            else [("there", inject, None)]
        kept = ctx.probers.get(KEEPALIVE)
        if kept is not None:
            lost = failed_between(kept.samples(), inject, prefix=KEEPALIVE_ERROR)
            ctx.target("0 failed requests on keep-alive connections", lost == 0,
                       f"{lost} failed of {sum(1 for s in kept.samples() if s.t >= inject)}")
        counts = []
        for label, start, end in moves:
            fresh = 0
            if WEB in ctx.probers:
                fresh += failed_between(ctx.probers[WEB].samples(), start, end)
            if kept is not None:
                fresh += failed_between(kept.samples(), start, end, prefix=FRESH_ERROR)
            counts.append((label, fresh))
        ctx.target("at most 1 failed fresh connection per move",
                   all(n <= 1 for _, n in counts),
                   ", ".join(f"{label}: {n}" for label, n in counts))


def _close(store: Any) -> None:
    try:
        store.close()
    except Exception as exc:  # closing a broken session must not hide the scenario's result
        log.debug("event=switchover_store_close_failed reason=%r", str(exc))
