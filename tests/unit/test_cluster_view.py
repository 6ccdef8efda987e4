"""ClusterView, pure: report ages against an injected now, stale reports, split brain claimed
only from fresh reports (issue #16: a hard-killed MASTER's ephemeral status outlives it)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType

from stackha.lab.drill.green import sample_of, status_document
from stackha.model.cluster import ClusterView, stale_after
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus, parse_status

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)
WEB = MappingProxyType({"web": ("nginx1", "nginx2")})
NODES = (("nginx1", ("nginx",)), ("nginx2", ("nginx",)))


def _stamp(age: float) -> str:
    return (NOW - timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def status(name: str, state: str, age: float, interval: float | None = 1.0) -> NodeStatus:
    return NodeStatus(node=name, roles=("nginx",), applied_version=3,
                      vrrp=MappingProxyType({"web": state}),
                      health=MappingProxyType({"nginx": "ok"}),
                      heartbeat=_stamp(age), heartbeat_interval=interval)


def view(*statuses: NodeStatus, now: datetime | None = NOW) -> ClusterView:
    return ClusterView(3, MappingProxyType({s.node: s for s in statuses}), NODES, WEB, now=now)


# the threshold ---------------------------------------------------------------------------------
def test_threshold_comes_from_the_reported_interval_with_a_default_for_old_agents():
    assert stale_after(status("a", "MASTER", 0, interval=1.0)) == 5.0
    assert stale_after(status("a", "MASTER", 0, interval=0.5)) == 3.5
    assert stale_after(status("a", "MASTER", 0, interval=None)) == 17.0


def test_interval_is_reported_and_read_back():
    data = status("nginx1", "MASTER", 0, interval=0.5).to_json()
    assert json.loads(data)["heartbeat_interval"] == 0.5
    assert parse_status("nginx1", data).heartbeat_interval == 0.5
    # An old agent's status has no interval; nonsense is ignored rather than trusted.
    for raw in ({}, {"heartbeat_interval": "soon"}, {"heartbeat_interval": -1},
                {"heartbeat_interval": True}):
        assert parse_status("x", json.dumps(raw).encode()).heartbeat_interval is None


# ages -----------------------------------------------------------------------------------------
def test_each_row_has_its_report_age_and_old_ones_are_stale():
    rows = {r.node: r for r in view(status("nginx1", "MASTER", 12.3),
                                     status("nginx2", "BACKUP", 0.4)).rows()}
    assert rows["nginx1"].age == 12.3 and rows["nginx1"].stale
    assert rows["nginx2"].age == 0.4 and not rows["nginx2"].stale


def test_old_agent_without_interval_is_judged_by_the_default_interval():
    rows = {r.node: r for r in view(status("nginx1", "MASTER", 12.3, interval=None),
                                     status("nginx2", "BACKUP", 17.5, interval=None)).rows()}
    assert not rows["nginx1"].stale and rows["nginx2"].stale


def test_without_now_nothing_is_stale_as_before():
    # The agent's own split-brain watch asks without a now: today's behaviour.
    v = view(status("nginx1", "MASTER", 120), status("nginx2", "MASTER", 0.1), now=None)
    assert all(not r.stale and r.age is None for r in v.rows())
    assert v.masters() == {"web": ("nginx1", "nginx2")}
    assert v.split_brain() == {"web": ["nginx1", "nginx2"]}


def test_unreadable_heartbeat_has_no_age_and_is_not_called_stale():
    odd = NodeStatus(node="nginx1", vrrp=MappingProxyType({"web": "MASTER"}), heartbeat="soon")
    row = view(odd).rows()[0]
    assert row.age is None and not row.stale


def test_a_clock_ahead_of_the_reader_is_age_zero_not_negative():
    assert view(status("nginx1", "MASTER", -3.0)).rows()[0].age == 0.0


# masters and split brain ----------------------------------------------------------------------
def test_stale_master_claim_is_no_master_and_no_split_brain_but_suspected():
    v = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2))
    assert v.masters() == {"web": ("nginx2",)}
    assert v.split_brain() == {}
    assert v.stale_claims() == {"web": ("nginx1",)}
    assert v.split_brain_suspected() == {"web": ["nginx1", "nginx2"]}


def test_two_fresh_masters_are_split_brain_not_suspected():
    v = view(status("nginx1", "MASTER", 0.3), status("nginx2", "MASTER", 0.2))
    assert v.split_brain() == {"web": ["nginx1", "nginx2"]}
    assert v.split_brain_suspected() == {}


def test_stale_master_alone_is_no_master():
    v = view(status("nginx1", "MASTER", 12.3), status("nginx2", "BACKUP", 0.2))
    assert v.masters() == {"web": ()}
    assert v.split_brain_suspected() == {}
    assert "group web: no MASTER (stale report from nginx1 claims it)" in v.problems()


# the verdicts ---------------------------------------------------------------------------------
def test_problems_name_the_stale_report_and_the_suspected_split_brain():
    v = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2))
    assert v.problems() == [
        "nginx1: report stale (12.3 s old)",
        "group web: split brain suspected: MASTER on nginx2, "
        "stale report from nginx1 still claims MASTER",
    ]
    assert not v.green


def test_fresh_reports_are_green():
    v = view(status("nginx1", "MASTER", 0.9), status("nginx2", "BACKUP", 0.2))
    assert v.problems() == [] and v.green


def test_progress_waits_for_a_stale_node():
    progress = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2)).progress()
    assert not progress.done
    assert progress.ready == ("nginx2",)
    assert dict(progress.waiting) == {"nginx1": "report stale (12.3 s old)"}


def test_progress_stale_node_with_an_old_refusal_is_waiting_not_failed():
    dead = NodeStatus(node="nginx1", applied_version=2, last_error="version 3 rejected at x",
                      heartbeat=_stamp(60), heartbeat_interval=1.0)
    progress = view(dead, status("nginx2", "MASTER", 0.2)).progress()
    assert progress.failed == ()
    assert ("nginx1", "report stale (60.0 s old)") in progress.waiting


# for people and programs ----------------------------------------------------------------------
def test_json_marks_the_stale_node_and_keeps_every_key():
    document = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2)).document()
    rows = {r["node"]: r for r in document["nodes"]}
    old, new = rows["nginx1"], rows["nginx2"]
    for key in ("node", "roles", "reporting", "applied_version", "current_version", "drift",
                "vrrp", "health", "last_error", "heartbeat"):
        assert key in old and key in new
    assert old["stale"] is True and old["report_age_s"] == 12.3
    assert old["vrrp"] == {"web": "STALE"} and old["reported_vrrp"] == {"web": "MASTER"}
    assert new["stale"] is False and new["report_age_s"] == 0.2
    assert new["vrrp"] == {"web": "MASTER"}
    assert document["split_brain"] == {}
    assert document["split_brain_suspected"] == {"web": ["nginx1", "nginx2"]}
    assert document["read_at"] == "2026-12-01T22:00:00.000000Z"
    json.dumps(document)  # printable as is


def test_document_read_back_gives_the_same_verdicts():
    v = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2))
    again = ClusterView.from_document(json.loads(json.dumps(v.document())))
    assert again.problems() == v.problems()
    assert again.masters() == v.masters()
    assert again.split_brain_suspected() == v.split_brain_suspected()


def test_table_has_an_age_column_and_never_shows_a_stale_master():
    table = view(status("nginx1", "MASTER", 12.3), status("nginx2", "MASTER", 0.2)).table()
    lines = table.splitlines()
    assert "AGE" in lines[0].split()
    nginx1 = next(line for line in lines if line.startswith("nginx1"))
    nginx2 = next(line for line in lines if line.startswith("nginx2"))
    assert "MASTER" not in nginx1 and "web=STALE" in nginx1 and "12.3s (stale)" in nginx1
    assert "web=MASTER" in nginx2 and "0.2s" in nginx2
    assert not any(line.startswith("SPLIT BRAIN:") for line in lines)
    assert ("SPLIT BRAIN SUSPECTED: group web: MASTER on nginx2; stale report from nginx1 "
            "still claims MASTER") in table


def test_table_still_says_split_brain_of_fresh_masters():
    table = view(status("nginx1", "MASTER", 0.3), status("nginx2", "MASTER", 0.2)).table()
    assert "SPLIT BRAIN: group web has several masters: nginx1, nginx2" in table


# the drill ------------------------------------------------------------------------------------
def test_drill_sample_of_a_stale_master_is_not_green_and_not_split_brain():
    spec, _ = parse_spec((ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert spec is not None
    statuses = {"nginx1": status("nginx1", "MASTER", 12.3),
                "nginx2": status("nginx2", "MASTER", 0.2)}
    sample = sample_of(1.0, status_document(spec, 3, statuses, now=NOW))
    assert not sample.green
    assert sample.split_brain == {}
    assert sample.masters["web"] == ("nginx2",)
    assert "nginx1: report stale (12.3 s old)" in sample.problems


# a claim overtaken by a peer's takeover -------------------------------------------------------
def _master_since(name: str, age: float, since_age: float) -> NodeStatus:
    from dataclasses import replace

    return replace(status(name, "MASTER", age),
                   vrrp_since=MappingProxyType({"web": _stamp(since_age)}))


def test_a_master_claim_older_than_a_peers_takeover_is_suspected_not_split_brain():
    """A hard-killed master's last report (1.8 s old, still fresh) against its backup's,
    which became MASTER 1.2 s ago: nginx1 said MASTER last before nginx2 took over, so it
    proves nothing about now (issue #16: SPLIT BRAIN for 4.5 s after every kill)."""
    v = view(status("nginx1", "MASTER", 1.8), _master_since("nginx2", 0.2, 1.2))
    assert v.masters() == {"web": ("nginx2",)}
    assert v.split_brain() == {}
    assert v.split_brain_suspected() == {"web": ["nginx1", "nginx2"]}
    assert ("group web: split brain suspected: MASTER on nginx2, report from nginx1 older "
            "than nginx2's takeover still claims MASTER") in v.problems()
    rows = {r.node: r for r in v.rows()}
    assert rows["nginx1"].vrrp() == {"web": "OVERTAKEN"} and not rows["nginx1"].stale
    assert rows["nginx2"].vrrp() == {"web": "MASTER"}


def test_masters_that_both_reported_after_each_others_takeover_are_split_brain():
    v = view(_master_since("nginx1", 0.1, 9.0), _master_since("nginx2", 0.3, 2.0))
    assert v.split_brain() == {"web": ["nginx1", "nginx2"]}
    assert v.split_brain_suspected() == {}


def test_takeover_times_survive_the_store_and_the_json_document():
    node = _master_since("nginx2", 0.2, 1.2)
    assert parse_status("nginx2", node.to_json()).vrrp_since == {"web": _stamp(1.2)}
    assert parse_status("x", b'{"vrrp_since": ["no"]}').vrrp_since == {}
    v = view(status("nginx1", "MASTER", 1.8), node)
    again = ClusterView.from_document(json.loads(json.dumps(v.document())))
    assert again.split_brain_suspected() == v.split_brain_suspected()
    assert again.masters() == v.masters()
