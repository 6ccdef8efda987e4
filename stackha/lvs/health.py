"""Realserver health as the director judges it: a probe per check, and fall/rise counting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackha.checks.probes import check_mysql, check_tcp
from stackha.model.spec import HealthCheck


@dataclass
class Verdict:
    """Up/down with hysteresis: ``fall`` failures in a row to go down, ``rise`` passes to
    come back. The first result decides at once, so a fresh director does not start empty."""

    fall: int = 1
    rise: int = 2
    up: bool | None = None
    passes: int = 0
    failures: int = 0
    reason: str = "not checked yet"

    def record(self, reason: str | None) -> bool:
        """Count one probe result (None = healthy); True when up/down changed."""
        before = self.up
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


@dataclass(frozen=True)
class Probe:
    """How one service's realservers are checked: ``tcp`` connect or a ``mycat`` login."""

    kind: str
    port: int
    timeout: float
    mycat: HealthCheck | None = None
    password_file: Path | None = None

    def __call__(self, address: str) -> str | None:
        reason = self._main(address)
        if reason is None and self.kind == "mycat" and self.mycat and self.mycat.manager_port:
            reason = check_tcp(address, self.mycat.manager_port, self.timeout)
        return reason

    def _main(self, address: str) -> str | None:
        if self.kind == "mycat" and self.mycat and self.mycat.user and self.password_file:
            try:
                password = self.password_file.read_text().strip()
            except OSError as exc:
                return f"cannot read {self.password_file}: {exc.strerror}"
            return check_mysql(address, self.port, self.mycat.user, password, self.timeout)
        return check_tcp(address, self.port, self.timeout)
