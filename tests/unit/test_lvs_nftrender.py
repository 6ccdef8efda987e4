"""The nftables ruleset renderer, the slot table behind it and the engine choice."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter

import pytest

from stackha.lvs.engine import choose_engine, directed_services, services_by_engine
from stackha.lvs.nftrender import (
    SLOTS,
    Backend,
    ForwardingInput,
    render_removal,
    render_ruleset,
    service_seed,
    slot_owners,
)
from stackha.model.spec import LvsService, parse_spec
from tests.conftest import EXAMPLE_CONFIGS

BACKENDS = (Backend("mycat1", "10.0.0.31"), Backend("mycat2", "10.0.0.32"),
            Backend("mycat3", "10.0.0.33"))
MACS = {"mycat1": "02:00:00:00:00:31", "mycat2": "02:00:00:00:00:32",
        "mycat3": "02:00:00:00:00:33"}
ALL = frozenset(MACS)
OWN = "02:00:00:00:00:21"


def service(**changes) -> LvsService:
    base = {"vip": ipaddress.IPv4Address("10.0.0.200"), "port": 8066,
            "realservers": ("mycat1", "mycat2", "mycat3")}
    return LvsService(**{**base, **changes})


def elements(text: str) -> dict[int, str]:
    body = re.search(r"map \{ (.*?) \}", text)
    assert body, text
    return {int(k): v for k, v in (e.split(" : ") for e in body.group(1).split(", "))}


def test_all_healthy_share_the_slots_evenly():
    owners = slot_owners(BACKENDS, ALL)
    assert len(owners) == SLOTS
    assert Counter(owners) == {"mycat1": 40, "mycat2": 40, "mycat3": 40}


def test_a_failure_moves_only_the_failed_servers_slots():
    before = slot_owners(BACKENDS, ALL)
    after = slot_owners(BACKENDS, {"mycat1", "mycat3"})
    moved = [i for i in range(SLOTS) if before[i] != after[i]]
    assert moved and all(before[i] == "mycat2" for i in moved)
    assert "mycat2" not in after
    # the orphans spread over both survivors, not all onto one
    assert set(after[i] for i in moved) == {"mycat1", "mycat3"}
    # and coming back restores exactly the old table
    assert slot_owners(BACKENDS, ALL) == before


def test_weights_scale_the_share_and_nothing_left_means_no_table():
    weighted = (Backend("a", "10.0.0.1", 2), Backend("b", "10.0.0.2", 1))
    assert Counter(slot_owners(weighted, {"a", "b"})) == {"a": 80, "b": 40}
    assert slot_owners(BACKENDS, set()) == []
    assert slot_owners((Backend("a", "10.0.0.1", 0),), {"a"}) == []


def test_ruleset_forwards_only_vip_port_frames_addressed_to_this_host():
    text = render_ruleset("eth0", OWN, [ForwardingInput(service(), BACKENDS, ALL)], MACS)
    assert text.startswith("#")
    assert "add table netdev stackha_lvs\ndelete table netdev stackha_lvs\n" in text
    assert 'type filter hook ingress device "eth0" priority -500; policy accept;' in text
    rule = next(line.strip() for line in text.splitlines() if "fwd to" in line)
    assert rule.startswith("meta pkttype host ip daddr 10.0.0.200 tcp dport 8066 counter "
                           f"ether saddr set {OWN} ether daddr set jhash ")
    assert "jhash ip saddr . tcp sport . ip daddr . tcp dport mod 120 " in rule
    assert f"seed 0x{service_seed(service()):08x}" in rule
    assert rule.endswith('fwd to "eth0" comment "stackha 10.0.0.200:8066"')
    assert set(elements(rule).values()) == set(MACS.values())
    assert sorted(elements(rule)) == list(range(SLOTS))


@pytest.mark.parametrize("changes", [{"persistence_timeout": 300}, {"scheduler": "sh"}])
def test_persistence_hashes_the_source_address_only(changes):
    items = [ForwardingInput(service(**changes), BACKENDS, ALL)]
    text = render_ruleset("eth0", OWN, items, MACS)
    assert "jhash ip saddr mod 120 seed" in text


def test_seed_is_the_same_for_a_service_everywhere_and_differs_between_services():
    assert service_seed(service()) == service_seed(service())
    assert service_seed(service()) != service_seed(service(port=8067))


def test_unhealthy_or_unresolved_realservers_get_no_slot():
    macs = {k: v for k, v in MACS.items() if k != "mycat3"}
    text = render_ruleset("eth0", OWN, [ForwardingInput(service(), BACKENDS,
                                                   frozenset({"mycat1", "mycat3"}))], macs)
    assert set(elements(text).values()) == {MACS["mycat1"]}


def test_no_available_realserver_leaves_a_comment_not_a_rule():
    items = [ForwardingInput(service(), BACKENDS, frozenset())]
    text = render_ruleset("eth0", OWN, items, MACS)
    assert "fwd to" not in text
    assert "# 10.0.0.200:8066: no healthy realserver" in text


def test_rendering_is_deterministic():
    items = [ForwardingInput(service(), BACKENDS, ALL)]
    first = render_ruleset("eth0", OWN, items, MACS)
    assert first == render_ruleset("eth0", OWN, items, dict(MACS))


@pytest.mark.parametrize("device,own,macs,reason", [
    ('eth0"; flush ruleset', OWN, MACS, "not a valid interface name"),
    ("eth0", OWN, {"mycat1": "nonsense"}, "realserver mycat1: MAC 'nonsense'"),
    ("eth0", "02:00", MACS, "interface eth0: MAC '02:00'"),
])
def test_bad_input_is_refused_with_the_field_named(device, own, macs, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        render_ruleset(device, own, [ForwardingInput(service(), BACKENDS, ALL)], macs)


def test_removal_is_safe_when_no_table_exists():
    assert render_removal() == "add table netdev stackha_lvs\ndelete table netdev stackha_lvs\n"


def test_engine_choice():
    assert choose_engine("auto", True) == "ipvs"
    assert choose_engine("auto", False) == "nftables"
    assert choose_engine("nftables", True) == "nftables"
    assert choose_engine("ipvs", False) == "ipvs"


def test_only_directors_holding_the_vip_direct_the_service():
    spec, problems = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text())
    assert spec is not None, problems
    assert [str(s.vip) for s in directed_services(spec, "director1")] == ["10.77.0.200"]
    assert directed_services(spec, "nginx1") == ()
    assert directed_services(spec, "mycat1") == ()
    assert services_by_engine(spec, "director1", "nftables", ipvs_ok=False)
    assert not services_by_engine(spec, "director1", "nftables", ipvs_ok=True)
