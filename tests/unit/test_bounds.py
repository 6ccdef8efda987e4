"""Bounds on what the store, a spec or a configs/ tree may cost (issue #14, part B), each from
the side of whoever wrote the hostile data: an agent reporting a huge error, someone with the
coordinator's credential publishing an alias bomb or a Latin-1 byte."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from stackha.coordinator.configset import load_configs
from stackha.model.bundle import Bundle, ConfigVersion, parse_version, serialise_version
from stackha.model.spec import parse_spec
from stackha.model.status import MAX_STATUS_BYTES, MAX_TEXT_BYTES, NodeStatus, parse_status
from stackha.model.yamlsource import MAX_DOCUMENT_BYTES, load_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_SPEC = (ROOT / "configs" / "stackha.yaml").read_text()
ZNODE_LIMIT = 1_048_576


def _bomb(levels: int) -> str:
    """Each level lists the previous one nine times: 9**levels nodes from a few hundred bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels + 1):
        ref = f"*l{level - 1}"
        lines.append(f"l{level}: &l{level} [{', '.join([ref] * 9)}]")
    return "\n".join(lines) + "\n"


# 1. status fields -----------------------------------------------------------------------

def test_a_huge_last_error_is_cut_to_one_bounded_line():
    # What the agent made of an 820 KB version whose every path was refused.
    reason = "".join(f"refused path 'nginx/{i:06d}/../x': path must not contain '..'\n"
                     for i in range(30_000))
    assert len(reason) > 1_700_000
    status = replace(NodeStatus(node="n1"), last_error=f"version 9 rejected at verify: {reason}")
    assert len(status.last_error.encode()) <= MAX_TEXT_BYTES
    assert status.last_error.startswith("version 9 rejected at verify: refused path")
    assert "bytes cut)" in status.last_error
    assert "\n" not in status.last_error
    assert len(status.to_json()) <= MAX_STATUS_BYTES


def test_every_field_together_stays_far_below_the_znode_limit():
    big = '"\\' * 400_000  # JSON escapes each of these to two bytes
    status = NodeStatus(
        node="n1", last_error=big, last_error_time=big, heartbeat=big, agent_version=big,
        zookeeper=big, roles=tuple(big for _ in range(10)),
        vrrp={f"g{i}-{big[:500]}": big for i in range(200)},
        health={f"c{i}": big for i in range(200)},
        vrid_conflicts=tuple(big[:1000] for _ in range(1000)))
    payload = status.to_json()
    assert len(payload) <= MAX_STATUS_BYTES < ZNODE_LIMIT
    back = parse_status("n1", payload)
    assert back is not None and back.last_error.endswith("bytes cut)")
    assert json.loads(payload)["node"] == "n1"


def test_a_hostile_status_read_back_is_bounded_too():
    payload = json.dumps({"last_error": "e" * 900_000, "health": {"a": "b" * 100_000}}).encode()
    status = parse_status("n1", payload)
    assert status is not None
    assert len(status.last_error.encode()) <= MAX_TEXT_BYTES
    assert len(status.health["a"].encode()) <= MAX_TEXT_BYTES
    assert parse_status("n1", status.to_json()) == status


def test_a_short_status_is_unchanged():
    status = NodeStatus(node="n1", roles=("nginx",), last_error="version 3 rejected: x",
                        health={"nginx": "ok"})
    assert parse_status("n1", status.to_json()) == status


# 2. YAML bounds -------------------------------------------------------------------------

def test_an_alias_bomb_is_refused_with_its_line():
    text = _bomb(6)  # 9**6 = 531,441 nodes from 360 bytes
    assert len(text) < 400
    spec, problems = parse_spec(text, "configs/stackha.yaml")
    assert spec is None
    assert len(problems) == 1
    line = str(problems[0])
    assert line.startswith("configs/stackha.yaml: line ")
    assert "alias" in line and "refused" in line and "\n" not in line


def test_a_half_kilobyte_bomb_like_the_issues_is_refused():
    text = _bomb(9)
    assert len(text) < 600
    doc, problems = load_yaml(text, "stackha.yaml")
    assert doc is None and "alias" in problems[0].reason


def test_too_many_aliases_are_refused():
    text = "base: &b {k: v}\nitems:\n" + "".join("  - *b\n" for _ in range(101))
    doc, problems = load_yaml(text, "stackha.yaml")
    assert doc is None
    assert "more than 100 YAML aliases" in str(problems[0])


def test_a_recursive_alias_is_refused():
    doc, problems = load_yaml("a: &a [1, *a]\n", "stackha.yaml")
    assert doc is None and "recursive" in problems[0].reason


def test_a_document_over_the_size_cap_is_refused():
    text = "# " + "x" * MAX_DOCUMENT_BYTES + "\ncluster: c\n"
    doc, problems = load_yaml(text, "stackha.yaml")
    assert doc is None
    assert str(problems[0]).startswith("stackha.yaml: line 1: document is ")


def test_a_few_aliases_still_parse_with_their_lines():
    text = "a: &a {k: v}\nb: *a\nc:\n  <<: *a\n  m: n\n"
    doc, problems = load_yaml(text, "stackha.yaml")
    assert not problems and doc is not None
    assert doc.value["c"] == {"k": "v", "m": "n"}
    assert doc.line_of("c.m") == 5


def test_the_example_spec_still_parses():
    spec, problems = parse_spec(EXAMPLE_SPEC, "stackha.yaml")
    assert spec is not None, problems


# 3. UTF-8 -------------------------------------------------------------------------------

def test_a_latin1_byte_in_the_spec_is_refused_at_validate(tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    spec = configs / "stackha.yaml"
    data = spec.read_bytes()
    spec.write_bytes(b"# caf\xe9\n" + data)
    configset, problems = load_configs(configs)
    assert configset is None
    assert f"{configs}/stackha.yaml: byte 5: not valid UTF-8" in [str(p) for p in problems]


def test_a_latin1_byte_in_an_nginx_file_is_refused_with_its_offset(tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    conf = configs / "nginx" / "x.conf"
    conf.write_bytes(b"# " + b"a" * 121 + b"\xff\n")
    configset, problems = load_configs(configs)
    assert configset is None
    assert f"{configs}/nginx/x.conf: byte 123: not valid UTF-8" in [str(p) for p in problems]


def test_a_binary_asset_is_still_published(tmp_path: Path):
    configs = tmp_path / "configs"
    shutil.copytree(ROOT / "configs", configs)
    (configs / "nginx" / "html" / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    configset, problems = load_configs(configs)
    assert configset is not None, problems


def test_a_stored_version_whose_spec_is_not_utf8_is_refused_not_a_crash():
    spec = b"# caf\xe9\n" + EXAMPLE_SPEC.encode()
    bundle = Bundle.from_contents({"stackha.yaml": spec})
    data = serialise_version(ConfigVersion(4, bundle, "now", "me", "hostile"))
    version, problems = parse_version(data, "version 4")
    assert version is None
    assert [str(p) for p in problems] == [
        "version 4: files.stackha.yaml: byte 5: not valid UTF-8"]
    # And a reader that has the bundle anyway does not crash on it.
    assert bundle.text("stackha.yaml").startswith("# caf\ufffd")


def test_a_deeply_nested_version_document_is_refused_not_a_crash():
    version, problems = parse_version(b"[" * 100_000 + b"]" * 100_000, "version 5")
    assert version is None and "not a stackha version document" in str(problems[0])
