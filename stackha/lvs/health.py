"""Realserver health as the director judges it: the probes, and the panic threshold that
keeps a starved checker from emptying the pool (issue #16). Fall and rise are counted by the
agent's check scheduler (stackha.checks.scheduler): fall 2 by default, because with fall 1 a
loaded 2-CPU director took realservers out on single late checks and emptied the pool (17.4 s
of MySQL-VIP outage in one drill)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from stackha.checks.probes import check_mysql, check_mysql_greeting, check_tcp
from stackha.lvs.nftrender import Backend
from stackha.model.spec import HealthCheck


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
