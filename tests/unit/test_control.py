"""Switchover and maintenance: the pure decisions (stackha.model.control), the rendered
track files, the connection count of a drain, canary selection and the status view."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from stackha.agent.drain import count_established, served_ports
from stackha.keepalived.render import render_keepalived
from stackha.lvs.node import LvsSettings, director_plan
from stackha.model.cluster import TIME_FORMAT, ClusterView
from stackha.model.control import (
    Maintenance,
    Refused,
    SwitchoverRequest,
    choose_switchover_target,
    drained_spec,
    maintenance_refusal,
    parse_maintenance,
    parse_switchover,
    preferred_value,
    switchover_weight,
)
from stackha.model.rollout import choose_canaries
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus, parse_status
from tests.conftest import EXAMPLE_CONFIGS

SPEC, _ = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text(), "stackha.yaml")
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def status(node: str, vrrp: dict[str, str], health: dict[str, str] | None = None,
           age: float = 0.0, **fields) -> NodeStatus:
    beat = (NOW - timedelta(seconds=age)).strftime(TIME_FORMAT)
    return NodeStatus(node=node, vrrp=MappingProxyType(vrrp),
                      health=MappingProxyType(health if health is not None else {"nginx": "ok"}),
                      heartbeat=beat, heartbeat_interval=1.0, canary_capable=True, **fields)


def view(*statuses: NodeStatus) -> ClusterView:
    return ClusterView.of(SPEC, 1, {s.node: s for s in statuses}, NOW)


HEALTHY = (status("nginx1", {"web": "MASTER"}), status("nginx2", {"web": "BACKUP"}))


def test_a_switchover_goes_to_the_named_healthy_member():
    assert choose_switchover_target(SPEC, view(*HEALTHY), "web", "nginx2", {}) == "nginx2"


def test_without_to_the_best_eligible_non_master_is_chosen():
    assert choose_switchover_target(SPEC, view(*HEALTHY), "web", None, {}) == "nginx2"


@pytest.mark.parametrize(("nginx2", "maintenance", "to", "reason"), [
    (status("nginx2", {"web": "BACKUP"}), {}, "mycat1", "mycat1 is not a member of group web"),
    (status("nginx2", {"web": "FAULT"}, {"nginx": "connection refused"}), {}, "nginx2",
     "nginx2 is not healthy (nginx: connection refused)"),
    (status("nginx2", {"web": "BACKUP"}, age=60), {}, "nginx2", "nginx2: report stale"),
    (None, {}, "nginx2", "nginx2 is not reporting"),
    (status("nginx2", {"web": "BACKUP"}), {"nginx2": Maintenance("nginx2", "kernel")},
     "nginx2", "nginx2 is in maintenance (kernel)"),
    (status("nginx2", {}), {}, "nginx2", "reports no VRRP state"),
])
def test_a_switchover_is_refused_with_the_reason(nginx2, maintenance, to, reason):
    statuses = [HEALTHY[0]] + ([nginx2] if nginx2 is not None else [])
    with pytest.raises(Refused, match=reason.replace("(", r"\(").replace(")", r"\)")):
        choose_switchover_target(SPEC, view(*statuses), "web", to, maintenance)


def test_a_switchover_of_an_unknown_group_or_with_nobody_eligible_is_refused():
    with pytest.raises(Refused, match="no VRRP group 'nope'"):
        choose_switchover_target(SPEC, view(*HEALTHY), "nope", None, {})
    sick = status("nginx2", {"web": "BACKUP"}, {"nginx": "HTTP 503"})
    with pytest.raises(Refused, match="no member of group web can take it over: nginx2 is"):
        choose_switchover_target(SPEC, view(HEALTHY[0], sick), "web", None, {})


def test_maintenance_of_a_sole_possible_holder_is_refused():
    sick = status("nginx2", {"web": "BACKUP"}, {"nginx": "HTTP 503"})
    assert "no other member could take it over" in maintenance_refusal(
        SPEC, view(HEALTHY[0], sick), "nginx1", {})
    assert maintenance_refusal(SPEC, view(*HEALTHY), "nginx1", {}) is None
    assert maintenance_refusal(SPEC, view(*HEALTHY), "nginx2", {}) is None  # holds nothing
    assert maintenance_refusal(SPEC, view(*HEALTHY), "nobody", {}) == \
        "node nobody is not in the spec"


def test_the_preferred_holder_rises_only_while_it_may_serve():
    request = SwitchoverRequest("web", "nginx2", "t", "i")
    assert preferred_value(request, "nginx2", healthy=True, in_maintenance=False) == 1
    assert preferred_value(request, "nginx2", healthy=False, in_maintenance=False) == 0
    assert preferred_value(request, "nginx2", healthy=True, in_maintenance=True) == 0
    assert preferred_value(request, "nginx1", healthy=True, in_maintenance=False) == 0
    assert preferred_value(None, "nginx2", healthy=True, in_maintenance=False) == 0


def test_the_switchover_weight_lifts_the_lowest_member_above_the_highest():
    web = next(g for g in SPEC.vrrp_groups if g.name == "web")  # 150 and 100
    assert switchover_weight(web) == 51 and 100 + 51 > 150
    text = render_keepalived(SPEC, "nginx2")
    assert 'file "/run/stackha/switchover_web.track"' in text
    assert "        stackha_switchover_web weight 51\n" in text
    # a director in the mycat group has its own file, for its own group only
    director = render_keepalived(SPEC, "director1")
    assert "switchover_mycat.track" in director and "switchover_web" not in director


def test_requests_parse_tolerantly():
    assert parse_switchover("web", b'{"to": "nginx2", "id": "x"}').to == "nginx2"
    for bad in (None, b"", b"nonsense", b"[]", b'{"to": 3}'):
        assert parse_switchover("web", bad) is None
    assert parse_maintenance("n", None) is None
    # A damaged maintenance node still means maintenance: it must not bring the node back.
    assert parse_maintenance("n", b"garbage") == Maintenance("n")
    found = parse_maintenance("n", Maintenance("n", "kernel", "t", 5.0).to_json())
    assert found == Maintenance("n", "kernel", "t", 5.0)
    assert parse_maintenance("n", b'{"drain_timeout": -4}').drain_timeout == 30.0


def test_a_director_gives_a_realserver_in_maintenance_weight_zero():
    plan = director_plan(drained_spec(SPEC, {"mycat2": Maintenance("mycat2")}), "director1",
                         LvsSettings(state_dir=EXAMPLE_CONFIGS), ipvs_ok=False)
    assert plan is not None
    weights = {b.name: b.weight for b in plan.services[0].backends}
    assert weights == {"mycat1": 1, "mycat2": 0, "mycat3": 1}
    assert drained_spec(SPEC, {}) is SPEC
    # the IPVS engine: keepalived's real_server weight
    ipvs = render_keepalived(drained_spec(SPEC, {"mycat2"}), "director1", ipvs=True)
    assert "real_server 10.77.0.32 8066 {\n        weight 0\n" in ipvs
    assert "real_server 10.77.0.31 8066 {\n        weight 1\n" in ipvs


def test_a_node_in_maintenance_is_no_canary():
    statuses = {"nginx1": status("nginx1", {"web": "MASTER"}),
                "nginx2": status("nginx2", {"web": "BACKUP"}, maintenance="drained")}
    assert choose_canaries(SPEC, statuses)["nginx"] == "nginx1"
    statuses["nginx2"] = status("nginx2", {"web": "BACKUP"})
    assert choose_canaries(SPEC, statuses)["nginx"] == "nginx2"


def test_status_shows_maintenance_and_its_reason():
    parked = status("nginx1", {"web": "FAULT"}, maintenance="drained",
                    maintenance_reason="kernel 6.1 patch")
    back = parse_status("nginx1", parked.to_json())
    assert back.maintenance == "drained" and back.maintenance_reason == "kernel 6.1 patch"
    shown = view(parked, HEALTHY[1])
    assert "MAINTENANCE: nginx1: drained: kernel 6.1 patch" in shown.table()
    row = shown.document()["nodes"][0]
    assert (row["maintenance"], row["maintenance_reason"]) == ("drained", "kernel 6.1 patch")
    again = ClusterView.from_document(shown.document())
    assert again.statuses["nginx1"].maintenance_reason == "kernel 6.1 patch"


# /proc/net/tcp: sl local rem st ...; 0100007F is 127.0.0.1, 0B00630A is 10.99.0.11
TCP = """  sl  local_address rem_address   st tx_queue rx_queue
   0: 0B00630A:0050 3200630A:A1B2 01 00000000:00000000 00:00000000 00000000 0 0 1
   1: 0B00630A:0050 3200630A:A1B3 06 00000000:00000000 00:00000000 00000000 0 0 2
   2: 0100007F:0050 0100007F:B000 01 00000000:00000000 00:00000000 00000000 0 0 3
   3: 0B00630A:1F92 3200630A:A1B4 01 00000000:00000000 00:00000000 00000000 0 0 4
   4: 0B00630A:0016 3200630A:A1B5 01 00000000:00000000 00:00000000 00000000 0 0 5
"""


def test_a_drain_counts_established_client_connections_to_served_ports_only():
    lines = TCP.splitlines()[1:]
    # port 80: one established from 10.99.0.50; TIME_WAIT and the loopback probe do not count
    assert count_established(lines, {80}) == 1
    assert count_established(lines, {80, 8082}) == 2
    assert count_established(lines, {443}) == 0
    v6 = ["0: 00000000000000000000000001000000:0050 0000000000000000FFFF00003200630A:A1B2 01 x"]
    assert count_established(v6, {80}) == 1
    assert served_ports(SPEC, "nginx1") == {80}
    assert served_ports(SPEC, "mycat1") == {8066}
