"""The realserver side of LVS-DR: the VIP as a /32 on ``lo`` and ARP kept quiet about it.

``arp_ignore=1`` (answer ARP only for addresses on the receiving interface) and
``arp_announce=2`` (never use the VIP as ARP source) go on ``all`` and on the facing
interface: the kernel takes the larger of the two, so setting only one does nothing.

Order: sysctls before the VIP on ``start``; VIP removed before the sysctls are restored on
``stop``. The values found before the first ``start`` are kept in a small JSON state file and
put back when the last VIP is stopped. Everything is idempotent.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from stackha.lvs.sysctl import PROC_SYS, conf_key, read_sysctl, write_sysctl

log = logging.getLogger(__name__)

ARP_SETTINGS = (("arp_ignore", "1"), ("arp_announce", "2"))
PRESENT, MISSING, DIFFERENT = "present", "missing", "different"


class RealserverError(Exception):
    """A one-line reason the realserver could not be set up or torn down."""


class LoopbackAddresses(Protocol):
    def list(self) -> list[tuple[str, int]]: ...

    def add(self, vip: str) -> None: ...

    def remove(self, vip: str, prefixlen: int) -> None: ...


@dataclass(frozen=True)
class Piece:
    """One part of the realserver setup and how the system compares with what is wanted."""

    what: str
    state: str
    detail: str = ""


def wanted_sysctls(interface: str) -> dict[str, str]:
    return {conf_key(where, name): value
            for where in ("all", interface) for name, value in ARP_SETTINGS}


def sysctl_pieces(wanted: Mapping[str, str], observed: Mapping[str, str | None]) -> list[Piece]:
    pieces = []
    for key, value in wanted.items():
        seen = observed.get(key)
        what = key.replace("/", ".")
        if seen is None:
            pieces.append(Piece(what, MISSING, "no such entry (interface gone?)"))
        elif seen == value:
            pieces.append(Piece(what, PRESENT, f"= {value}"))
        else:
            pieces.append(Piece(what, DIFFERENT, f"= {seen}, want {value}"))
    return pieces


def vip_piece(vip: str, addresses: list[tuple[str, int]]) -> Piece:
    prefixes = [p for a, p in addresses if a == vip]
    what = f"{vip}/32 on lo"
    if 32 in prefixes:
        return Piece(what, PRESENT)
    if prefixes:
        return Piece(what, DIFFERENT, f"on lo as /{prefixes[0]}, want /32")
    return Piece(what, MISSING)


def healthy(pieces: list[Piece]) -> bool:
    return all(p.state == PRESENT for p in pieces)


@dataclass
class RealserverState:
    """What ``start`` changed: sysctl values found before, and the VIPs set up (VIP -> if)."""

    saved: dict[str, str] = field(default_factory=dict)
    vips: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> RealserverState:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise RealserverError(f"{path}: unreadable state file: {exc}") from exc
        if not isinstance(data, dict):
            raise RealserverError(f"{path}: state file must hold a JSON object")
        saved, vips = data.get("saved", {}), data.get("vips", {})
        if not isinstance(saved, dict) or not isinstance(vips, dict):
            raise RealserverError(f"{path}: 'saved' and 'vips' must be JSON objects")
        return cls({str(k): str(v) for k, v in saved.items()},
                   {str(k): str(v) for k, v in vips.items()})

    def save(self, path: Path) -> None:
        if not self.vips and not self.saved:
            path.unlink(missing_ok=True)
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            json.dump({"saved": self.saved, "vips": self.vips}, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)


class Realserver:
    def __init__(self, state_path: Path, addresses: LoopbackAddresses,
                 sysctl_root: Path = PROC_SYS):
        self.state_path = state_path
        self.addresses = addresses
        self.root = sysctl_root

    def vips(self) -> dict[str, str]:
        return dict(RealserverState.load(self.state_path).vips)

    def start(self, vip: str, interface: str) -> list[str]:
        """Set the sysctls, then the VIP; returns what was changed (empty: already done)."""
        wanted = wanted_sysctls(interface)
        state = RealserverState.load(self.state_path)
        current = {key: read_sysctl(key, self.root) for key in wanted}
        for key, value in current.items():
            if value is None:
                raise RealserverError(f"interface {interface}: no sysctl {key} "
                                      "(no such interface)")
            state.saved.setdefault(key, value)
        state.vips[vip] = interface
        # Recorded before anything changes, so a crash half-way can still be undone.
        state.save(self.state_path)
        changed = []
        for key, value in wanted.items():
            if current[key] != value:
                write_sysctl(key, value, self.root)
                changed.append(f"{key}={value}")
        prefixes = [p for a, p in self.addresses.list() if a == vip]
        for prefix in prefixes:
            if prefix != 32:
                self.addresses.remove(vip, prefix)
                changed.append(f"removed {vip}/{prefix} from lo")
        if 32 not in prefixes:
            self.addresses.add(vip)
            changed.append(f"added {vip}/32 to lo")
        for change in changed:
            log.info("event=realserver_change vip=%s change=%r", vip, change)
        return changed

    def stop(self, vip: str) -> list[str]:
        """Remove the VIP, and restore the sysctls once no VIP is left; idempotent."""
        state = RealserverState.load(self.state_path)
        changed = []
        if any(a == vip and p == 32 for a, p in self.addresses.list()):
            self.addresses.remove(vip, 32)
            changed.append(f"removed {vip}/32 from lo")
        state.vips.pop(vip, None)
        if not state.vips:
            for key, value in sorted(state.saved.items()):
                current = read_sysctl(key, self.root)
                if current is not None and current != value:
                    write_sysctl(key, value, self.root)
                    changed.append(f"{key}={value} (restored)")
            state.saved.clear()
        state.save(self.state_path)
        for change in changed:
            log.info("event=realserver_change vip=%s change=%r", vip, change)
        return changed

    def status(self, vip: str, interface: str) -> list[Piece]:
        wanted = wanted_sysctls(interface)
        observed = {key: read_sysctl(key, self.root) for key in wanted}
        return [vip_piece(vip, self.addresses.list()), *sysctl_pieces(wanted, observed)]
