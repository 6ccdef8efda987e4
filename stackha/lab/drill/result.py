"""What one scenario cost: the values report and timeline render (no behaviour)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from stackha.lab.drill.analysis import ProbeFigures, StatusSample
from stackha.lab.drill.probes import Sample

WEB, SQL = "web", "sql"


@dataclass(frozen=True)
class Target:
    """A figure a scenario promises (e.g. "0 failed probes"), and whether this run kept it."""

    text: str
    met: bool
    detail: str = ""

    def line(self) -> str:
        return f"TARGET {'MET' if self.met else 'MISSED'}: {self.text}" + \
            (f" ({self.detail})" if self.detail else "")

    def to_dict(self) -> dict[str, object]:
        return {"target": self.text, "met": self.met, "detail": self.detail}


@dataclass(frozen=True)
class Timeline:
    """Everything observed, on one clock: seconds since the scenario's origin."""

    probes: Mapping[str, tuple[Sample, ...]] = field(default_factory=dict)
    status: tuple[StatusSample, ...] = ()
    events: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ScenarioResult:
    name: str
    title: str
    not_run: str | None = None
    figures: Mapping[str, ProbeFigures] = field(default_factory=dict)
    green_after_heal: float | None = None
    non_green: float = 0.0
    served_rejected: bool | None = None  # None: the scenario pushes no rejected config
    canary_only: bool = False  # not served, except by its canary (holding no VIP) on trial
    findings: tuple[str, ...] = ()
    events: Mapping[str, float] = field(default_factory=dict)
    timeline: Timeline | None = None
    targets: tuple[Target, ...] = ()
    # Busy-loop processes (nice 0) that kept the host's CPUs busy through the scenario.
    load: int = 0
    client_priority: str = ""  # what the drill's probers ran at (priority.py)

    @property
    def ran(self) -> bool:
        return self.not_run is None

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name, "title": self.title, "ran": self.ran, "not_run": self.not_run,
            "probes": {name: f.to_dict() for name, f in self.figures.items()},
            "green_after_heal_s": None if self.green_after_heal is None
            else round(self.green_after_heal, 2),
            "non_green_s": round(self.non_green, 2),
            "served_rejected_config": self.served_rejected,
            "served_by_canary_only": self.canary_only,
            "findings": list(self.findings),
            "targets": [t.to_dict() for t in self.targets],
            "cpu_load_processes": self.load,
            "client_priority": self.client_priority,
            "events": {k: round(v, 3) for k, v in self.events.items()},
        }
