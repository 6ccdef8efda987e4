"""Faults of the machines and the network: containers killed or stopped, a process stopped,
ZooKeeper taken away, a node cut off. Steps go through ``DrillLab`` (Docker SDK, docker exec).
"""

from __future__ import annotations

import re

from stackha.lab.compose.render import NGINX_DIR
from stackha.lab.drill.analysis import (
    StatusSample,
    describe_masters,
    master_history,
    missing_seen,
    span_of,
    split_brain_seen,
    unreachable_span,
)
from stackha.lab.drill.lab import DrillLab, LabProblem
from stackha.lab.drill.result import SQL, WEB
from stackha.lab.drill.scenario import Context, NotRun, Scenario


def _note_masters(ctx: Context, series: list[StatusSample], group: str | None,
                  stale: bool = True) -> None:
    """Who was MASTER over time; with ``stale``, a split brain status reported only because a
    node taken away still had its last report (MASTER) in ZooKeeper."""
    if group is None:
        return
    inject = ctx.events.get("inject", 0.0)
    history = [(t - inject, masters) for t, masters in master_history(series, group)]
    if history:
        ctx.note(f"{group} MASTER (s after the fault): {describe_masters(history)}")
    victim = ctx.state.get("victim")
    if not stale or victim is None:
        return
    span = span_of(series, lambda s: victim in s.split_brain.get(group, ()))
    if span is not None:
        ctx.note(f"status reported split brain on {group} for {span[1] - span[0]:.1f} s: "
                 f"{victim}'s last report (MASTER) was still in ZooKeeper (a killed agent's "
                 f"stays until its session expires: session_timeout "
                 f"{ctx.lab.spec.zookeeper.session_timeout:g} s)")
    doubted = span_of(series, lambda s: victim in s.suspected.get(group, ()))
    if doubted is not None:
        ctx.note(f"status said split brain suspected on {group} for "
                 f"{doubted[1] - doubted[0]:.1f} s ({victim}'s last report, stale or older "
                 "than the takeover, still claimed MASTER)")


class _KillOrStop(Scenario):
    """Take a container away (``kill`` or a graceful ``stop``) and start it again."""

    graceful = False

    def victim(self, ctx: Context) -> str:
        raise NotImplementedError

    def group(self, lab: DrillLab) -> str | None:
        return None

    def inject(self, ctx: Context) -> None:
        victim = self.victim(ctx)
        ctx.state["victim"] = victim
        if self.graceful:
            ctx.lab.stop(victim)
        else:
            ctx.lab.kill(victim)
        ctx.note(f"{'stopped' if self.graceful else 'killed'} {victim}")

    def heal(self, ctx: Context) -> None:
        if "victim" in ctx.state:
            ctx.lab.start(ctx.state["victim"])

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        _note_masters(ctx, series, self.group(ctx.lab))


class NginxMasterKilled(_KillOrStop):
    name = "nginx-master-killed"
    title = "nginx master killed (docker kill)"

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.web_group else "no VRRP group of nginx nodes in the spec"

    def group(self, lab: DrillLab) -> str | None:
        return lab.web_group

    def victim(self, ctx: Context) -> str:
        return ctx.master(ctx.lab.web_group)


class NginxProcessStopped(Scenario):
    name = "nginx-stopped"
    title = "nginx process stopped on the master (health-check failover)"

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.web_group else "no VRRP group of nginx nodes in the spec"

    def inject(self, ctx: Context) -> None:
        victim = ctx.master(ctx.lab.web_group)
        ctx.state["victim"] = victim
        ctx.lab.exec_checked(victim, ["nginx", "-p", f"{NGINX_DIR}/", "-c", "nginx.conf",
                                      "-s", "stop"])
        ctx.note(f"nginx -s stop on {victim}")

    def heal(self, ctx: Context) -> None:
        if "victim" in ctx.state:
            ctx.lab.exec_checked(ctx.state["victim"], ["stackha-lab-service", "start", "nginx"])

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        victim = ctx.state.get("victim")
        seen = span_of(series, lambda s: any(p.startswith(f"{victim}: nginx unhealthy")
                                             for p in s.problems))
        if seen:
            ctx.note(f"status showed {victim} nginx unhealthy "
                     f"{seen[0] - ctx.events['inject']:.1f} s after the stop")
        _note_masters(ctx, series, ctx.lab.web_group, stale=False)


