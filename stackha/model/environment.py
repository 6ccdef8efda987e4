"""The environment stackha hands to the programs it starts (reload commands, keepalived and
the checks keepalived runs), without stackha's own credentials.

Credentials reach stackha through the environment (``{env: STACKHA_AGENT_CREDENTIAL}`` in the
spec); a reload command or a check script has no use for them, and a child that logs or leaks
its environment must not carry them. Other variables pass: the lab's reload script, for one,
starts mycat-standin with the backend password its container was given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

_SECRET_WORDS = ("CREDENTIAL", "PASSWORD", "PASSWD", "SECRET", "TOKEN", "KEY")
# Variables a credential was read from (stackha.store.credentials marks them): whatever their
# name, they stay with stackha.
_read_from: set[str] = set()


def mark_secret(name: str) -> None:
    _read_from.add(name)


def child_environment(env: Mapping[str, str], secret: Iterable[str] = ()) -> dict[str, str]:
    """``env`` less stackha's secrets: every STACKHA_ variable named like one, every variable
    a credential was read from, and ``secret``."""
    dropped = _read_from | set(secret)
    return {name: value for name, value in env.items()
            if name not in dropped
            and not (name.upper().startswith("STACKHA_")
                     and any(word in name.upper() for word in _SECRET_WORDS))}
