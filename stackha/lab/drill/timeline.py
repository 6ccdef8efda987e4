"""Pure (file out): one PNG per scenario, the probes on a time line.

Top panel, one lane per probe: the probed span in green, outages in red with every failed
attempt as a tick, answers carrying rejected content in purple; a last lane for `stackha
status` (green, not green, unreadable). Bottom panel: each successful attempt's latency.
Times are seconds from the fault; dashed lines mark inject, heal and green.
"""

from __future__ import annotations

from pathlib import Path

from stackha.lab.drill.analysis import outages
from stackha.lab.drill.result import ScenarioResult

OK, FAIL, MARK, UNREAD = "#59a14f", "#e15759", "#9c4dcc", "#bab0ac"
EVENT_COLOURS = {"inject": "#e15759", "heal": "#4e79a7", "green": "#59a14f"}


def render_png(result: ScenarioResult, path: Path) -> Path:
    """Write the timeline of ``result`` (which must have run) to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    timeline = result.timeline
    if timeline is None:
        raise ValueError(f"{result.name}: no timeline (not run?)")
    zero = timeline.events.get("inject", 0.0)
    names = list(timeline.probes)
    figure = Figure(figsize=(12, 2.2 + 0.55 * (len(names) + 1) + 2.2), dpi=100)
    lanes, latency = figure.subplots(2, 1, sharex=True,
                                     gridspec_kw={"height_ratios": [len(names) + 1, 2.5]})
    for y, name in enumerate(names):
        samples = timeline.probes[name]
        if not samples:
            continue
        first, last = samples[0].t - zero, samples[-1].t - zero
        lanes.broken_barh([(first, last - first)], (y - 0.3, 0.6), color=OK, alpha=0.35)
        spans = [(o.start - zero, max(o.duration, 0.01)) for o in outages(samples)]
        if spans:
            lanes.broken_barh(spans, (y - 0.3, 0.6), color=FAIL, alpha=0.8)
        failed = [s.t - zero for s in samples if not s.ok]
        if failed:
            lanes.scatter(failed, [y] * len(failed), marker="|", s=60, color="#8b0000",
                          linewidths=0.6)
        marked = [s.t - zero for s in samples if s.marked]
        if marked:
            lanes.scatter(marked, [y + 0.2] * len(marked), marker="v", s=14, color=MARK)
        ok = [s for s in samples if s.ok]
        latency.scatter([s.t - zero for s in ok], [s.duration * 1000 for s in ok], s=2,
                        label=name, alpha=0.6)
    status_y = len(names)
    series = sorted(timeline.status, key=lambda s: s.t)
    for here, after in zip(series, [*series[1:], None], strict=True):
        end = after.t if after is not None else here.t + 0.25
        colour = OK if here.green else (UNREAD if not here.reachable else FAIL)
        lanes.broken_barh([(here.t - zero, end - here.t)], (status_y - 0.3, 0.6), color=colour,
                          alpha=0.8 if not here.green else 0.35, linewidth=0)
    lanes.set_yticks(range(len(names) + 1), [*_lane_names(names), "stackha status"])
    lanes.set_ylim(-0.7, len(names) + 0.7)
    for name, t in timeline.events.items():
        for axes in (lanes, latency):
            axes.axvline(t - zero, color=EVENT_COLOURS.get(name, "#555555"), linestyle="--",
                         linewidth=1)
        lanes.annotate(name, (t - zero, len(names) + 0.45), fontsize=8,
                       color=EVENT_COLOURS.get(name, "#555555"))
    latency.set_yscale("log")
    latency.set_ylabel("latency of OK probes (ms)")
    latency.set_xlabel("seconds from the fault")
    if names:
        latency.legend(loc="upper right", fontsize=7, markerscale=4)
    figure.suptitle(f"{result.name}: {result.title}\n{_summary(result)}", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _lane_names(names: list[str]) -> list[str]:
    pretty = {"web": "web VIP (HTTP)", "sql": "MySQL VIP (login+select 1)"}
    return [pretty.get(n, n) for n in names]


def _summary(result: ScenarioResult) -> str:
    from stackha.lab.drill.report import format_failed, format_green, format_outage

    parts = [f"{name} outage {format_outage(f)}, failed {format_failed(f)}"
             for name, f in result.figures.items() if name in ("web", "sql")]
    parts.append(f"green after heal {format_green(result)}")
    return "; ".join(parts)


def render_all(results: list[ScenarioResult], directory: Path) -> list[Path]:
    return [render_png(r, directory / f"drill-{r.name}.png") for r in results
            if r.ran and r.timeline is not None]