class AgentStopped(_KillOrStop):
    name = "agent-stopped"
    title = "graceful stop of the nginx master (docker stop: the agent, then keepalived)"
    graceful = True

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.web_group else "no VRRP group of nginx nodes in the spec"

    def group(self, lab: DrillLab) -> str | None:
        return lab.web_group

    def victim(self, ctx: Context) -> str:
        return ctx.master(ctx.lab.web_group)


class DirectorKilled(_KillOrStop):
    name = "director-killed"
    title = "active LVS director killed (docker kill)"

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.sql_group else "no VRRP group of director nodes in the spec"

    def group(self, lab: DrillLab) -> str | None:
        return lab.sql_group

    def victim(self, ctx: Context) -> str:
        return ctx.master(ctx.lab.sql_group)


class RealserverKilled(_KillOrStop):
    name = "realserver-killed"
    title = "the MyCat realserver serving the probes killed (docker kill)"

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.sql_vip else "no LVS service in the spec"

    def victim(self, ctx: Context) -> str:
        try:
            return ctx.lab.realserver_serving_us()
        except (LabProblem, OSError) as exc:
            raise NotRun(f"cannot tell which realserver serves this machine: {exc}") from exc

    def inject(self, ctx: Context) -> None:
        super().inject(ctx)
        ctx.note(f"{ctx.state['victim']}: the realserver the directors hash this machine to")


class ZkLeaderKilled(_KillOrStop):
    name = "zk-leader-killed"
    title = "ZooKeeper leader killed (docker kill)"

    def victim(self, ctx: Context) -> str:
        try:
            return ctx.lab.zk_leader()
        except LabProblem as exc:
            raise NotRun(str(exc)) from exc

    def hold(self, ctx: Context) -> None:
        def new_leader() -> bool:
            modes = ctx.lab.zk_modes(timeout=0.5)
            if "leader" in modes.values() and "elected" not in ctx.state:
                ctx.state["elected"] = ctx.now() - ctx.events["inject"]
            return "elected" in ctx.state
        if not ctx.wait_data_plane(min_hold=5.0, extra=new_leader):
            ctx.note(f"no new leader / data plane not settled within {ctx.options.max_hold:.0f} s")

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        if "elected" in ctx.state:
            ctx.note(f"a new ZooKeeper leader answered srvr {ctx.state['elected']:.1f} s after "
                     "the kill")
        gap = unreachable_span(series)
        ctx.note("status stayed readable" if gap is None else
                 f"status unreadable for {gap[1] - gap[0]:.1f} s")


class ZkOutage(Scenario):
    name = "zk-outage"
    title = "all of ZooKeeper stopped (data plane must not notice)"

    def inject(self, ctx: Context) -> None:
        try:
            services = ctx.lab.zk_services()
        except LabProblem as exc:
            raise NotRun(str(exc)) from exc
        ctx.state["services"] = services
        for service in services:
            ctx.lab.stop(service, timeout=5)
        ctx.note(f"stopped {', '.join(services)} for {ctx.options.zk_outage:.0f} s")

    def hold(self, ctx: Context) -> None:
        ctx.sleep(max(0.0, ctx.options.zk_outage - (ctx.now() - ctx.events["inject"])))

    def heal(self, ctx: Context) -> None:
        for service in ctx.state.get("services", []):
            ctx.lab.start(service)

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        gap = unreachable_span(series)
        if gap is not None:
            ctx.note(f"status unreadable for {gap[1] - gap[0]:.1f} s (as it must be)")
        inject, heal = ctx.events["inject"], ctx.events["heal"]
        failed = sum(1 for n in (WEB, SQL) if n in ctx.probers
                     for s in ctx.probers[n].samples() if not s.ok and inject <= s.t <= heal)
        ctx.note("data plane did not notice (no failed probe during the outage)" if not failed
                 else f"DATA PLANE NOTICED: {failed} failed probe(s) during the outage")


