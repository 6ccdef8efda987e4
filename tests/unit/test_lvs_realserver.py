"""Realserver setup against a fake /proc/sys and a fake ``lo``: order, idempotency, restore,
and the present / missing / different status."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackha.lvs.realserver import (
    DIFFERENT,
    MISSING,
    PRESENT,
    Realserver,
    RealserverError,
    RealserverState,
    healthy,
    sysctl_pieces,
    vip_piece,
    wanted_sysctls,
)

VIP = "10.0.0.200"


class FakeLoopback:
    def __init__(self, events: list[str]):
        self.addresses: list[tuple[str, int]] = [("127.0.0.1", 8)]
        self.events = events

    def list(self) -> list[tuple[str, int]]:
        return list(self.addresses)

    def add(self, vip: str) -> None:
        self.events.append(f"add {vip}")
        self.addresses.append((vip, 32))

    def remove(self, vip: str, prefixlen: int) -> None:
        self.events.append(f"del {vip}/{prefixlen}")
        self.addresses.remove((vip, prefixlen))


class Sysctls:
    def __init__(self, root: Path, events: list[str]):
        self.root = root
        for where in ("all", "lo", "eth0"):
            for name, value in (("arp_ignore", "0"), ("arp_announce", "1")):
                path = root / f"net/ipv4/conf/{where}/{name}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(f"{value}\n")
        self.events = events

    def get(self, where: str, name: str) -> str:
        return (self.root / f"net/ipv4/conf/{where}/{name}").read_text().strip()


@pytest.fixture
def setup(tmp_path: Path):
    events: list[str] = []
    sysctls = Sysctls(tmp_path / "proc", events)
    lo = FakeLoopback(events)
    realserver = Realserver(tmp_path / "state/realserver.json", lo, tmp_path / "proc")
    return realserver, lo, sysctls


def test_start_sets_arp_sysctls_on_all_and_the_interface_then_the_vip(setup):
    realserver, lo, sysctls = setup
    changes = realserver.start(VIP, "eth0")
    for where in ("all", "eth0"):
        assert sysctls.get(where, "arp_ignore") == "1"
        assert sysctls.get(where, "arp_announce") == "2"
    assert sysctls.get("lo", "arp_ignore") == "0"  # untouched
    assert (VIP, 32) in lo.addresses
    assert changes[-1] == f"added {VIP}/32 to lo"  # sysctls first, the VIP last
    assert healthy(realserver.status(VIP, "eth0"))


def test_start_is_idempotent_and_keeps_the_first_values(setup):
    realserver, lo, _sysctls = setup
    realserver.start(VIP, "eth0")
    assert realserver.start(VIP, "eth0") == []
    state = RealserverState.load(realserver.state_path)
    assert state.saved["net/ipv4/conf/all/arp_ignore"] == "0"
    assert state.saved["net/ipv4/conf/eth0/arp_announce"] == "1"
    assert lo.addresses.count((VIP, 32)) == 1


def test_stop_removes_the_vip_before_restoring_the_values_found(setup):
    realserver, lo, sysctls = setup
    realserver.start(VIP, "eth0")
    lo.events.clear()
    changes = realserver.stop(VIP)
    assert changes[0] == f"removed {VIP}/32 from lo"
    assert lo.events == [f"del {VIP}/32"]
    assert sysctls.get("all", "arp_ignore") == "0"
    assert sysctls.get("eth0", "arp_announce") == "1"
    assert not realserver.state_path.exists()
    assert realserver.stop(VIP) == []  # idempotent


def test_sysctls_stay_until_the_last_vip_goes(setup):
    realserver, _lo, sysctls = setup
    realserver.start(VIP, "eth0")
    realserver.start("10.0.0.201", "eth0")
    realserver.stop(VIP)
    assert sysctls.get("all", "arp_ignore") == "1"
    realserver.stop("10.0.0.201")
    assert sysctls.get("all", "arp_ignore") == "0"


def test_a_vip_with_a_wide_mask_is_replaced_by_a_32(setup):
    realserver, lo, _ = setup
    lo.addresses.append((VIP, 24))
    assert realserver.status(VIP, "eth0")[0].state == DIFFERENT
    realserver.start(VIP, "eth0")
    assert (VIP, 24) not in lo.addresses and (VIP, 32) in lo.addresses


def test_status_reports_drift(setup):
    realserver, lo, sysctls = setup
    realserver.start(VIP, "eth0")
    (sysctls.root / "net/ipv4/conf/eth0/arp_ignore").write_text("0\n")
    lo.addresses.remove((VIP, 32))
    pieces = {p.what: p for p in realserver.status(VIP, "eth0")}
    assert pieces[f"{VIP}/32 on lo"].state == MISSING
    assert pieces["net.ipv4.conf.eth0.arp_ignore"].state == DIFFERENT
    assert pieces["net.ipv4.conf.eth0.arp_ignore"].detail == "= 0, want 1"
    assert pieces["net.ipv4.conf.all.arp_announce"].state == PRESENT
    realserver.start(VIP, "eth0")  # start repairs drift
    assert healthy(realserver.status(VIP, "eth0"))


def test_an_unknown_interface_is_refused_before_anything_changes(setup):
    realserver, lo, sysctls = setup
    with pytest.raises(RealserverError, match="interface eth9: no sysctl"):
        realserver.start(VIP, "eth9")
    assert (VIP, 32) not in lo.addresses
    assert sysctls.get("all", "arp_ignore") == "0"


def test_a_corrupt_state_file_is_reported_with_its_path(tmp_path):
    path = tmp_path / "realserver.json"
    path.write_text("[1, 2")
    with pytest.raises(RealserverError, match=f"{path}: unreadable state file"):
        RealserverState.load(path)


def test_pure_comparisons():
    wanted = wanted_sysctls("eth0")
    assert set(wanted) == {"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce",
                           "net/ipv4/conf/eth0/arp_ignore", "net/ipv4/conf/eth0/arp_announce"}
    observed = dict(wanted)
    observed["net/ipv4/conf/eth0/arp_ignore"] = None
    states = [p.state for p in sysctl_pieces(wanted, observed)]
    assert states.count(PRESENT) == 3 and states.count(MISSING) == 1
    assert vip_piece(VIP, [(VIP, 32)]).state == PRESENT
    assert vip_piece(VIP, []).state == MISSING
