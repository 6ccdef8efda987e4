"""The nftables director engine: health-check the realservers, keep the forwarding table.

A thread of its own probes every realserver each check interval, resolves the MACs of the
healthy ones (of all of them in panic: fewer than the service's ``panic_threshold`` percent
pass, see ``health.select``) and, when the rendered ruleset differs from the one loaded,
replaces the whole table in one ``nft -f`` transaction. It never removes the table when it
stops: losing the agent must not stop the forwarding. The same thread survives any error of a
round (logged, retried next interval), so it needs no outside supervisor.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackha.lvs.health import Selection, Verdict, select
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


def selection(item: DirectedService, verdicts: dict[tuple[str, str], Verdict]) -> Selection:
    key = service_key(item.service)
    up = {b.name: v.up if (v := verdicts.get((key, b.name))) else None for b in item.backends}
    return select(item.backends, up, item.service.panic_threshold)


def state_document(plan: DirectorPlan, verdicts: dict[tuple[str, str], Verdict],
                   macs: dict[str, str]) -> dict[str, Any]:
    """What ``stackha lvs status`` shows next to the live table (pure)."""
    services = []
    for item in plan.services:
        key = service_key(item.service)
        chosen = selection(item, verdicts)
        rows = []
        for backend in item.backends:
            verdict = verdicts.get((key, backend.name), Verdict())
            rows.append({"name": backend.name, "address": backend.address,
                         "weight": backend.weight, "healthy": bool(verdict.up),
                         "forwarded": backend.name in chosen.forwarded,
                         "reason": verdict.reason, "mac": macs.get(backend.name)})
        services.append({"vip": str(item.service.vip), "port": item.service.port,
                         "scheduler": item.service.scheduler,
                         "persistence_timeout": item.service.persistence_timeout,
                         "check": item.service.check, "panic": chosen.panic,
                         "panic_threshold": item.service.panic_threshold,
                         "realservers": rows})
    return {"engine": "nftables", "device": plan.device, "services": services}


class NftDirector:
    def __init__(self, state_path: Path, load: Callable[[str], None] = nft_load,
                 resolve: Callable[[str, str], str | None] = resolve_mac,
                 own_mac: Callable[[str], str | None] = interface_mac):
        self.state_path = state_path
        self._load = load
        self._resolve = resolve
        self._own_mac = own_mac
        self._lock = threading.Lock()
        self._plan: DirectorPlan | None = None
        self._verdicts: dict[tuple[str, str], Verdict] = {}
        self._macs: dict[str, str] = {}
        self._panic: set[str] = set()  # service keys in panic
        self._loaded: str | None = None
        self._written: str | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lvs-check")

    def configure(self, plan: DirectorPlan | None) -> None:
        """Take a new plan; None means this node forwards nothing through nftables."""
        with self._lock:
            self._plan = plan
        if plan is None:
            self.stop()
            if self._loaded is not None or self.state_path.exists():
                self._load(render_removal())
                self._loaded = None
                self.state_path.unlink(missing_ok=True)
                log.info("event=lvs_ruleset_removed")
            return
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

    def _run(self) -> None:
        log.info("event=lvs_director_started")
        while not self._stopping.is_set():
            started = time.monotonic()
            interval = 1.0
            try:
                interval = self.tick()
            except Exception as exc:  # one bad round must not end the forwarding upkeep
                log.warning("event=lvs_round_failed reason=%r", f"{type(exc).__name__}: {exc}")
            self._wake.wait(max(0.0, interval - (time.monotonic() - started)))
            self._wake.clear()
        log.info("event=lvs_director_stopped")

    def tick(self) -> float:
        """One round: probe, judge, resolve MACs, load the table if it changed."""
        with self._lock:
            plan = self._plan
        if plan is None:
            return 1.0
        jobs = {(service_key(item.service), b.name): (item, b)
                for item in plan.services for b in item.backends}
        futures = {}
        for key, (item, backend) in jobs.items():
            wanted = (item.service.check_fall, item.service.check_rise)
            verdict = self._verdicts.get(key)
            if verdict is None or (verdict.fall, verdict.rise) != wanted:
                verdict = self._verdicts[key] = Verdict(*wanted)
            check = item.probe
            if item.login is not None and verdict.login_due(item.service.check_login_every):
                check = item.login
            futures[key] = self._pool.submit(check, backend.address)
        for key, future in futures.items():
            verdict = self._verdicts[key]
            if verdict.record(future.result()):
                log.info("event=realserver_%s service=%s realserver=%s reason=%r",
                         "up" if verdict.up else "down", key[0], key[1], verdict.reason)
        for key in set(self._verdicts) - set(jobs):
            del self._verdicts[key]
        items = []
        for item in plan.services:
            chosen = selection(item, self._verdicts)
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
        self._write_state(state_document(plan, self._verdicts, self._macs))
        return plan.interval

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
