"""One scenario from green to green: status green first, probes on both VIPs, a baseline,
inject, hold, heal, the wait for green again, a tail; then the figures.

The heal step runs whatever happened before it (an exception, Ctrl-C), so a drill never
leaves the fault in place if it can help it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from stackha.lab.drill.analysis import non_green_seconds, probe_figures, time_to_green
from stackha.lab.drill.lab import DrillLab
from stackha.lab.drill.load import CpuLoad
from stackha.lab.drill.probes import MysqlProbe, Prober, WebProbe
from stackha.lab.drill.result import SQL, WEB, ScenarioResult, Timeline
from stackha.lab.drill.scenarios import Context, DrillOptions, NotRun, Scenario
from stackha.lab.drill.statuswatch import StatusWatch

log = logging.getLogger(__name__)

BEFORE_TIMEOUT = 120.0
# Ten probe intervals: a prober this late no longer samples every 10 ms.
CLIENT_LAG_NOTED = 0.1


class DrillRunner:
    def __init__(self, lab: DrillLab, read_status: Callable[[], dict],
                 options: DrillOptions) -> None:
        self.lab, self.read_status, self.options = lab, read_status, options
        self.stop = threading.Event()

    def _probers(self, origin: float) -> dict[str, Prober]:
        lab, options = self.lab, self.options
        probers: dict[str, Prober] = {}
        if lab.web_vip:
            probers[WEB] = Prober(WEB, WebProbe(lab.web_vip, timeout=options.probe_timeout),
                                  origin, interval=options.interval)
        if lab.sql_vip and lab.sql:
            probe = MysqlProbe(lab.sql_vip[0], lab.sql_vip[1], lab.sql.user, lab.sql.password,
                               lab.sql.database, timeout=options.probe_timeout)
            probers[SQL] = Prober(SQL, probe, origin, interval=options.interval)
        return probers

    def run(self, scenario: Scenario) -> ScenarioResult:
        reason = scenario.needs(self.lab)
        if reason:
            return ScenarioResult(scenario.name, scenario.title, not_run=reason)
        log.info("event=scenario_start scenario=%s load=%d", scenario.name, self.options.load)
        # Before the green wait: the scenario starts from a cluster already living with it.
        with CpuLoad(self.options.load):
            return self._run(scenario)

    def _run(self, scenario: Scenario) -> ScenarioResult:
        origin = time.monotonic()
        watch = StatusWatch(self.read_status, origin).start()
        ctx = Context(self.lab, watch, {}, origin, self.options, stop=self.stop)
        not_run: str | None = None
        try:
            if watch.wait_green(BEFORE_TIMEOUT, self.options.green_stable) is None:
                latest = watch.latest()
                problems = "; ".join(latest.problems[:3]) if latest else "no reading"
                return ScenarioResult(scenario.name, scenario.title,
                                      not_run=f"status not green before the fault ({problems})")
            ctx.probers.update(self._probers(origin))
            ctx.probers.update({name: Prober(name, probe, origin, interval=self.options.interval)
                                for name, probe in scenario.probes(self.lab, self.options)
                                .items()})
            silent = self._vips_answer(ctx)
            if silent:
                return ScenarioResult(scenario.name, scenario.title, not_run=silent)
            sessions_before = self._sessions(ctx)
            for prober in ctx.probers.values():
                prober.start()
            ctx.sleep(self.options.baseline)
            not_run = self._fault(scenario, ctx)
            if not_run is None:
                green = watch.wait_green(self.options.green_timeout, self.options.green_stable)
                if green is None:
                    ctx.note(f"status not green {self.options.green_timeout:.0f} s after the heal")
                else:
                    ctx.events["green"] = max(green, ctx.events["heal"])
                self._tail(ctx)
                if green is not None:
                    self._relapse(ctx, watch)
        finally:
            for prober in ctx.probers.values():
                prober.stop()
            series = watch.stop()
        if not_run is not None:
            return ScenarioResult(scenario.name, scenario.title, not_run=not_run)
        end = ctx.now()
        self._note_leftover_sessions(ctx, sessions_before)
        scenario.assess(ctx, series)
        samples = {name: tuple(p.samples()) for name, p in ctx.probers.items()}
        load = ctx.load_at_fault
        if load is not None:
            ctx.note(f"host load average (1 min): {load:.1f} at the fault, "
                     f"{os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} CPUs)")
        figures = {name: probe_figures(taken, end) for name, taken in samples.items()}
        for name, taken in samples.items():
            late = figures[name]
            if late.lag_max >= CLIENT_LAG_NOTED:
                ctx.note(f"{name}: the prober itself started attempts up to {late.lag_max:.2f} s "
                         f"late (p99 {late.lag_p99:.3f} s): the client was starved too")
            before = [s for s in taken if s.t < ctx.events["inject"]]
            failed = sum(not s.ok for s in before)
            if failed:
                ctx.note(f"{name}: {failed}/{len(before)} probes failed BEFORE the fault "
                         "(baseline: not caused by it)")
        result = ScenarioResult(
            name=scenario.name, title=scenario.title,
            figures=figures,
            green_after_heal=time_to_green(series, ctx.events["heal"])
            if "green" in ctx.events else None,
            non_green=non_green_seconds(series, end),
            served_rejected=ctx.served_rejected if scenario.pushes_rejected else None,
            canary_only=ctx.canary_only,
            findings=tuple(ctx.findings), events=dict(ctx.events),
            timeline=Timeline(samples, tuple(series), dict(ctx.events)),
            targets=tuple(ctx.targets), load=self.options.load,
            client_priority=self.options.client_priority)
        log.info("event=scenario_done scenario=%s", scenario.name)
        return result

    def _relapse(self, ctx: Context, watch: StatusWatch) -> None:
        """Status that went red again after being green: said, and waited for again."""
        relapse = next((s for s in watch.series()
                        if s.t > ctx.events["green"] and not s.green), None)
        if relapse is None:
            return
        ctx.note(f"status went red again {relapse.t - ctx.events['heal']:.1f} s after the heal: "
                 f"{'; '.join(relapse.problems[:3])}")
        again = watch.wait_green(self.options.green_timeout, self.options.green_stable)
        if again is None:
            del ctx.events["green"]
            ctx.note(f"status not green {self.options.green_timeout:.0f} s later")
        else:
            ctx.events["green"] = again

    def _vips_answer(self, ctx: Context, timeout: float = 30.0) -> str | None:
        """Both VIPs answer a probe before the fault; else why not (status alone is not
        enough: it has been seen green while the MySQL VIP refused every connection)."""
        for name, prober in ctx.probers.items():
            deadline = time.monotonic() + timeout
            outcome = prober.probe()
            while not outcome.ok and time.monotonic() < deadline and not self.stop.is_set():
                ctx.sleep(0.5)
                outcome = prober.probe()
            if not outcome.ok:
                return (f"the {name} VIP does not answer before the fault although status is "
                        f"green ({outcome.error})")
        return None

    def _sessions(self, ctx: Context) -> dict[str, int]:
        try:
            return self.lab.sessions_from_here()
        except Exception as exc:  # a diagnostic only: never fails the scenario
            log.warning("event=sessions_unreadable reason=%r", str(exc))
            return {}

    def _note_leftover_sessions(self, ctx: Context, before: dict[str, int]) -> None:
        """Sessions the probes closed that a realserver still holds: their FIN went to
        another realserver (the directors' table changed meanwhile), so the realserver keeps
        a dead session, and with it a backend connection."""
        time.sleep(1.0)
        after = self._sessions(ctx)
        grown = {n: after[n] - before.get(n, 0) for n in after
                 if after[n] > before.get(n, 0)}
        if grown:
            ctx.note("sessions from this machine still open on realservers after the probes "
                     "closed theirs: " + ", ".join(f"{n} +{k}" for n, k in sorted(grown.items()))
                     + f" (now {sum(after.values())}; each holds a backend connection)")

    def _tail(self, ctx: Context) -> None:
        """Probe on for ``tail`` seconds, and at least until a ZooKeeper session the fault
        left behind has expired (a killed agent's status node goes only then, and may take a
        restarted agent's report with it); then on (10 s at most) while a VIP probe's latest
        attempt failed: an outage is only called unrecovered when it really lasted."""
        expiry = ctx.events["inject"] + self.lab.spec.zookeeper.session_timeout + 1.0
        ctx.sleep(max(self.options.tail, expiry - ctx.now()))
        deadline = ctx.now() + 10.0
        while ctx.now() < deadline and not self.stop.is_set():
            latest = [p.samples()[-1:] for n, p in ctx.probers.items() if n in (WEB, SQL)]
            if all(s and s[0].ok for s in latest):
                return
            ctx.sleep(0.1)

    def _fault(self, scenario: Scenario, ctx: Context) -> str | None:
        """Inject, hold and (always) heal; the reason when the scenario could not run."""
        ctx.events["inject"] = ctx.now()
        ctx.load_at_fault = os.getloadavg()[0]
        injected = False
        try:
            scenario.inject(ctx)
            injected = True
            scenario.hold(ctx)
        except NotRun as exc:
            if not injected and not ctx.state:
                return str(exc)
            ctx.note(f"fault step gave up: {exc}")
        except Exception as exc:  # docker or ZooKeeper refusing: reported, then healed
            log.exception("event=fault_step_failed scenario=%s", scenario.name)
            ctx.note(f"FAULT STEP FAILED: {exc.__class__.__name__}: {exc}")
        finally:
            ctx.events["heal"] = ctx.now()
            try:
                scenario.heal(ctx)
            except Exception as exc:
                log.exception("event=heal_failed scenario=%s", scenario.name)
                ctx.note(f"HEAL FAILED: {exc.__class__.__name__}: {exc}")
        return None
