"""stackha drill, pure: the status document and what keeps it from being all green."""

from __future__ import annotations

import json
from pathlib import Path

from stackha.lab.drill.green import sample_of, status_document, status_problems, unreachable
from stackha.model.spec import parse_spec
from stackha.model.status import parse_status

ROOT = Path(__file__).resolve().parents[2]


def node(name: str, applied: int | None = 3, vrrp: dict | None = None,
         health: dict | None = None, error: str = "", reporting: bool = True) -> dict:
    return {"node": name, "reporting": reporting, "applied_version": applied,
            "vrrp": vrrp or {}, "health": health if health is not None else {"nginx": "ok"},
            "last_error": error}


def doc(*nodes: dict, current: int | None = 3, split: dict | None = None) -> dict:
    return {"current_version": current, "nodes": list(nodes), "split_brain": split or {}}


def test_all_green():
    assert status_problems(doc(node("a", vrrp={"web": "MASTER"}),
                               node("b", vrrp={"web": "BACKUP"}))) == []


def test_each_reason_is_one_line():
    problems = status_problems(doc(
        node("a", vrrp={"web": "BACKUP"}),
        node("b", applied=2, vrrp={"web": "FAULT"}, health={"nginx": "connection refused"},
             error="version 3 rejected at validate: nginx -t"),
        node("c", reporting=False)))
    assert problems == [
        "b: applied 2, current 3",
        "b: nginx unhealthy: connection refused",
        "b: version 3 rejected at validate: nginx -t",
        "c: not reporting",
        "group web: no MASTER",
    ]


def test_split_brain_and_nothing_published():
    problems = status_problems(doc(node("a", vrrp={"web": "MASTER"}, applied=None),
                                   node("b", vrrp={"web": "MASTER"}, applied=None),
                                   current=None))
    assert problems == ["no version published", "group web: split brain, MASTER on a, b"]


def test_sample_of_a_document():
    sample = sample_of(7.5, doc(node("a", vrrp={"web": "MASTER"}),
                                node("b", vrrp={"web": "MASTER"}, error="boom"),
                                node("c", reporting=False), split={"web": ["a", "b"]}))
    assert sample.t == 7.5 and sample.reachable and not sample.green
    assert sample.masters == {"web": ("a", "b")}
    assert sample.split_brain == {"web": ("a", "b")}
    assert sample.missing == ("c",)
    assert sample.applied == {"a": 3, "b": 3}
    assert sample.errors == {"b": "boom"}


def test_unreachable_is_not_green():
    sample = unreachable(1.0, "cannot reach ZooKeeper")
    assert not sample.green and not sample.reachable
    assert sample.problems == ("status unreadable: cannot reach ZooKeeper",)


def test_status_document_is_what_stackha_status_json_prints():
    spec, _ = parse_spec((ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert spec is not None
    status = {"node": "nginx1", "roles": ["nginx"], "applied_version": 4,
              "vrrp": {"web": "MASTER"}, "health": {"nginx": "ok"}}
    document = status_document(spec, 4, {"nginx1": parse_status("nginx1",
                                                                json.dumps(status).encode())})
    names = [n["node"] for n in document["nodes"]]
    assert names[:2] == ["nginx1", "nginx2"] and len(names) == len(spec.nodes)
    first = document["nodes"][0]
    assert first["reporting"] and first["applied_version"] == 4 and not first["drift"]
    assert document["split_brain"] == {}
    problems = status_problems(document)
    assert "nginx2: not reporting" in problems and not any("nginx1" in p for p in problems)


def test_groups_of_the_spec_must_have_a_master_and_every_member_a_state():
    document = doc(node("a", vrrp={}), node("b", vrrp={"web": "BACKUP"}),
                   node("c", reporting=False))
    document["vrrp_groups"] = {"web": ["a", "b", "c"], "sql": ["d"]}
    assert status_problems(document) == [
        "c: not reporting",
        "a: no VRRP state for group web (keepalived not running?)",
        "group sql: no MASTER",
        "group web: no MASTER",
    ]
    document["nodes"][1]["vrrp"] = {"web": "MASTER"}
    document["vrrp_groups"] = {"web": ["a", "b"]}
    assert status_problems(document) == [
        "c: not reporting", "a: no VRRP state for group web (keepalived not running?)"]
