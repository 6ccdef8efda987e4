"""Reading and writing ``/proc/sys`` entries, named by their path below it.

Keys are slash paths (``net/ipv4/conf/eth0/arp_ignore``) so interface names with dots
(``eth0.100``) need no escaping.
"""

from __future__ import annotations

from pathlib import Path

PROC_SYS = Path("/proc/sys")


def conf_key(interface: str, name: str) -> str:
    return f"net/ipv4/conf/{interface}/{name}"


def read_sysctl(key: str, root: Path = PROC_SYS) -> str | None:
    """The value, or None when the entry does not exist (an interface that is gone)."""
    try:
        return (root / key).read_text().strip()
    except FileNotFoundError:
        return None


def write_sysctl(key: str, value: str, root: Path = PROC_SYS) -> None:
    (root / key).write_text(f"{value}\n")