class NodeCut(Scenario):
    name = "node-cut"
    title = "nginx master cut from the network (nftables drop inside it): split brain"

    def needs(self, lab: DrillLab) -> str | None:
        return None if lab.web_group else "no VRRP group of nginx nodes in the spec"

    def inject(self, ctx: Context) -> None:
        victim = ctx.master(ctx.lab.web_group)
        ctx.state["victim"] = victim
        try:
            ctx.lab.cut(victim)
        except LabProblem as exc:
            raise NotRun(f"cannot cut {victim}: {exc}") from exc
        ctx.note(f"cut {victim}: every IP and ARP packet on its interface dropped")

    def hold(self, ctx: Context) -> None:
        # Long enough for the cut node's ZooKeeper session to expire: until then status
        # shows its last report, afterwards the node as missing.
        session = ctx.lab.spec.zookeeper.session_timeout
        victim = ctx.state["victim"]
        deadline = ctx.events["inject"] + min(ctx.options.max_hold, session + 8.0)
        vip = ctx.lab.web_vip or ""
        holders: set[str] = set()
        while ctx.now() < deadline:
            for node in nginx_nodes(ctx.lab):
                code, out = ctx.lab.exec(node, ["ip", "-4", "-o", "addr", "show"])
                if code == 0 and re.search(rf"\binet {re.escape(vip)}/", out):
                    holders.add(node)
            if len(holders) > 1 and "both" not in ctx.state:
                ctx.state["both"] = ctx.now() - ctx.events["inject"]
            ctx.sleep(0.5)
        ctx.state["holders"] = sorted(holders)
        if victim not in holders:
            ctx.note(f"{victim} gave the VIP up while cut")

    def heal(self, ctx: Context) -> None:
        if "victim" in ctx.state:
            ctx.lab.uncut(ctx.state["victim"])

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        victim, group = ctx.state.get("victim"), ctx.lab.web_group or ""
        if "both" in ctx.state:
            ctx.note(f"VIP {ctx.lab.web_vip} on {' and '.join(ctx.state['holders'])} at once "
                     f"(ip addr via docker exec, {ctx.state['both']:.1f} s after the cut)")
        during = [s for s in series if ctx.events["inject"] <= s.t <= ctx.events["heal"]]
        seen = split_brain_seen(during)
        span = span_of(during, lambda s: group in s.split_brain)
        doubted = span_of(during, lambda s: group in s.suspected)
        if seen and span:
            ctx.note(f"SPLIT BRAIN reported by status for {span[1] - span[0]:.1f} s "
                     f"({group}: {', '.join(seen.get(group, ()))}), from the cut node's last "
                     "report while its ZooKeeper session lived")
        if doubted:
            ctx.note(f"split brain SUSPECTED by status for {doubted[1] - doubted[0]:.1f} s: "
                     "the cut node's last report, older than the takeover, still claimed "
                     "MASTER (a cut node cannot report that it still is)")
        if not (seen and span) and not doubted:
            ctx.note("split brain NOT reported by status")
        gone = span_of(during, lambda s: victim in s.missing)
        if gone:
            ctx.note(f"{victim} reported missing {gone[0] - ctx.events['inject']:.1f} s after "
                     "the cut (session expired): a cut node cannot report its own state")
        elif victim not in missing_seen(during):
            ctx.note(f"{victim} never reported missing while cut")
        _note_masters(ctx, series, group, stale=False)


def nginx_nodes(lab: DrillLab) -> list[str]:
    return [n.name for n in lab.spec.nodes if "nginx" in n.roles]
