"""What validation finds: one immutable record per finding, printed as one line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """A finding about one place in one file.

    ``where`` is whatever locates it best: ``line 12``, a field path such as
    ``vrrp_groups[0].members.nginx3`` or an element such as ``dataHost[name=dh1]``.
    """

    file: str
    where: str
    reason: str
    severity: str = ERROR

    def __str__(self) -> str:
        prefix = "warning: " if self.severity == WARNING else ""
        location = f"{self.file}: {self.where}" if self.where else self.file
        return f"{prefix}{location}: {self.reason}"

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR


def errors(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if p.is_error]


def warnings(problems: Iterable[Problem]) -> list[Problem]:
    return [p for p in problems if not p.is_error]
