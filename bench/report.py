"""One benchmark's result as a table, and the renderings the runner prints and saves."""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False          # fewer repetitions, shorter load phases: a smoke run
    load_seconds: float = 600.0  # the flap test under CPU saturation


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def markdown(table: Table) -> str:
    lines = [f"### {table.title}", "",
             "| " + " | ".join(table.headers) + " |",
             "|" + "|".join("---" for _ in table.headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    if table.notes:
        lines.append("")
        lines += [f"- {note}" for note in table.notes]
    return "\n".join(lines) + "\n"


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile: with few samples p99 is the worst one, which is honest."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    # rank = ceil(fraction * n); the epsilon keeps 0.1 * 30 = 3.0000000000000004 at rank 3.
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered) - 1e-9)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
