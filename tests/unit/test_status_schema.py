"""`stackha status --json` is a stable document: its keys and their types are pinned here and
in the README's table; changing one means raising schema_version."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from types import MappingProxyType

from stackha.model.cluster import DOCUMENT_KEYS, NODE_KEYS, STATUS_SCHEMA_VERSION, ClusterView
from stackha.model.status import NodeStatus
from tests.conftest import ROOT

NOW = datetime(2026, 12, 1, 22, 0, 0, tzinfo=UTC)


def _document() -> dict:
    status = NodeStatus(node="nginx1", roles=("nginx",), applied_version=3,
                        vrrp=MappingProxyType({"web": "MASTER"}),
                        health=MappingProxyType({"nginx": "ok"}),
                        heartbeat="2026-12-01T21:59:59.500000Z", heartbeat_interval=1.0)
    view = ClusterView(3, MappingProxyType({"nginx1": status}),
                       (("nginx1", ("nginx",)), ("nginx2", ("nginx",))),
                       MappingProxyType({"web": ("nginx1", "nginx2")}), now=NOW)
    return json.loads(json.dumps(view.document()))


def test_the_document_has_exactly_the_pinned_keys_and_types():
    document = _document()
    assert STATUS_SCHEMA_VERSION == 1 and document["schema_version"] == 1
    assert list(document) == list(DOCUMENT_KEYS) == [
        "schema_version", "current_version", "nodes", "split_brain", "split_brain_suspected",
        "vrrp_groups", "read_at"]
    reporting, missing = document["nodes"]
    assert list(reporting) == list(NODE_KEYS) == [
        "node", "roles", "reporting", "applied_version", "current_version", "drift", "vrrp",
        "health", "last_error", "heartbeat", "reported_vrrp", "heartbeat_interval",
        "report_age_s", "stale", "stale_after_s", "maintenance", "maintenance_reason", "vrrp_since"]
    assert list(missing) == list(NODE_KEYS)  # a node that does not report has every key too
    types = {"node": str, "roles": list, "reporting": bool, "applied_version": int,
             "current_version": int, "drift": bool, "vrrp": dict, "health": dict,
             "last_error": str, "heartbeat": str, "reported_vrrp": dict,
             "heartbeat_interval": float, "report_age_s": float, "stale": bool,
             "stale_after_s": float, "maintenance": str, "maintenance_reason": str,
             "vrrp_since": dict}
    for key, kind in types.items():
        assert isinstance(reporting[key], kind), key
    assert missing["reporting"] is False and missing["applied_version"] is None
    assert isinstance(document["split_brain"], dict)
    assert document["vrrp_groups"] == {"web": ["nginx1", "nginx2"]}


def test_the_readme_documents_every_key():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### `status --json`", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([a-z_]+)`", section, re.MULTILINE))
    assert documented >= set(DOCUMENT_KEYS) | set(NODE_KEYS)
