"""What every scenario shares: its options, the context its steps work in, and its shape
(a name, an inject step, a hold, a heal step, and findings afterwards).

A scenario that cannot run in this lab raises ``NotRun`` before it changes anything (or
``needs`` says why) and is reported as "not run: <reason>".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stackha.lab.drill.analysis import StatusSample
from stackha.lab.drill.lab import DrillLab
from stackha.lab.drill.probes import Probe, Prober
from stackha.lab.drill.result import SQL, WEB, Target

log = logging.getLogger(__name__)


class NotRun(Exception):
    """The scenario cannot run here; the message is the reason shown in the table."""


@dataclass(frozen=True)
class DrillOptions:
    zk_outage: float = 60.0
    probe_timeout: float = 1.0
    interval: float = 0.01
    baseline: float = 2.0
    tail: float = 2.0
    green_timeout: float = 180.0
    green_stable: float = 2.0
    max_hold: float = 30.0
    settle: float = 3.0
    zk_override: str | None = None
    # Busy-loop processes kept running through each scenario (`--load N`; 0: none).
    load: int = 0
    # What the drill's clients ran at (see priority.py); shown with the report.
    client_priority: str = "normal priority"


@dataclass
class Context:
    """What a scenario's steps share while it runs."""

    lab: DrillLab
    watch: Any  # StatusWatch
    probers: dict[str, Prober]
    origin: float
    options: DrillOptions
    state: dict[str, Any] = field(default_factory=dict)
    findings: list[str] = field(default_factory=list)
    events: dict[str, float] = field(default_factory=dict)
    served_rejected: bool | None = None
    # The rejected version reached only its canary (a node holding no VIP), never clients.
    canary_only: bool = False
    stop: Any = None  # threading.Event: set to abandon waits
    load_at_fault: float | None = None
    targets: list[Target] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.origin

    def note(self, text: str) -> None:
        log.info("event=drill_finding text=%r", text)
        self.findings.append(text)

    def target(self, text: str, met: bool, detail: str = "") -> None:
        """A figure the scenario promises, and whether this run kept it."""
        target = Target(text, met, detail)
        log.info("event=drill_target met=%s text=%r detail=%r", met, text, detail)
        self.targets.append(target)

    def sleep(self, seconds: float) -> None:
        if self.stop is not None:
            self.stop.wait(seconds)
        else:
            time.sleep(seconds)

    def add_prober(self, name: str, probe: Any) -> Prober:
        prober = Prober(name, probe, self.origin, interval=self.options.interval).start()
        self.probers[name] = prober
        return prober

    def master(self, group: str | None) -> str:
        if group is None:
            raise NotRun("no such VRRP group in the spec")
        latest = self.watch.latest()
        masters = latest.masters.get(group, ()) if latest else ()
        if len(masters) != 1:
            raise NotRun(f"group {group} has no single MASTER ({', '.join(masters) or 'none'})")
        return masters[0]

    def wait_data_plane(self, min_hold: float = 3.0, settle: float | None = None,
                        max_hold: float | None = None,
                        extra: Callable[[], bool] | None = None) -> bool:
        """Hold the fault until both VIP probes have answered without a failure for
        ``settle`` seconds (at least ``min_hold`` after the inject, at most ``max_hold``) and
        ``extra`` holds. False when ``max_hold`` ran out first."""
        settle = self.options.settle if settle is None else settle
        max_hold = self.options.max_hold if max_hold is None else max_hold
        inject = self.events.get("inject", self.now())
        while self.now() - inject < max_hold:
            now = self.now()
            if now - inject >= min_hold and (extra is None or extra()):
                quiet = [self.probers[n].recent_ok(now - settle) for n in (WEB, SQL)
                         if n in self.probers]
                if all(q is True for q in quiet):
                    return True
            self.sleep(0.1)
        return False


class Scenario:
    name = ""
    title = ""
    #: pushes a configuration that must never be served (the table's last column applies)
    pushes_rejected = False

    def needs(self, lab: DrillLab) -> str | None:
        """Why this scenario cannot run against ``lab``; None when it can."""
        return None

    def probes(self, lab: DrillLab, options: DrillOptions) -> dict[str, Probe]:
        """Probes beyond the two VIPs', started with them (before the baseline)."""
        return {}

    def inject(self, ctx: Context) -> None:
        raise NotImplementedError

    def hold(self, ctx: Context) -> None:
        if not ctx.wait_data_plane():
            ctx.note(f"data plane not settled within {ctx.options.max_hold:.0f} s of the fault")

    def heal(self, ctx: Context) -> None:
        raise NotImplementedError

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        """Findings from what status showed (called after the heal and the wait for green)."""
