"""A realserver's MAC from the neighbour table (`ip -j neigh`) and the director's own MAC
from sysfs (stackha.lvs.neighbours): what the kernel says, and what it must not be taken as."""

from __future__ import annotations

import subprocess

import pytest

from stackha.lvs.neighbours import interface_mac, neighbour_mac, usable_mac

TABLE = [
    {"dst": "10.0.0.5", "dev": "eth0", "lladdr": "02:42:0A:00:00:05", "state": ["STALE"]},
    {"dst": "10.0.0.6", "dev": "eth0", "state": ["FAILED"]},
    {"dst": "10.0.0.7", "dev": "eth0", "lladdr": "02:42:0a:00:00:07", "state": ["INCOMPLETE"]},
    {"dst": "10.0.0.8", "dev": "eth0", "lladdr": "02:42:0a:00:00:08",
     "state": ["PERMANENT"]},
    {"dst": "10.0.0.9", "dev": "eth0", "lladdr": "not a mac", "state": ["REACHABLE"]},
    {"dst": "10.0.0.10", "lladdr": "02:42:0a:00:00:0a", "state": "REACHABLE"},
]


@pytest.mark.parametrize(("address", "mac"), [
    ("10.0.0.5", "02:42:0a:00:00:05"),   # stale is usable: the kernel re-probes it
    ("10.0.0.6", None),                  # failed: no address
    ("10.0.0.7", None),                  # incomplete: the address is not confirmed
    ("10.0.0.8", "02:42:0a:00:00:08"),
    ("10.0.0.9", None),                  # garbage in lladdr is not a MAC
    ("10.0.0.10", "02:42:0a:00:00:0a"),  # a state that is no list: no unusable state named
    ("10.0.0.99", None),
])
def test_the_neighbour_tables_usable_entries_only(address, mac):
    assert usable_mac(TABLE, address) == mac


def test_the_own_mac_comes_from_sysfs_and_a_hostile_device_name_reads_nothing(tmp_path):
    (tmp_path / "eth0").mkdir()
    (tmp_path / "eth0" / "address").write_text("02:42:0A:4D:00:15\n")
    (tmp_path / "bad0").mkdir()
    (tmp_path / "bad0" / "address").write_text("garbage\n")
    (tmp_path / "address").write_text("02:00:00:00:00:01\n")
    assert interface_mac("eth0", tmp_path) == "02:42:0a:4d:00:15"
    assert interface_mac("bad0", tmp_path) is None
    assert interface_mac("missing", tmp_path) is None
    for hostile in ("", ".", "..", "../etc", "eth0/../.."):
        assert interface_mac(hostile, tmp_path) is None


def test_the_kernels_own_files_read_as_the_director_reads_them():
    # The real sysfs and /proc/net/arp: loopback's MAC is all zeros, and it has no ARP
    # entries (the files exist and parse; a wrong path or format would fail here).
    assert interface_mac("lo") == "00:00:00:00:00:00"
    assert neighbour_mac("127.0.0.1", "lo") is None


def test_an_ipv6_realserver_is_looked_up_with_ip_neigh(monkeypatch):
    from stackha.lvs import neighbours

    asked: list[tuple[str, ...]] = []

    def ip_json(*args: str) -> list[dict[str, object]]:
        asked.append(args)
        return [{"dst": "fd00::5", "dev": "eth0", "lladdr": "02:42:0a:00:00:05",
                 "state": ["REACHABLE"]}]

    monkeypatch.setattr(neighbours, "ip_json", ip_json)
    assert neighbour_mac("fd00::5", "eth0") == "02:42:0a:00:00:05"
    assert asked == [("neigh", "show", "to", "fd00::5", "dev", "eth0")]

    def failing(*_args: str) -> list[dict[str, object]]:
        raise OSError("ip neigh show to fd00::5 dev eth9: Cannot find device \"eth9\"")

    monkeypatch.setattr(neighbours, "ip_json", failing)
    assert neighbour_mac("fd00::5", "eth9") is None  # the ARP probe decides then


ARP = """IP address       HW type     Flags       HW address            Mask     Device
10.0.0.5         0x1         0x2         02:42:0A:00:00:05     *        eth0
10.0.0.5         0x1         0x2         02:42:0a:00:00:55     *        eth1
10.0.0.6         0x1         0x0         00:00:00:00:00:00     *        eth0
10.0.0.7         0x1         0x6         02:42:0a:00:00:07     *        eth0
10.0.0.8         0x1         zz          02:42:0a:00:00:08     *        eth0
10.0.0.9         0x1         0x2         garbage               *        eth0
10.0.0.10 short line
"""


@pytest.mark.parametrize(("address", "device", "mac"), [
    ("10.0.0.5", "eth0", "02:42:0a:00:00:05"),
    ("10.0.0.5", "eth1", "02:42:0a:00:00:55"),  # the same address on another link
    ("10.0.0.6", "eth0", None),                 # incomplete
    ("10.0.0.7", "eth0", "02:42:0a:00:00:07"),  # a static entry
    ("10.0.0.8", "eth0", None),                 # flags that are no number
    ("10.0.0.9", "eth0", None),
    ("10.0.0.10", "eth0", None),
    ("10.0.0.5", "eth9", None),
])
def test_the_kernels_arp_table_resolved_entries_only(address, device, mac, tmp_path):
    from stackha.lvs.neighbours import arp_table_mac

    assert arp_table_mac(ARP, address, device) == mac
    (tmp_path / "arp").write_text(ARP)
    assert neighbour_mac(address, device, tmp_path / "arp") == mac


def test_a_director_round_starts_no_process_for_an_ipv4_realserver(monkeypatch, tmp_path):
    # Every round (each check interval) looks every forwarded realserver up: a fork per
    # realserver and round was 2 % of a core in the lab.
    def no_process(*_args, **_kwargs):
        raise AssertionError("a process was started for an IPv4 neighbour lookup")

    monkeypatch.setattr(subprocess, "run", no_process)
    monkeypatch.setattr(subprocess, "Popen", no_process)
    (tmp_path / "arp").write_text(ARP)
    assert neighbour_mac("10.0.0.5", "eth0", tmp_path / "arp") == "02:42:0a:00:00:05"
    assert neighbour_mac("not an address", "eth0", tmp_path / "arp") is None
