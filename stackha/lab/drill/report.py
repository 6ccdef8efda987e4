"""Pure: drill results as the terminal table (with each scenario's findings) or as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from stackha.lab.drill.analysis import ProbeFigures
from stackha.lab.drill.result import SQL, WEB, ScenarioResult
from stackha.lab.drill.targets import run_targets

HEADER = ("SCENARIO", "WEB OUTAGE", "WEB FAILED/SENT", "SQL OUTAGE", "SQL FAILED/SENT",
          "GREEN AFTER HEAL", "REJECTED CONFIG SERVED")


def format_outage(figures: ProbeFigures | None) -> str:
    if figures is None:
        return "-"
    if not figures.outages:
        return "none"
    longest = figures.longest
    text = f"{longest:.2f} s" if longest >= 0.1 else f"{longest * 1000:.0f} ms"
    if not figures.recovered:
        return f">{text} (not recovered)"
    return text + (f" ({len(figures.outages)}x)" if len(figures.outages) > 1 else "")


def format_failed(figures: ProbeFigures | None) -> str:
    return "-" if figures is None else f"{figures.failed}/{figures.sent}"


def format_green(result: ScenarioResult) -> str:
    if result.green_after_heal is None:
        return "NOT GREEN"
    return f"{result.green_after_heal:.1f} s"


def format_served(served: bool | None, canary_only: bool = False) -> str:
    if served is None:
        return "-"
    return "YES" if served else ("canary only" if canary_only else "no")


def table_rows(results: Sequence[ScenarioResult]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in results:
        if not r.ran:
            rows.append((r.name, f"not run: {r.not_run}"))
            continue
        web, sql = r.figures.get(WEB), r.figures.get(SQL)
        rows.append((r.name, format_outage(web), format_failed(web), format_outage(sql),
                     format_failed(sql), format_green(r),
                     format_served(r.served_rejected, r.canary_only)))
    return rows


def render_table(results: Sequence[ScenarioResult], findings: bool = True) -> str:
    """The table; rows of scenarios not run carry their reason across the columns. Below it,
    each scenario's findings (what it did and what status showed)."""
    rows = table_rows(results)
    full = [HEADER, *(r for r in rows if len(r) == len(HEADER))]
    widths = [max(len(row[i]) for row in full) for i in range(len(HEADER))]
    widths[0] = max(widths[0], *(len(r[0]) for r in rows)) if rows else widths[0]
    lines = []
    load = max((r.load for r in results), default=0)
    if load:
        clients = next((r.client_priority for r in results if r.client_priority), "")
        lines.append(f"LOADED RUN: {load} busy-loop process(es) at nice 0 kept the host's "
                     "CPUs busy through every scenario"
                     + (f"; the drill's clients ran at {clients}" if clients else ""))
    for row in [HEADER, *rows]:
        cells = [row[0].ljust(widths[0])]
        if len(row) == len(HEADER):
            cells += [cell.ljust(widths[i + 1]) for i, cell in enumerate(row[1:])]
        else:
            cells += list(row[1:])
        lines.append("  ".join(cells).rstrip())
    if load:
        lines.append("")
        lines.append("targets of the loaded run:")
        lines += [f"  - {t.line()}" for t in run_targets(results)]
    if findings:
        for r in results:
            if r.ran and (r.findings or r.targets):
                lines.append("")
                lines.append(f"{r.name}: {r.title}")
                lines += [f"  - {text}" for text in r.findings]
                extra = _extra_probes(r.figures)
                lines += [f"  - probe {line}" for line in extra]
                lines += [f"  - {t.line()}" for t in r.targets]
    return "\n".join(lines) + "\n"


def _extra_probes(figures: Mapping[str, ProbeFigures]) -> list[str]:
    """Probes beyond the two VIPs (e.g. each nginx node directly), one line each."""
    return [f"{name}: outage {format_outage(f)}, failed {format_failed(f)}, "
            f"{f.marked} answer(s) with the rejected content"
            for name, f in figures.items() if name not in (WEB, SQL)]


def render_json(results: Sequence[ScenarioResult], options: Mapping[str, object]) -> str:
    return json.dumps({"options": dict(options), "scenarios": [r.to_dict() for r in results],
                       "run_targets": [t.to_dict() for t in run_targets(results)]},
                      indent=1) + "\n"
