"""Every scenario of `stackha drill`, in the order they run by default."""

from __future__ import annotations

from stackha.lab.drill.agentops import AgentRestarted, DirectorAgentRestarted, Switchover
from stackha.lab.drill.badconfig import BadConfigRejected, BadConfigRolledBack
from stackha.lab.drill.faults import (
    AgentStopped,
    DirectorKilled,
    NginxMasterKilled,
    NginxProcessStopped,
    NodeCut,
    RealserverKilled,
    ZkLeaderKilled,
    ZkOutage,
)
from stackha.lab.drill.scenario import Context, DrillOptions, NotRun, Scenario

__all__ = ["SCENARIOS", "Context", "DrillOptions", "NotRun", "Scenario", "by_name"]

SCENARIOS: tuple[Scenario, ...] = (
    NginxMasterKilled(), NginxProcessStopped(), AgentStopped(), DirectorKilled(),
    RealserverKilled(), ZkLeaderKilled(), ZkOutage(), NodeCut(), BadConfigRejected(),
    BadConfigRolledBack(), AgentRestarted(), DirectorAgentRestarted(), Switchover(),
)


def by_name(names: list[str] | None) -> list[Scenario]:
    """The scenarios named (in the order given), or all of them; KeyError names the unknown."""
    if not names:
        return list(SCENARIOS)
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KeyError(", ".join(unknown))
    return [known[n] for n in names]
