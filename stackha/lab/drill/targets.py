"""Pure: the targets a whole drill run is held to (issue #16's loaded drill): every scenario
green after its heal, no rejected configuration served through a VIP, and faults that must
not touch the data plane (``zk-outage``, ``bad-config``) costing no failed probe on either VIP
beyond what the baseline's own failure rate predicts."""

from __future__ import annotations

from collections.abc import Sequence

from stackha.lab.drill.analysis import beyond_baseline
from stackha.lab.drill.result import SQL, WEB, ScenarioResult, Target

# Scenarios that must not touch the data plane at all.
DATA_PLANE_QUIET = ("zk-outage", "bad-config")


def run_targets(results: Sequence[ScenarioResult]) -> list[Target]:
    ran = [r for r in results if r.ran]
    if not ran:
        return []
    not_green = [r.name for r in ran if r.green_after_heal is None]
    targets = [Target("every scenario green after its heal", not not_green,
                      f"not green: {', '.join(not_green)}" if not_green
                      else f"{len(ran)} scenario(s)")]
    pushed = [r for r in ran if r.served_rejected is not None]
    if pushed:
        served = [r.name for r in pushed if r.served_rejected]
        targets.append(Target("no rejected configuration served through a VIP", not served,
                              f"served in: {', '.join(served)}" if served
                              else ", ".join(r.name for r in pushed)))
    for result in ran:
        if result.name in DATA_PLANE_QUIET:
            targets.append(_quiet(result))
    return targets


def _quiet(result: ScenarioResult) -> Target:
    inject = result.events.get("inject", 0.0)
    probes = result.timeline.probes if result.timeline is not None else {}
    parts, met = [], True
    for name in (WEB, SQL):
        if name not in probes:
            continue
        after, before, expected = beyond_baseline(probes[name], inject)
        beyond = max(0, after - round(expected))
        met = met and beyond == 0
        parts.append(f"{name} {beyond} beyond the baseline ({after} failed after the fault, "
                     f"{before} before it)")
    return Target(f"{result.name}: 0 failed probes on both VIPs beyond the baseline", met,
                  "; ".join(parts) or "no VIP probed")
