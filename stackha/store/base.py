"""The small interface the coordinator and the agent need from a configuration store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

MAX_VERSION_BYTES = 1_000_000
"""ZooKeeper refuses a znode or transaction near 1 MiB (jute.maxbuffer) and shows it only as
a lost connection, so versions are sized against a margin below it before writing."""


class StoreError(Exception):
    """The store could not do what was asked; the message says why in one line."""


class ConcurrentChange(StoreError):
    """Another coordinator moved the current version while this one was publishing."""


class VersionTooLarge(StoreError):
    pass


class ConfigStore(Protocol):
    def current_number(self) -> int | None: ...

    def read_version(self, number: int) -> bytes | None: ...

    def version_numbers(self) -> list[int]: ...

    def publish(self, document: Callable[[int], bytes], expected: int | None,
                mycat: Any = None) -> int: ...

    def put_status(self, node: str, data: bytes) -> None: ...

    def statuses(self) -> dict[str, bytes]: ...

    def status_of(self, node: str) -> bytes | None: ...

    def watch_current(self, callback: Callable[[int | None], None]) -> None: ...

    def close(self) -> None: ...
