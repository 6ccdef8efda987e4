"""What the agent calls for LVS-DR on every applied version: ``apply(spec, node)`` and
``stop()``.

- A node listed as a realserver of a service gets that service's VIP on ``lo`` and the ARP
  sysctls; VIPs it no longer serves are removed (and the sysctls restored with the last one).
- A director forwards its services with the nftables engine (realservers checked on the
  agent's scheduler) or leaves them to keepalived's IPVS ``virtual_server`` blocks (``uses_ipvs``).
- ``stop`` only stops the health checks: VIPs, sysctls and the forwarding table stay, so
  losing the agent does not take the service down.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from stackha.checks.scheduler import CheckScheduler
from stackha.lvs.engine import ipvs_available, realserver_services, services_by_engine
from stackha.lvs.loaddr import NetlinkLoopback
from stackha.lvs.realserver import Realserver, RealserverError
from stackha.model.spec import StackSpec

if TYPE_CHECKING:
    from stackha.lvs.director import DirectorPlan, NftDirector

log = logging.getLogger(__name__)

REALSERVER_STATE = "realserver.json"
DIRECTOR_STATE = "lvs-director.json"


@dataclass(frozen=True)
class LvsSettings:
    state_dir: Path
    interface: str | None = None  # overrides the spec's interface for this node
    mycat_password_file: Path | None = None
    ipvs: bool | None = None  # None: probe the kernel


def director_plan(spec: StackSpec, node: str, settings: LvsSettings,
                  ipvs_ok: bool) -> DirectorPlan | None:
    """The nftables engine's work on this node, or None when it has none (pure)."""
    me = spec.node(node)
    services = services_by_engine(spec, node, "nftables", ipvs_ok)
    if me is None or not services:
        return None
    # A director's code only: other nodes never load it (0.7 MiB resident with the
    # fractions and decimal modules the weights need, measured 2026-12-02).
    from stackha.lvs.director import DirectedService, DirectorPlan
    from stackha.lvs.health import Probe
    from stackha.lvs.nftrender import Backend

    directed = []
    for service in services:
        backends = tuple(Backend(name, str(found.address), service.weight(name))
                         for name in service.realservers
                         if (found := spec.node(name)) is not None)
        probe = Probe(service.check, service.port, service.check_timeout,
                      spec.health_check("mycat"), settings.mycat_password_file)
        directed.append(DirectedService(service, backends, probe,
                                        probe.login if service.check == "mycat" else None))
    return DirectorPlan(settings.interface or me.interface, tuple(directed))


class LvsNode:
    """``checks``: the agent's check scheduler, which probes the director's realservers."""

    def __init__(self, settings: LvsSettings, checks: CheckScheduler | None = None):
        self.settings = settings
        self.realserver = Realserver(settings.state_dir / REALSERVER_STATE, NetlinkLoopback())
        self._checks = checks
        self._director: NftDirector | None = None
        self._ipvs: bool | None = settings.ipvs

    @property
    def director(self) -> NftDirector:
        """Made on first use: a node that never directs never loads the director's code."""
        if self._director is None:
            from stackha.lvs.director import NftDirector

            self._director = NftDirector(self.settings.state_dir / DIRECTOR_STATE,
                                         checks=self._checks)
        return self._director

    def _directs(self, plan: DirectorPlan | None) -> bool:
        """The director has work: a plan, or a table it loaded before (its state file)."""
        return plan is not None or self._director is not None or \
            (self.settings.state_dir / DIRECTOR_STATE).exists()

    @property
    def ipvs_ok(self) -> bool:
        if self._ipvs is None:
            self._ipvs = ipvs_available()
            log.info("event=lvs_ipvs_probe available=%s", self._ipvs)
        return self._ipvs

    def uses_ipvs(self, spec: StackSpec, node: str) -> bool:
        """keepalived must render virtual_server blocks for this director."""
        return bool(services_by_engine(spec, node, "ipvs", self.ipvs_ok))

    def apply(self, spec: StackSpec, node: str) -> list[str]:
        """Bring this node's LVS-DR part in line with ``spec``; returns problems, never raises
        (a realserver problem must not block the rest of the version)."""
        problems = self._apply_realserver(spec, node)
        try:
            plan = director_plan(spec, node, self.settings, self.ipvs_ok)
            if self._directs(plan):
                self.director.configure(plan)
        except Exception as exc:
            problems.append(f"director: {type(exc).__name__}: {exc}")
        for problem in problems:
            log.warning("event=lvs_apply_problem node=%s reason=%r", node, problem)
        return problems

    def _apply_realserver(self, spec: StackSpec, node: str) -> list[str]:
        me = spec.node(node)
        if me is None:
            return []
        interface = self.settings.interface or me.interface
        problems = []
        wanted = {str(s.vip) for s in realserver_services(spec, node)}
        try:
            for vip in sorted(set(self.realserver.vips()) - wanted):
                self.realserver.stop(vip)
            for vip in sorted(wanted):
                self.realserver.start(vip, interface)
        except (RealserverError, OSError) as exc:
            problems.append(f"realserver: {exc}")
        return problems

    def stop(self) -> None:
        if self._director is not None:
            self._director.stop()
