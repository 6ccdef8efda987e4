"""Pure: what a probe series and a status series say a fault cost.

An outage is a run of consecutive failed attempts (in order of start): it begins when the
first of them started and ends when the first successful attempt after it started. A run
that no success follows is not recovered; it lasts until the end of the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from stackha.lab.drill.probes import Sample


@dataclass(frozen=True)
class Outage:
    start: float
    end: float
    failed: int
    recovered: bool = True

    @property
    def duration(self) -> float:
        return self.end - self.start

    def to_dict(self) -> dict[str, object]:
        return {"start": round(self.start, 3), "end": round(self.end, 3),
                "duration": round(self.duration, 3), "failed": self.failed,
                "recovered": self.recovered}


@dataclass(frozen=True)
class ProbeFigures:
    """What one probe saw over a scenario."""

    sent: int
    failed: int
    outages: tuple[Outage, ...] = ()
    marked: int = 0
    first_marked: float | None = None
    errors: Mapping[str, int] = field(default_factory=dict)
    # How late attempts started after their tick (the prober's own delay): p99 and max.
    lag_p99: float = 0.0
    lag_max: float = 0.0

    @property
    def longest(self) -> float:
        return max((o.duration for o in self.outages), default=0.0)

    @property
    def total(self) -> float:
        return sum(o.duration for o in self.outages)

    @property
    def recovered(self) -> bool:
        return all(o.recovered for o in self.outages)

    def to_dict(self) -> dict[str, object]:
        return {"sent": self.sent, "failed": self.failed,
                "longest_outage_s": round(self.longest, 3),
                "total_outage_s": round(self.total, 3), "recovered": self.recovered,
                "outages": [o.to_dict() for o in self.outages], "marked": self.marked,
                "first_marked_s": None if self.first_marked is None
                else round(self.first_marked, 3),
                "errors": dict(self.errors), "client_lag_p99_s": round(self.lag_p99, 3),
                "client_lag_max_s": round(self.lag_max, 3)}


def outages(samples: Sequence[Sample], end: float | None = None) -> list[Outage]:
    """Every run of failed attempts; ``end`` closes a run nothing recovered (default: the end
    of the last attempt)."""
    ordered = sorted(samples, key=lambda s: s.t)
    if end is None:
        end = max((s.t + s.duration for s in ordered), default=0.0)
    found: list[Outage] = []
    start: float | None = None
    failed = 0
    for sample in ordered:
        if not sample.ok:
            if start is None:
                start, failed = sample.t, 0
            failed += 1
        elif start is not None:
            found.append(Outage(start, sample.t, failed))
            start = None
    if start is not None:
        found.append(Outage(start, max(end, start), failed, recovered=False))
    return found


def _error_kind(error: str) -> str:
    """The error's class or first words: ``ConnectionRefusedError``, ``HTTP 502``, …"""
    head = error.split(":", 1)[0].strip()
    return head[:60] or "unknown"


def probe_figures(samples: Sequence[Sample], end: float | None = None) -> ProbeFigures:
    marked = [s.t for s in samples if s.marked]
    errors: dict[str, int] = {}
    for sample in samples:
        if not sample.ok:
            kind = _error_kind(sample.error)
            errors[kind] = errors.get(kind, 0) + 1
    lags = sorted(s.lag for s in samples)
    return ProbeFigures(sent=len(samples), failed=sum(not s.ok for s in samples),
                        outages=tuple(outages(samples, end)), marked=len(marked),
                        first_marked=min(marked, default=None),
                        errors=dict(sorted(errors.items(), key=lambda kv: -kv[1])),
                        lag_p99=lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0.0,
                        lag_max=lags[-1] if lags else 0.0)


def failed_between(samples: Iterable[Sample], start: float, end: float | None = None,
                   prefix: str | None = None) -> int:
    """Failed attempts started in [start, end] (end None: to the last), optionally only those
    whose error begins with ``prefix`` (``keep-alive``, ``fresh``: see KeepAliveWebProbe)."""
    return sum(1 for s in samples if not s.ok and s.t >= start and (end is None or s.t <= end)
               and (prefix is None or s.error.startswith(prefix)))


def beyond_baseline(samples: Sequence[Sample], inject: float) -> tuple[int, int, float]:
    """(failed after ``inject``, failed before it, failures the baseline's rate predicts for
    the time after): on a loaded host some probes fail with no fault at all, and only what
    exceeds that rate is the fault's."""
    ordered = sorted(samples, key=lambda s: s.t)
    before = [s for s in ordered if s.t < inject]
    after = [s for s in ordered if s.t >= inject]
    failed_before = sum(not s.ok for s in before)
    failed_after = sum(not s.ok for s in after)
    expected = 0.0
    if before and after and failed_before:
        span_before = max(inject - before[0].t, 1e-9)
        expected = failed_before / span_before * (after[-1].t - inject)
    return failed_after, failed_before, expected


