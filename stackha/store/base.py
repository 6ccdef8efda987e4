"""The small interface the coordinator and the agent need from a configuration store.

Everything a store hands out is a value object of ``stackha.model`` (versions, node statuses);
every failure of the client library underneath is a ``StoreError``; connection changes are the
three ``ConnectionState`` strings. Nothing above ``stackha.store`` sees the client library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from stackha.model.bundle import ConfigVersion
from stackha.model.problems import Problem
from stackha.model.status import NodeStatus

MAX_VERSION_BYTES = 1_000_000
"""ZooKeeper refuses a znode or transaction near 1 MiB (jute.maxbuffer) and shows it only as
a lost connection, so versions are sized against a margin below it before writing."""


class StoreError(Exception):
    """The store could not do what was asked; the message says why in one line."""


class ConcurrentChange(StoreError):
    """Another coordinator moved the current version while this one was publishing."""


class VersionTooLarge(StoreError):
    pass


class VersionUnreadable(StoreError):
    """A version node exists but does not hold a valid version document."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


@dataclass(frozen=True)
class CurrentPointer:
    """What the current-version node holds, read as it is (damage included)."""

    location: str              # where it lives in the store, to name it in reports
    number: int | None         # None: nothing published yet, or unreadable (see damage)
    revision: int | None       # the node's own version, to guard a change; None: no node
    damage: str = ""           # one line when the node holds no version number


class ConnectionState:
    """What a connection listener is told (the same words ZooKeeper clients use)."""

    CONNECTED = "CONNECTED"
    SUSPENDED = "SUSPENDED"  # connection lost, session may live: change nothing
    LOST = "LOST"            # session gone: ephemeral nodes are gone


class ConfigStore(Protocol):
    def current_number(self) -> int | None: ...

    def read_version(self, number: int) -> ConfigVersion | None: ...

    def version_numbers(self) -> list[int]: ...

    def current_pointer(self) -> CurrentPointer: ...

    def version_location(self, number: int) -> str: ...

    def set_current(self, number: int, expected: CurrentPointer) -> None: ...

    def publish(self, document: Callable[[int], bytes], expected: int | None,
                mycat: Any = None) -> int: ...

    def put_status(self, status: NodeStatus) -> None: ...

    def statuses(self) -> dict[str, NodeStatus]: ...

    def status_of(self, node: str) -> NodeStatus | None: ...

    def watch_current(self, callback: Callable[[int | None], None]) -> None: ...

    def close(self) -> None: ...
