"""The nftables director engine: keep the forwarding table in line with realserver health.

Each realserver is a check on the agent's one scheduler (stackha.checks.scheduler, group
``lvs``): it probes them at the service's interval, each on its own (a blackholed realserver
delays no other check), and applies fall and rise; a realserver's first result decides at
once, so a fresh director neither starts empty nor forwards to one it has not seen answer.
This module decides what the verdicts mean: a thread of its own, woken by each change of
verdict and otherwise every ``ROUND_AT_LEAST`` seconds, resolves the MACs of the healthy
realservers (of all of them in panic: fewer than the service's ``panic_threshold`` percent
pass, see ``health.select``) and, when the rendered ruleset differs from the one loaded,
replaces the whole table in one ``nft -f`` transaction. It never removes the table when it
stops: losing the agent must not stop the forwarding. The thread survives any error of a
round (logged, retried next round), so it needs no outside supervisor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackha.checks.scheduler import Check, CheckScheduler, Verdict
from stackha.lvs.health import Selection, select
from stackha.lvs.neighbours import interface_mac, resolve_mac
from stackha.lvs.nft import NftError, nft_load
from stackha.lvs.nftrender import (
    Backend,
    ForwardingInput,
    render_removal,
    render_ruleset,
    service_key,
)
from stackha.model.spec import LvsService

log = logging.getLogger(__name__)

GROUP = "lvs"  # the scheduler's group of realserver checks
# A realserver without a first result after this long counts as down: its probe hangs to
# its timeout at most (1 s by default), so this is a probe that never got a worker.
FIRST_RESULTS_WAIT = 5.0


# A round without a change of verdict only looks for changed MACs (a realserver's host
# replaced under its address) and retries a failed load. At the lab's 0.5 s check interval
# those rounds took 0.16 of the director agent's 0.83 % of a core at idle (its threads' CPU
# in /proc, lab-idle); a change of verdict still starts one at once.
ROUND_AT_LEAST = 2.0

@dataclass(frozen=True)
class DirectedService:
    """``probe`` runs every check; ``login``, the costlier full check, every
    ``service.check_login_every``-th one (and while a realserver is not cleanly up)."""

    service: LvsService
    backends: tuple[Backend, ...]
    probe: Callable[[str], str | None]
    login: Callable[[str], str | None] | None = None


@dataclass(frozen=True)
class DirectorPlan:
    device: str
    services: tuple[DirectedService, ...]

    @property
    def interval(self) -> float:
        return min((s.service.check_interval for s in self.services), default=1.0)


def check_name(service: LvsService, backend: Backend) -> str:
    """The scheduler's name of one realserver's check: ``lvs:VIP:PORT/NAME``."""
    return f"{GROUP}:{service_key(service)}/{backend.name}"


def login_due(calls: int, every: int, verdict: Verdict | None) -> bool:
    """Whether a realserver's next check is the full login: the first one, every
    ``every``-th, and every check while it is not cleanly up. The last makes a login failure
    count like any other (a realserver that greets but refuses logins fails ``fall`` logins in
    a row and goes down) and lets only passing logins bring it back (pure)."""
    return calls % every == 0 or verdict is None or verdict.healthy is not True \
        or verdict.against > 0


class RealserverCheck:
    """One realserver's probe as the scheduler calls it: the greeting (or TCP connect), or
    the login when due. The scheduler runs at most one at a time per check."""

    def __init__(self, item: DirectedService, backend: Backend,
                 verdict: Callable[[], Verdict | None]):
        self.item, self.backend, self.verdict = item, backend, verdict
        self.calls = 0

    def __call__(self) -> str | None:
        check = self.item.probe
        if self.item.login is not None and login_due(
                self.calls, self.item.service.check_login_every, self.verdict()):
            check = self.item.login
        self.calls += 1
        return check(self.backend.address)


def selection(item: DirectedService, verdicts: Mapping[str, Verdict]) -> Selection:
    up = {b.name: v.healthy if (v := verdicts.get(check_name(item.service, b))) else None
          for b in item.backends}
    return select(item.backends, up, item.service.panic_threshold)


def state_document(plan: DirectorPlan, verdicts: Mapping[str, Verdict],
                   macs: dict[str, str]) -> dict[str, Any]:
    """What ``stackha lvs status`` shows next to the live table (pure)."""
    services = []
    for item in plan.services:
        chosen = selection(item, verdicts)
        rows = []
        for backend in item.backends:
            verdict = verdicts.get(check_name(item.service, backend))
            rows.append({"name": backend.name, "address": backend.address,
                         "weight": backend.weight,
                         "healthy": bool(verdict and verdict.healthy),
                         "forwarded": backend.name in chosen.forwarded,
                         "reason": "not checked yet" if verdict is None
                         else "" if verdict.healthy else verdict.reason,
                         "mac": macs.get(backend.name)})
        services.append({"vip": str(item.service.vip), "port": item.service.port,
                         "scheduler": item.service.scheduler,
                         "persistence_timeout": item.service.persistence_timeout,
                         "check": item.service.check, "panic": chosen.panic,
                         "panic_threshold": item.service.panic_threshold,
                         "realservers": rows})
    return {"engine": "nftables", "device": plan.device, "services": services}


class NftDirector:
    """``checks``: the agent's scheduler; without one the director makes and starts its own
    (a director alone, and the tests, which drive ``tick`` by hand)."""

    def __init__(self, state_path: Path, load: Callable[[str], None] = nft_load,
                 resolve: Callable[[str, str], str | None] = resolve_mac,
                 own_mac: Callable[[str], str | None] = interface_mac,
                 checks: CheckScheduler | None = None):
        self.state_path = state_path
        self._load = load
        self._resolve = resolve
        self._own_mac = own_mac
        self._own_checks = checks is None
        self.checks = checks if checks is not None else CheckScheduler(None)
        self._lock = threading.Lock()
        self._plan: DirectorPlan | None = None
        self._checked: DirectorPlan | None = None  # the plan whose checks are scheduled
        self._since = 0.0  # when those checks were scheduled
        self._macs: dict[str, str] = {}
        self._panic: set[str] = set()  # service keys in panic
        self._loaded: str | None = None
        self._written: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def configure(self, plan: DirectorPlan | None) -> None:
        """Take a new plan; None means this node forwards nothing through nftables."""
        with self._lock:
            self._plan = plan
        if plan is None:
            self.stop()
            self._schedule_checks(None)
            if self._loaded is not None or self.state_path.exists():
                self._load(render_removal())
                self._loaded = None
                self.state_path.unlink(missing_ok=True)
                log.info("event=lvs_ruleset_removed")
            return
        self._schedule_checks(plan)
        if self._own_checks:
            self.checks.start()
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="lvs-director", daemon=True)
            self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        """Stop checking; the forwarding table stays as it is."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.checks.configure([], GROUP)
        self._checked = None
        if self._own_checks:
            self.checks.stop()
            self.checks = CheckScheduler(None)  # a stopped scheduler does not start again

    def _schedule_checks(self, plan: DirectorPlan | None) -> None:
        if plan is not None and plan is self._checked:
            return
        checks = []
        for item in plan.services if plan is not None else ():
            for backend in item.backends:
                name = check_name(item.service, backend)
                probe = RealserverCheck(item, backend,
                                        lambda name=name: self.checks.verdict(name))
                checks.append(Check(name, probe, item.service.check_interval,
                                    item.service.check_fall, item.service.check_rise,
                                    initial=None))
        self.checks.configure(checks, GROUP, on_change=self._on_verdict)
        self._checked, self._since = plan, time.monotonic()

    def _on_verdict(self, name: str, verdict: Verdict) -> None:
        service, _, realserver = name.removeprefix(f"{GROUP}:").rpartition("/")
        log.info("event=realserver_%s service=%s realserver=%s reason=%r",
                 "up" if verdict.healthy else "down", service, realserver,
                 "" if verdict.healthy else verdict.reason)
        self._wake.set()

    def _run(self) -> None:
        log.info("event=lvs_director_started")
        while not self._stopping.is_set():
            interval = 1.0
            try:
                interval = self.render()
            except Exception as exc:  # one bad round must not end the forwarding upkeep
                log.warning("event=lvs_round_failed reason=%r", f"{type(exc).__name__}: {exc}")
            # Woken by a change of verdict; else once per interval, for the MACs.
            self._wake.wait(interval)
            self._wake.clear()
        log.info("event=lvs_director_stopped")

    def tick(self) -> float:
        """One round by hand (tests): probe every realserver once, now, then render."""
        with self._lock:
            plan = self._plan
        if plan is None:
            return 1.0
        self._schedule_checks(plan)
        self.checks.run_once(GROUP)
        return self.render()

    def render(self) -> float:
        """Judge from the verdicts, resolve MACs, load the table if it changed."""
        with self._lock:
            plan = self._plan
        if plan is None:
            return 1.0
        verdicts = self.checks.verdicts(GROUP)
        unknown = [name for name, v in verdicts.items() if v.healthy is None]
        if unknown and time.monotonic() - self._since < FIRST_RESULTS_WAIT:
            # Not before every realserver answered once: all unknown would read as panic.
            return plan.interval
        items = []
        for item in plan.services:
            chosen = selection(item, verdicts)
            self._note_panic(item.service, chosen)
            for backend in item.backends:
                if backend.name in chosen.forwarded:
                    self._refresh_mac(backend, plan.device)
            items.append(ForwardingInput(item.service, item.backends, chosen.forwarded))
        self._panic &= {service_key(item.service) for item in plan.services}
        own = self._own_mac(plan.device)
        if own is None:
            raise OSError(f"interface {plan.device}: not found or without a MAC")
        text = render_ruleset(plan.device, own, items, self._macs)
        if text != self._loaded:
            try:
                self._load(text)
            except NftError as exc:
                log.warning("event=lvs_ruleset_failed reason=%r", str(exc))
            else:
                self._loaded = text
                log.info("event=lvs_ruleset_loaded device=%s available=%s", plan.device,
                         ";".join(f"{service_key(i.service)}="
                                  f"{','.join(sorted(n for n in i.healthy if n in self._macs))}"
                                  for i in items))
        self._write_state(state_document(plan, verdicts, self._macs))
        return max(plan.interval, ROUND_AT_LEAST)

    def _note_panic(self, service: LvsService, chosen: Selection) -> None:
        key = service_key(service)
        if chosen.panic == (key in self._panic):
            return
        if chosen.panic:
            self._panic.add(key)
            log.warning("event=lvs_panic_enter service=%s healthy=%d realservers=%d "
                        "threshold=%d forwarding=all", key, chosen.healthy, chosen.counted,
                        service.panic_threshold)
        else:
            self._panic.discard(key)
            log.info("event=lvs_panic_exit service=%s healthy=%d realservers=%d", key,
                     chosen.healthy, chosen.counted)

    def _refresh_mac(self, backend: Backend, device: str) -> None:
        mac = self._resolve(backend.address, device)
        if mac is None:
            if backend.name not in self._macs:
                log.warning("event=realserver_mac_unknown realserver=%s address=%s",
                            backend.name, backend.address)
            return  # keep the last known MAC through a transient resolution failure
        if self._macs.get(backend.name) != mac:
            log.info("event=realserver_mac realserver=%s address=%s mac=%s", backend.name,
                     backend.address, mac)
            self._macs[backend.name] = mac

    def _write_state(self, document: dict[str, Any]) -> None:
        text = json.dumps(document, indent=1, sort_keys=True)
        if text == self._written:
            return
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(text)
        os.replace(tmp, self.state_path)
        self._written = text
