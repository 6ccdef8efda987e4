"""The agent's Prometheus metrics, served on /metrics by stackha.agent.endpoints.

Written here in the text exposition format (version 0.0.4) rather than with
prometheus_client: the agent's eight metrics and three process figures are a few lines of
text, and prometheus_client cost the agent 2.8 MiB resident of its 30 MiB budget (VmRSS of
`import stackha.cli.agent` with and without it, 2026-12-02). tests/unit/test_metrics.py
reads this output back with prometheus_client's own parser, which stays a test dependency.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator, Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# prometheus_client's default buckets (seconds): a reload takes 0.01-1 s.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _family(name: str, kind: str, documentation: str) -> Iterator[str]:
    """A family's HELP and TYPE lines (HELP escapes backslash and newline only)."""
    yield f"# HELP {name} " + documentation.replace("\\", "\\\\").replace("\n", "\\n")
    yield f"# TYPE {name} {kind}"


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"


class _Series:
    """One label set's value: a number, or a histogram's bucket counts and sum."""

    def __init__(self, metric: Metric) -> None:
        self._metric = metric
        self.value = 0.0
        self.counts = [0] * len(metric.buckets)  # cumulative per upper bound

    def set(self, value: float) -> None:
        with self._metric.lock:
            self.value = float(value)

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._metric.lock:
            self.value += amount

    def observe(self, value: float) -> None:
        with self._metric.lock:
            self.value += value  # the sum
            for i, bound in enumerate(self._metric.buckets):
                if value <= bound:
                    self.counts[i] += 1


class Metric:
    """A metric family: a gauge, a counter (exposed as NAME_total) or a histogram."""

    def __init__(self, kind: str, name: str, documentation: str,
                 labelnames: Sequence[str] = (), buckets: Sequence[float] = BUCKETS) -> None:
        self.kind, self.name, self.documentation = kind, name, documentation
        self.labelnames = tuple(labelnames)
        self.buckets = (*buckets, math.inf) if kind == "histogram" else ()
        self.lock = threading.Lock()
        self._series: dict[tuple[str, ...], _Series] = {}
        if not self.labelnames:
            self._series[()] = _Series(self)

    def labels(self, *values: str, **named: str) -> _Series:
        if named and (values or set(named) != set(self.labelnames)):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, not {sorted(named)}")
        key = tuple(str(v) for v in values) if values else \
            tuple(str(named[n]) for n in self.labelnames)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}")
        with self.lock:
            return self._series.setdefault(key, _Series(self))

    def set(self, value: float) -> None:
        self._series[()].set(value)

    def inc(self, amount: float = 1) -> None:
        self._series[()].inc(amount)

    def observe(self, value: float) -> None:
        self._series[()].observe(value)

    def exposition(self) -> Iterator[str]:
        name = self.name + "_total" if self.kind == "counter" else self.name
        yield from _family(name, self.kind, self.documentation)
        with self.lock:
            series = [(key, s.value, list(s.counts)) for key, s in self._series.items()]
        for key, value, counts in sorted(series):
            pairs = list(zip(self.labelnames, key, strict=True))
            if self.kind != "histogram":
                yield f"{name}{_labels(pairs)} {_number(value)}"
                continue
            for bound, count in zip(self.buckets, counts, strict=True):
                yield f"{name}_bucket{_labels([*pairs, ('le', _number(bound))])} {count}.0"
            yield f"{name}_count{_labels(pairs)} {counts[-1]}.0"
            yield f"{name}_sum{_labels(pairs)} {_number(value)}"


APPLIED_VERSION = Metric("gauge", "stackha_applied_version",
                         "Configuration version applied on this node")
APPLY_FAILURES = Metric("counter", "stackha_apply_failures", "Versions rejected or rolled back",
                        ["reason"])
RELOAD_SECONDS = Metric("histogram", "stackha_reload_seconds",
                        "Write, reload and health check time", ["role"])
ZK_CONNECTED = Metric("gauge", "stackha_zookeeper_connected",
                      "1 while the ZooKeeper session is up")
VRRP_STATE = Metric("gauge", "stackha_vrrp_master",
                    "1 while this node is VRRP master of the group", ["group"])
VRID_CONFLICTS = Metric("counter", "stackha_vrid_conflicts",
                        "Adverts on our VRIDs from routers outside the spec")
SPLIT_BRAIN = Metric("gauge", "stackha_vrrp_split_brain",
                     "1 while several nodes report MASTER of the group", ["group"])
HEALTH_OK = Metric("gauge", "stackha_health_check_ok",
                   "1 while the agent's health check passes (after fall/rise)", ["check"])
AGENT_METRICS = (APPLIED_VERSION, APPLY_FAILURES, RELOAD_SECONDS, ZK_CONNECTED, VRRP_STATE,
                 VRID_CONFLICTS, SPLIT_BRAIN, HEALTH_OK)


def _process() -> Iterator[str]:
    """The standard process_* series (the names prometheus_client's collector uses)."""
    times = os.times()
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    figures = [
        ("process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds",
         times.user + times.system),
        ("process_resident_memory_bytes", "gauge", "Resident memory size in bytes",
         pages * os.sysconf("SC_PAGE_SIZE")),
        ("process_open_fds", "gauge", "Number of open file descriptors",
         len(os.listdir("/proc/self/fd"))),
    ]
    for name, kind, documentation, value in figures:
        yield from _family(name, kind, documentation)
        yield f"{name} {_number(value)}"


def render() -> bytes:
    """Every series, in the text exposition format."""
    lines = [line for metric in AGENT_METRICS for line in metric.exposition()]
    lines.extend(_process())
    return ("\n".join(lines) + "\n").encode("utf-8")