# status ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StatusSample:
    """One reading of `stackha status`, ``t`` seconds after the drill's origin.

    ``reachable`` False: ZooKeeper did not answer (``problems`` says why).
    """

    t: float
    reachable: bool
    problems: tuple[str, ...] = ()
    current: int | None = None
    applied: Mapping[str, int | None] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    masters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    split_brain: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # Groups with one believed MASTER and a stale or overtaken claim beside it.
    suspected: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def green(self) -> bool:
        return self.reachable and not self.problems


def green_since(series: Sequence[StatusSample]) -> float | None:
    """When the final all-green streak began; None when the last reading is not green."""
    start: float | None = None
    for sample in sorted(series, key=lambda s: s.t):
        if sample.green:
            start = sample.t if start is None else start
        else:
            start = None
    return start


def time_to_green(series: Sequence[StatusSample], since: float) -> float | None:
    """Seconds from ``since`` (the heal) until status was green for good; 0 when it never
    stopped being green; None when it is not green at the end."""
    start = green_since(series)
    return None if start is None else max(0.0, start - since)


def non_green_seconds(series: Sequence[StatusSample], end: float | None = None) -> float:
    """How long status was not green: each reading counts until the next one."""
    ordered = sorted(series, key=lambda s: s.t)
    total = 0.0
    for here, after in zip(ordered, [*ordered[1:], None], strict=True):
        stop = after.t if after is not None else (end if end is not None else here.t)
        if not here.green:
            total += max(0.0, stop - here.t)
    return total


def split_brain_seen(series: Iterable[StatusSample]) -> dict[str, tuple[str, ...]]:
    """Every group status ever reported several masters for, with all nodes it named."""
    seen: dict[str, set[str]] = {}
    for sample in series:
        for group, nodes in sample.split_brain.items():
            seen.setdefault(group, set()).update(nodes)
    return {g: tuple(sorted(n)) for g, n in sorted(seen.items())}


def span_of(series: Sequence[StatusSample], predicate) -> tuple[float, float] | None:
    """First and last time a reading matched ``predicate`` (each reading lasting until the
    next one)."""
    ordered = sorted(series, key=lambda s: s.t)
    hits = [i for i, s in enumerate(ordered) if predicate(s)]
    if not hits:
        return None
    last = hits[-1]
    end = ordered[last + 1].t if last + 1 < len(ordered) else ordered[last].t
    return ordered[hits[0]].t, end


def nodes_that_applied(series: Iterable[StatusSample], version: int) -> tuple[str, ...]:
    """Nodes that ever reported ``version`` as applied (served it)."""
    return tuple(sorted({node for s in series for node, applied in s.applied.items()
                         if applied == version}))


def missing_seen(series: Iterable[StatusSample]) -> tuple[str, ...]:
    return tuple(sorted({node for s in series for node in s.missing}))


def unreachable_span(series: Sequence[StatusSample]) -> tuple[float, float] | None:
    return span_of(series, lambda s: not s.reachable)


def master_history(series: Sequence[StatusSample], group: str
                   ) -> list[tuple[float, tuple[str, ...]]]:
    """Each change of who status says is MASTER of ``group`` (unreachable readings skipped)."""
    changes: list[tuple[float, tuple[str, ...]]] = []
    for sample in sorted(series, key=lambda s: s.t):
        if not sample.reachable:
            continue
        masters = tuple(sample.masters.get(group, ()))
        if not changes or changes[-1][1] != masters:
            changes.append((sample.t, masters))
    return changes


def describe_masters(changes: Sequence[tuple[float, tuple[str, ...]]]) -> str:
    """``nginx1 → nginx2 (3.1 s) → nginx1 (20.4 s)``; ``none`` for no master."""
    parts = []
    for index, (t, masters) in enumerate(changes):
        who = "+".join(masters) if masters else "none"
        parts.append(who if index == 0 else f"{who} ({t:.1f} s)")
    return " → ".join(parts)


# Status lags the data plane: an agent reports a VRRP change after keepalived's notify, and a
# canary busy loading reports it once its apply returns (seen up to about 1 s in the lab).
MASTER_REPORT_SLACK = 1.0


def master_while_serving(series: Sequence[StatusSample], node: str,
                         marked: Sequence[float], slack: float = MASTER_REPORT_SLACK) -> bool:
    """Whether status showed ``node`` as a VRRP master while it was serving what its probe
    marked (from its first to its last marked answer, widened by ``slack``): a canary that
    held a VIP only before or after its trial did not serve the trial through it."""
    if not marked:
        return False
    start, end = min(marked) - slack, max(marked) + slack
    return any(node in nodes for s in series if start <= s.t <= end
               for nodes in s.masters.values())


def other_masters(series: Iterable[StatusSample], group: str, holder: str,
                  since: float = float("-inf")) -> tuple[str, ...]:
    """Every node but ``holder`` that status reported MASTER of ``group`` from ``since`` on:
    empty when the VIP never moved (a reading with no master, as while an agent restarts and
    its report is briefly gone, is no move)."""
    return tuple(sorted({node for s in series if s.t >= since and s.reachable
                         for node in s.masters.get(group, ()) if node != holder}))
