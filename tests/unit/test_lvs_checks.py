"""The director's check settings in the spec, fall/rise counting and the panic threshold
(issue #16: one failed check per realserver emptied the pool on a starved director)."""

from __future__ import annotations

import ipaddress
import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from stackha.lvs.director import DirectedService, DirectorPlan, NftDirector
from stackha.lvs.health import Probe, select
from stackha.lvs.nftrender import Backend
from stackha.lvs.node import LvsSettings, director_plan
from stackha.lvs.status import LiveRule, as_json, nft_view, render_table
from stackha.model.problems import errors
from stackha.model.spec import LvsService, parse_spec
from tests.conftest import EXAMPLE_CONFIGS
from tests.unit.test_lvs_greeting import greeting, serving

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def with_service_keys(extra: str) -> str:
    return EXAMPLE.replace("    check_interval: 0.5\n", f"    check_interval: 0.5\n{extra}", 1)


def test_director_checks_default_to_fall_2_rise_2_login_every_10_panic_below_50():
    spec, problems = parse_spec(EXAMPLE, "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    service = spec.lvs_services[0]
    assert (service.check_fall, service.check_rise) == (2, 2)
    assert service.check_login_every == 10
    assert service.panic_threshold == 50


def test_director_check_settings_can_be_raised():
    spec, problems = parse_spec(with_service_keys(
        "    check_fall: 3\n    check_rise: 5\n    check_login_every: 1\n"
        "    panic_threshold: 0\n"), "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    service = spec.lvs_services[0]
    assert (service.check_fall, service.check_rise, service.check_login_every,
            service.panic_threshold) == (3, 5, 1, 0)


@pytest.mark.parametrize("key,value", [("check_fall", 1), ("check_rise", 1),
                                       ("check_fall", 0), ("check_login_every", 0),
                                       ("panic_threshold", 101), ("panic_threshold", -1)])
def test_too_low_or_out_of_range_is_one_error_naming_the_field(key, value):
    spec, problems = parse_spec(with_service_keys(f"    {key}: {value}\n"), "stackha.yaml")
    assert spec is None
    [problem] = errors(problems)
    line = str(problem)
    assert "\n" not in line and f"lvs_services[0].{key}" in line, line
    if key in ("check_fall", "check_rise"):
        assert "at least 2" in line, line


# -- fall/rise and panic, on fake probes and a fake nft ----------------------------------------

ADDRESSES = {"mycat1": "10.0.0.31", "mycat2": "10.0.0.32", "mycat3": "10.0.0.33"}
MAC_OF = {address: f"02:00:00:00:00:{address[-2:]}" for address in ADDRESSES.values()}


class Probes:
    """Fake realservers: ``down`` fail the cheap check, ``bad_login`` only the login; every
    call is recorded."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.bad_login: set[str] = set()
        self.calls: list[tuple[str, str]] = []

    def quick(self, address: str) -> str | None:
        self.calls.append(("quick", address))
        return "refused" if address in self.down else None

    def login(self, address: str) -> str | None:
        self.calls.append(("login", address))
        if address in self.down:
            return "refused"
        return "login as app failed: Access denied" if address in self.bad_login else None


def lvs_director(tmp_path: Path, probes: Probes, *, login_every: int = 10,
                 panic_threshold: int = 50, fall: int = 2, rise: int = 2,
                 weights: tuple[int, ...] = ()) -> tuple[NftDirector, list[str]]:
    loaded: list[str] = []
    service = LvsService(ipaddress.IPv4Address("10.0.0.200"), 8066, tuple(ADDRESSES),
                         check="mycat", check_fall=fall, check_rise=rise, weights=weights,
                         check_login_every=login_every, panic_threshold=panic_threshold)
    backends = tuple(Backend(name, address, service.weight(name))
                     for name, address in ADDRESSES.items())
    director = NftDirector(tmp_path / "lvs-director.json", load=loaded.append,
                           resolve=lambda address, _dev: MAC_OF.get(address),
                           own_mac=lambda _dev: "02:00:00:00:00:21")
    director._plan = DirectorPlan("eth0", (DirectedService(service, backends, probes.quick,
                                                           probes.login),))
    return director, loaded


def forwarded(loaded: list[str]) -> set[str]:
    """The realservers the last loaded ruleset sends to."""
    return {name for name, address in ADDRESSES.items() if MAC_OF[address] in loaded[-1]}


def state(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "lvs-director.json").read_text())["services"][0]


def test_one_late_check_per_realserver_never_shrinks_the_pool(tmp_path):
    """The starved checker of issue #16: every realserver misses a check now and then, never
    twice running. With fall 1 each miss took one out."""
    probes = Probes()
    director, loaded = lvs_director(tmp_path, probes)
    director.tick()
    for name in (*ADDRESSES, *ADDRESSES):
        probes.down = {ADDRESSES[name]}
        director.tick()
        probes.down = set()
        director.tick()
        assert forwarded(loaded) == set(ADDRESSES), name
    assert len(loaded) == 1


def test_two_failures_in_a_row_take_one_out_and_two_passes_bring_it_back(tmp_path):
    probes = Probes()
    director, loaded = lvs_director(tmp_path, probes)
    director.tick()
    probes.down = {ADDRESSES["mycat2"]}
    director.tick()
    assert forwarded(loaded) == set(ADDRESSES)
    director.tick()
    assert forwarded(loaded) == {"mycat1", "mycat3"}  # 2 of 3 healthy: no panic
    assert state(tmp_path)["panic"] is False
    probes.down = set()
    director.tick()
    assert forwarded(loaded) == {"mycat1", "mycat3"}
    director.tick()
    assert forwarded(loaded) == set(ADDRESSES)


def test_checks_read_the_greeting_and_log_in_every_nth_time(tmp_path):
    probes = Probes()
    director, _ = lvs_director(tmp_path, probes, login_every=4)
    for _ in range(8):
        director.tick()
    mycat1 = [kind for kind, address in probes.calls if address == ADDRESSES["mycat1"]]
    # the first check logs in (a fresh director trusts nothing less), then every 4th
    assert mycat1 == ["login", "quick", "quick", "quick"] * 2


def test_a_failed_login_counts_and_is_retried_until_it_passes(tmp_path):
    """A MyCat that greets but refuses logins must go down: after a failed login every check
    logs in, so fall counts logins in a row, and rise needs passing logins."""
    probes = Probes()
    director, loaded = lvs_director(tmp_path, probes, login_every=3)
    for _ in range(3):
        director.tick()
    probes.bad_login = {ADDRESSES["mycat3"]}
    director.tick()  # the 4th check logs in and fails
    assert forwarded(loaded) == set(ADDRESSES)
    director.tick()
    assert forwarded(loaded) == {"mycat1", "mycat2"}
    assert "Access denied" in {r["name"]: r for r in state(tmp_path)["realservers"]}[
        "mycat3"]["reason"]
    for _ in range(4):
        director.tick()
    assert forwarded(loaded) == {"mycat1", "mycat2"}  # greeting fine, login still refused
    probes.bad_login = set()
    director.tick()
    director.tick()
    assert forwarded(loaded) == set(ADDRESSES)
    mycat3 = [kind for kind, address in probes.calls if address == ADDRESSES["mycat3"]]
    assert mycat3[3:] == ["login"] * 8 and mycat3.count("quick") == 2


def test_panic_keeps_every_realserver_when_fewer_than_half_pass(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="stackha.lvs.director")
    probes = Probes()
    director, loaded = lvs_director(tmp_path, probes)
    director.tick()
    probes.down = {ADDRESSES["mycat2"], ADDRESSES["mycat3"]}
    director.tick()
    director.tick()
    director.tick()
    # both are judged down, yet all three stay in the forwarding set
    rows = {r["name"]: r for r in state(tmp_path)["realservers"]}
    assert [rows[n]["healthy"] for n in ADDRESSES] == [True, False, False]
    assert forwarded(loaded) == set(ADDRESSES)
    assert state(tmp_path)["panic"] is True
    assert ("event=lvs_panic_enter service=10.0.0.200:8066 healthy=1 realservers=3 "
            "threshold=50") in caplog.text
    probes.down = {ADDRESSES["mycat3"]}
    director.tick()
    director.tick()  # rise 2: mycat2 is back, 2 of 3 pass, panic ends
    assert state(tmp_path)["panic"] is False
    assert "event=lvs_panic_exit service=10.0.0.200:8066 healthy=2 realservers=3" in caplog.text
    assert forwarded(loaded) == {"mycat1", "mycat2"}  # normal selection again
    assert caplog.text.count("event=lvs_panic_") == 2


def test_panic_when_every_realserver_fails_and_never_when_turned_off(tmp_path):
    probes = Probes()
    probes.down = set(ADDRESSES.values())
    director, loaded = lvs_director(tmp_path, probes)
    director.tick()
    assert forwarded(loaded) == set(ADDRESSES) and state(tmp_path)["panic"] is True
    off, off_loaded = lvs_director(tmp_path / "off", probes, panic_threshold=0)
    off.tick()
    assert not off_loaded or forwarded(off_loaded) == set()
    assert state(tmp_path / "off")["panic"] is False


@pytest.mark.parametrize("up,threshold,weights,panic", [
    ({"a": True, "b": True, "c": False}, 50, (1, 1, 1), False),   # 67% pass
    ({"a": True, "b": False, "c": False}, 50, (1, 1, 1), True),   # 33%
    ({"a": True, "b": True, "c": False, "d": False}, 50, (1, 1, 1, 1), False),  # 50% is enough
    ({"a": True, "b": True, "c": False, "d": False}, 51, (1, 1, 1, 1), True),
    ({"a": False, "b": False, "c": False}, 0, (1, 1, 1), False),  # 0: off
    ({"a": True, "b": False, "c": False}, 50, (1, 1, 0), False),  # c quiesced: 1 of 2
    ({"a": True, "b": None, "c": True}, 100, (1, 1, 1), True),     # unchecked is not healthy
])
def test_selection_panics_below_the_threshold_share(up, threshold, weights, panic):
    backends = tuple(Backend(name, f"10.0.0.{index}", weight)
                     for index, (name, weight) in enumerate(zip(up, weights, strict=True)))
    chosen = select(backends, up, threshold)
    assert chosen.panic is panic
    expected = set(up) if panic else {n for n, ok in up.items() if ok}
    assert chosen.forwarded == expected


def test_lvs_status_shows_panic(tmp_path):
    probes = Probes()
    probes.down = {ADDRESSES["mycat2"], ADDRESSES["mycat3"]}
    director, _ = lvs_director(tmp_path, probes)
    director.tick()
    document = json.loads((tmp_path / "lvs-director.json").read_text())
    live = [LiveRule("10.0.0.200", 8066, "eth0", "connection", 7,
                     {mac: 40 for mac in MAC_OF.values()})]
    [view] = nft_view(live, document)
    assert view.panic
    text = render_table([view])
    assert "PANIC: 1 of 3 realservers healthy, forwarding to all" in text.splitlines()[2]
    assert as_json([view])[0]["panic"] is True
    [calm] = nft_view(live, {"services": [{**document["services"][0], "panic": False}]})
    assert "PANIC" not in render_table([calm])


def test_mycat_services_greet_every_check_and_log_in_with_the_plan(tmp_path):
    spec, _ = parse_spec(EXAMPLE.replace("engine: auto", "engine: nftables"), "stackha.yaml")
    assert spec is not None
    plan = director_plan(spec, "director1", LvsSettings(tmp_path), ipvs_ok=False)
    assert plan is not None and plan.services[0].login is not None
    tcp, _ = parse_spec(EXAMPLE.replace("engine: auto", "engine: nftables")
                        .replace("check: mycat", "check: tcp"), "stackha.yaml")
    assert tcp is not None
    tcp_plan = director_plan(tcp, "director1", LvsSettings(tmp_path), ipvs_ok=False)
    assert tcp_plan is not None and tcp_plan.services[0].login is None
    probe = Probe("mycat", 0, 1.0)
    with serving(greeting()) as port:
        assert replace(probe, port=port)("127.0.0.1") is None
    with serving(b"mycat2\n") as port:  # a TCP connect alone would have passed this
        assert "not a MySQL greeting" in (replace(probe, port=port)("127.0.0.1") or "")
