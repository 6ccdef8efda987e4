"""Staged rollout: which canaries the coordinator names, and what a waiting node decides."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from stackha.model.bundle import Bundle, ConfigVersion, parse_version, serialise_version
from stackha.model.rollout import choose_canaries, gate
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus, parse_status
from tests.conftest import EXAMPLE_CONFIGS

SPEC, _ = parse_spec((EXAMPLE_CONFIGS / "stackha.yaml").read_text(), "stackha.yaml")


def live(node: str, vrrp: dict[str, str] | None = None, health: dict[str, str] | None = None,
         **fields) -> NodeStatus:
    fields.setdefault("canary_capable", True)
    return NodeStatus(node=node, vrrp=MappingProxyType(vrrp or {}),
                      health=MappingProxyType(health or {}), **fields)


def test_the_canary_is_the_healthy_node_without_the_vip():
    assert SPEC is not None
    statuses = {"nginx1": live("nginx1", {"web": "BACKUP"}, {"nginx": "ok"}),
                "nginx2": live("nginx2", {"web": "MASTER"}, {"nginx": "ok"}),
                "mycat1": live("mycat1"), "mycat2": live("mycat2"), "mycat3": live("mycat3")}
    assert choose_canaries(SPEC, statuses) == {"nginx": "nginx1", "mycat": "mycat1"}
    statuses["nginx1"] = live("nginx1", {"web": "MASTER"}, {"nginx": "ok"})
    statuses["nginx2"] = live("nginx2", {"web": "BACKUP"}, {"nginx": "ok"})
    assert choose_canaries(SPEC, statuses)["nginx"] == "nginx2"


def test_a_sick_node_is_never_the_canary():
    assert SPEC is not None
    statuses = {"nginx1": live("nginx1", {"web": "MASTER"}, {"nginx": "ok"}),
                "nginx2": live("nginx2", {"web": "FAULT"}, {"nginx": "connection refused"})}
    assert choose_canaries(SPEC, statuses) == {"nginx": "nginx1"}
    statuses["nginx1"] = live("nginx1", {"web": "MASTER"}, {"nginx": "HTTP 503"})
    assert choose_canaries(SPEC, statuses) == {}


def test_an_agent_that_cannot_report_a_refusal_is_never_the_canary():
    assert SPEC is not None
    statuses = {"nginx1": live("nginx1", {"web": "MASTER"}, {"nginx": "ok"}),
                "nginx2": live("nginx2", {"web": "BACKUP"}, {"nginx": "ok"},
                               canary_capable=False)}
    assert choose_canaries(SPEC, statuses) == {"nginx": "nginx1"}


def test_a_node_that_health_checks_the_role_goes_before_one_that_does_not():
    assert SPEC is not None
    statuses = {"mycat1": live("mycat1"), "mycat2": live("mycat2", health={"mycat": "ok"})}
    assert choose_canaries(SPEC, statuses) == {"mycat": "mycat2"}


def test_no_canary_when_fewer_than_two_nodes_of_a_role_report():
    assert SPEC is not None
    assert choose_canaries(SPEC, {"nginx1": live("nginx1"), "mycat2": live("mycat2")}) == {}
    assert choose_canaries(SPEC, {}) == {}


def _gate(reports: dict[str, NodeStatus | None], changed=("nginx",), waited=0.0, node="n2",
          canaries=None):
    return gate(7, canaries if canaries is not None else {"nginx": "n1"}, node, changed,
                lambda name: reports.get(name), waited, limit=60.0)


def test_waits_until_the_canary_applied_the_version():
    assert _gate({"n1": live("n1", applied_version=6)}).decision == "wait"
    assert "n1 (nginx)" in _gate({"n1": live("n1", applied_version=6)}).reason
    assert _gate({"n1": live("n1", applied_version=7)}).decision == "apply"
    assert _gate({"n1": live("n1", applied_version=8)}).decision == "apply"


def test_refuses_what_the_canary_refused():
    verdict = _gate({"n1": live("n1", applied_version=6, rejected_version=7,
                                last_error="version 7 rolled back at health: HTTP 503")})
    assert verdict.decision == "reject"
    assert "canary n1 (nginx) refused it: version 7 rolled back at health" in verdict.reason
    # An older refusal says nothing about this version.
    assert _gate({"n1": live("n1", applied_version=6, rejected_version=5)}).decision == "wait"


def test_the_canary_itself_and_unchanged_roles_never_wait():
    assert _gate({}, node="n1").decision == "apply"
    # Canary of one role, follower of another: on trial anyway, it never waits (two canaries
    # waiting on each other would stage nothing).
    both = {"nginx": "n1", "mycat": "n2"}
    quiet = {"n1": live("n1", applied_version=6), "n2": live("n2", applied_version=6)}
    assert _gate(quiet, changed=("nginx", "mycat"), node="n1", canaries=both).decision == "apply"
    assert _gate(quiet, changed=("nginx", "mycat"), node="n2", canaries=both).decision == "apply"
    assert _gate(quiet, changed=("nginx", "mycat"), node="n3", canaries=both).decision == "wait"
    assert _gate({"n1": live("n1", applied_version=6)}, changed=()).decision == "apply"
    assert _gate({"n1": live("n1", applied_version=6)}, canaries={}).decision == "apply"


@pytest.mark.parametrize(("reports", "note"), [
    ({}, "canary n1 (nginx) gone for 61 s"),
    ({"n1": live("n1", applied_version=6)}, "canary n1 (nginx) silent for 61 s"),
])
def test_a_gone_or_silent_canary_holds_the_rollout_only_until_the_limit(reports, note):
    assert _gate(reports, waited=59.0).decision == "wait"
    verdict = _gate(reports, waited=61.0)
    assert verdict.decision == "apply" and verdict.reason == note


def test_canaries_survive_the_version_document_and_malformed_ones_mean_none():
    version = ConfigVersion(3, Bundle.from_contents({"a": b"x"}), "t", "me", "m",
                            MappingProxyType({"nginx": "nginx1"}))
    parsed, problems = parse_version(serialise_version(version), "v3")
    assert parsed is not None and not problems
    assert dict(parsed.canaries) == {"nginx": "nginx1"}
    broken = serialise_version(version).replace(b'"nginx": "nginx1"', b'"nginx": 4')
    parsed, _ = parse_version(broken, "v3")
    assert parsed is not None and dict(parsed.canaries) == {}


def test_rejected_version_is_reported_and_read_back_tolerantly():
    status = NodeStatus(node="n1", rejected_version=7, canary_capable=True)
    back = parse_status("n1", status.to_json())
    assert back is not None and back.rejected_version == 7 and back.canary_capable
    old = parse_status("n1", b'{"applied_version": 3}')  # an agent from before canaries
    assert old is not None and not old.canary_capable
    assert parse_status("n1", b'{"rejected_version": "7"}').rejected_version is None  # type: ignore[union-attr]
