"""Realserver health as the director judges it: a probe per check, fall/rise counting, and
the panic threshold that keeps a starved checker from emptying the pool (issue #16)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackha.checks.probes import check_mysql, check_mysql_greeting, check_tcp
from stackha.lvs.nftrender import Backend
from stackha.model.spec import HealthCheck


@dataclass
class Verdict:
    """Up/down with hysteresis: ``fall`` failures in a row to go down, ``rise`` passes to
    come back. The first result decides at once, so a fresh director does not start empty.
    fall 2 by default: with fall 1 a loaded 2-CPU director took realservers out on single
    late checks and emptied the pool (issue #16, 17.4 s of MySQL-VIP outage in one drill)."""

    fall: int = 2
    rise: int = 2
    up: bool | None = None
    passes: int = 0
    failures: int = 0
    reason: str = "not checked yet"
    checks: int = 0

    def record(self, reason: str | None) -> bool:
        """Count one probe result (None = healthy); True when up/down changed."""
        before = self.up
        self.checks += 1
        if reason is None:
            self.passes, self.failures = self.passes + 1, 0
            self.reason = ""
            if self.up is None or (not self.up and self.passes >= self.rise):
                self.up = True
        else:
            self.failures, self.passes = self.failures + 1, 0
            self.reason = reason
            if self.up is None or (self.up and self.failures >= self.fall):
                self.up = False
        return self.up != before

    def login_due(self, every: int) -> bool:
        """Whether the next check is the full login: the first one, every ``every``-th, and
        every check while the realserver is not cleanly up. The last makes a login failure
        count like any other (a realserver that greets but refuses logins fails ``fall``
        logins in a row and goes down) and lets only passing logins bring it back."""
        return self.checks % every == 0 or self.up is not True or self.failures > 0


@dataclass(frozen=True)
class Selection:
    """Which realservers of one service get traffic this round."""

    forwarded: frozenset[str]
    healthy: int  # realservers that pass, among those counted
    counted: int  # realservers meant to carry traffic (weight > 0)
    panic: bool


def select(backends: Sequence[Backend], up: Mapping[str, bool | None],
           threshold: int) -> Selection:
    """Forward to the healthy realservers, or, as Envoy's panic mode does, to all of them
    when fewer than ``threshold`` percent pass: so many failing together is more likely a
    starved checker than the realservers, and sending to some that may be down beats
    sending everything to the few left (or to none). Quiesced (weight 0) realservers carry
    no traffic either way and do not count. ``threshold`` 0 never panics (pure)."""
    healthy = frozenset(b.name for b in backends if up.get(b.name))
    counted = [b for b in backends if b.weight > 0]
    passing = sum(1 for b in counted if b.name in healthy)
    panic = bool(counted) and passing * 100 < threshold * len(counted)
    forwarded = frozenset(b.name for b in backends) if panic else healthy
    return Selection(forwarded, passing, len(counted), panic)


@dataclass(frozen=True)
class Probe:
    """How one service's realservers are checked: ``tcp`` connect, or for ``mycat`` the MySQL
    greeting every check (``__call__``) and a full login now and then (``login``)."""

    kind: str
    port: int
    timeout: float
    mycat: HealthCheck | None = None
    password_file: Path | None = None

    def __call__(self, address: str) -> str | None:
        if self.kind != "mycat":
            return check_tcp(address, self.port, self.timeout)
        return check_mysql_greeting(address, self.port, self.timeout) or self._manager(address)

    def login(self, address: str) -> str | None:
        """The full check: a login and ``select 1`` when a user and password are set."""
        if not (self.kind == "mycat" and self.mycat and self.mycat.user and self.password_file):
            return self(address)
        try:
            password = self.password_file.read_text().strip()
        except OSError as exc:
            return f"cannot read {self.password_file}: {exc.strerror}"
        return (check_mysql(address, self.port, self.mycat.user, password, self.timeout)
                or self._manager(address))

    def _manager(self, address: str) -> str | None:
        if self.mycat and self.mycat.manager_port:
            return check_tcp(address, self.mycat.manager_port, self.timeout)
        return None
