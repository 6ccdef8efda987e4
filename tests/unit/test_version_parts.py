"""A version split into a manifest and one part per role, and put back (model.versionparts);
the tree's designed ACLs and what counts as someone else's grant (store.treeacl)."""

from __future__ import annotations

import json

from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions

from stackha.model.bundle import Bundle, ConfigVersion, parse_version, serialise_version
from stackha.model.versionparts import merge_document, split_document
from stackha.store.treeacl import TreeAccess, compare, report_acl_from_plan

FILES = {"stackha.yaml": b"cluster: x\n", "nginx/nginx.conf": b"events {}\n",
         "mycat/server.xml": b'<property name="password">s3cret</property>'}


def _document(number: int = 3, signatures: dict | None = None) -> bytes:
    payload = serialise_version(ConfigVersion(number, Bundle.from_contents(FILES), "t", "a",
                                              "m"))
    if signatures:
        document = json.loads(payload)
        document["signatures"] = signatures
        payload = json.dumps(document).encode()
    return payload


def test_the_manifest_holds_no_role_file_and_each_part_only_its_role():
    manifest, parts = split_document(_document())
    assert b"s3cret" not in manifest and b"events" not in manifest
    assert set(parts) == {"nginx", "mycat"}
    assert b"s3cret" in parts["mycat"] and b"s3cret" not in parts["nginx"]


def test_every_part_read_gives_back_the_whole_version():
    manifest, parts = split_document(_document())
    merged, problems = merge_document(manifest, parts, "v")
    version, more = parse_version(merged, "v")
    assert not problems and not more and version is not None
    assert {p: f.content for p, f in version.bundle.files.items()} == FILES
    assert not version.withheld


def test_a_reader_without_a_part_gets_the_rest_and_the_part_named_withheld():
    manifest, parts = split_document(_document())
    merged, _ = merge_document(manifest, {"nginx": parts["nginx"], "mycat": None}, "v")
    version, problems = parse_version(merged, "v")
    assert not problems and version is not None
    assert set(version.bundle.files) == {"stackha.yaml", "nginx/nginx.conf"}
    assert version.withheld == {"mycat"}
    # What the agent keeps on disk (last-good.json) reads back the same, still withheld.
    again, _ = parse_version(serialise_version(version), "last-good")
    assert again == version


def test_a_part_of_another_version_or_holding_another_roles_file_is_refused():
    manifest, parts = split_document(_document(3))
    _, other = split_document(_document(4))
    _, problems = merge_document(manifest, {"nginx": other["nginx"], "mycat": None}, "v")
    assert "does not match its manifest" in problems[0].reason
    smuggled = json.loads(parts["nginx"])
    smuggled["files"]["mycat/evil.xml"] = smuggled["files"]["nginx/nginx.conf"]
    _, problems = merge_document(manifest, {"nginx": json.dumps(smuggled).encode()}, "v")
    assert "another role's file" in problems[0].reason
    tampered = parts["nginx"].replace(b"events", b"EVENTS")
    merged, _ = merge_document(manifest, {"nginx": tampered, "mycat": None}, "v")
    version, problems = parse_version(merged, "v")
    assert version is None and "sha256" in problems[0].reason


def test_each_roles_signature_travels_with_its_part():
    manifest, parts = split_document(_document(signatures={"nginx": "SIG-N", "mycat": "SIG-M"}))
    assert b"SIG-M" not in manifest and b"SIG-M" in parts["mycat"]
    merged, _ = merge_document(manifest, {"nginx": parts["nginx"], "mycat": None}, "v")
    assert json.loads(merged)["signatures"] == {"nginx": "SIG-N"}


ACCESS = TreeAccess("coord:AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                    {"nginx1": "nginx1:BBBBBBBBBBBBBBBBBBBBBBBBBBB=",
                     "mycat1": "mycat1:CCCCCCCCCCCCCCCCCCCCCCCCCCC="},
                    {"nginx1": ("nginx",), "mycat1": ("mycat",)})
KNOWN = frozenset({"coord", "nginx1", "mycat1"})


def test_only_the_role_holders_may_read_a_roles_part():
    readers = {a.id.id for a in ACCESS.role_acl("mycat")}
    assert readers == {ACCESS.coordinator, ACCESS.nodes["mycat1"]}


def test_open_ip_unknown_and_excess_grants_are_someone_elses():
    designed = ACCESS.grants_config()
    as_designed = ACCESS.config_acl()
    assert compare("/t", as_designed, designed, KNOWN) is None
    for extra in (*OPEN_ACL_UNSAFE, ACL(Permissions.READ, Id("ip", "10.0.0.9")),
                  ACL(Permissions.READ, Id("digest", "mallory:DDDDDDDDDDDDDDDDDDDDDDDDDDD=")),
                  ACL(Permissions.WRITE, Id("digest", ACCESS.nodes["nginx1"]))):
        finding = compare("/t", [*as_designed, extra], designed, KNOWN)
        assert finding is not None and finding.foreign == (extra,)
    # A node's previous digest (a rotated credential) with no more rights: drift, repaired.
    old = ACL(Permissions.READ, Id("digest", "nginx1:EEEEEEEEEEEEEEEEEEEEEEEEEEE="))
    finding = compare("/t", [*as_designed, old], designed, KNOWN)
    assert finding is not None and finding.owned and finding.stale == (old,)


def test_an_agent_gives_only_itself_more_than_read_on_its_report():
    own = ACCESS.nodes["nginx1"]
    plan = json.loads(ACCESS.report_plan("nginx1"))
    plan["report_acl"].append({"id": "world:anyone", "perms": "rwcda"})
    acl = report_acl_from_plan(json.dumps(plan).encode(), own)
    assert acl is not None
    assert {a.id.id: a.perms for a in acl if a.perms != Permissions.READ} == \
        {own: Permissions.READ | Permissions.WRITE}
    assert all(a.id.scheme == "digest" for a in acl)
    assert report_acl_from_plan(b"garbage", own) is None
