"""A damaged or hostile tree in a real ZooKeeper, written with the coordinator's credential (or
left by a buggy coordinator): push-config, rollback and history go on, ``config repair`` fixes
current, and nothing needs hand-editing ZooKeeper (issue #14, part B)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from stackha.cli.main import main
from stackha.model.bundle import Bundle, ConfigVersion, serialise_version
from stackha.store.zookeeper import Identity, ZooKeeperStore
from tests.conftest import COORDINATOR

pytestmark = pytest.mark.integration


def _store(configs: Path, zookeeper) -> ZooKeeperStore:
    cluster = re.search(r"^cluster: (\S+)$", (configs / "stackha.yaml").read_text(), re.M)[1]
    store = ZooKeeperStore(zookeeper.hosts, "/stackha", cluster,
                           Identity.parse(COORDINATOR, "test"))
    store.start()
    return store


def _push(configs: Path, *extra: str) -> int:
    return main(["push-config", "--configs", str(configs), *extra])


def _change(configs: Path, text: str) -> None:
    page = configs / "nginx/html/index.html"
    page.write_text(page.read_text() + f"<!-- {text} -->\n")


def _write(configs: Path, zookeeper, path: str, data: bytes) -> None:
    store = _store(configs, zookeeper)
    try:
        store.client.set(f"{store.base}/{path}", data)
    finally:
        store.close()


def _state(configs: Path, zookeeper) -> tuple[bytes, list[int]]:
    store = _store(configs, zookeeper)
    try:
        return store.client.get(store.current_path)[0], store.version_numbers()
    finally:
        store.close()


@pytest.mark.parametrize("garbage", [b"\xff\xfe garbage", b"seven", b"-3", b"9" * 40])
def test_push_publishes_over_a_garbage_current(configs, zookeeper, capsys, garbage):
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/current", garbage)
    capsys.readouterr()
    _change(configs, "after garbage")
    assert _push(configs) == 0
    out = capsys.readouterr().out
    assert "damaged: " in out and "/config/current: holds " in out
    assert "published version 2" in out
    assert _state(configs, zookeeper) == (b"2", [1, 2])


def test_push_publishes_over_a_garbage_current_version(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/versions/0000000001", b"\x00not json at all")
    capsys.readouterr()
    # Even the same configuration: what current holds cannot be compared, so it is published.
    assert _push(configs) == 0
    out = capsys.readouterr().out
    assert "config/versions/0000000001: current version 1 is unreadable" in out
    assert "published version 2" in out
    assert _state(configs, zookeeper) == (b"2", [1, 2])
    assert main(["config", "history", "--configs", str(configs)]) == 0
    history = capsys.readouterr().out
    assert "unreadable: version 1: " in history and "*     2" in history


def test_push_over_a_current_pointing_nowhere_numbers_past_it(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/current", b"7")
    capsys.readouterr()
    _change(configs, "dangling")
    assert _push(configs) == 0
    out = capsys.readouterr().out
    assert "/config/current: points to version 7, which does not exist" in out
    assert "published version 8" in out
    assert _state(configs, zookeeper) == (b"8", [1, 8])


def test_rollback_goes_on_over_an_unreadable_current(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _change(configs, "second")
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/versions/0000000002", b'{"format": 1, "files": []}')
    capsys.readouterr()
    assert main(["config", "rollback", "1", "--configs", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "current version 2 is unreadable" in out and "published version 3" in out
    store = _store(configs, zookeeper)
    try:
        assert store.read_version(3).digest == store.read_version(1).digest
    finally:
        store.close()


def test_history_lists_a_hostile_version_as_unreadable(configs, zookeeper, capsys):
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/versions/0000000001", b"[" * 200_000 + b"]" * 200_000)
    capsys.readouterr()
    assert main(["config", "history", "--configs", str(configs)]) == 0
    assert "unreadable: version 1: " in capsys.readouterr().out


def test_a_stored_spec_that_is_not_utf8_is_refused_by_readers(configs, zookeeper, capsys):
    assert _push(configs) == 0
    store = _store(configs, zookeeper)
    try:
        spec = (configs / "stackha.yaml").read_bytes() + b"# caf\xe9\n"
        bundle = Bundle.from_contents({"stackha.yaml": spec})
        store.client.set(store.version_location(1),
                         serialise_version(ConfigVersion(1, bundle, "now", "hostile", "x")))
    finally:
        store.close()
    capsys.readouterr()
    assert main(["config", "history", "--configs", str(configs)]) == 0
    assert "files.stackha.yaml: byte " in capsys.readouterr().out
    _change(configs, "over non-utf8")
    assert _push(configs) == 0
    assert "published version 2" in capsys.readouterr().out


def test_repair_points_a_garbage_current_at_the_newest_readable_version(
        configs, zookeeper, capsys):
    assert _push(configs) == 0
    _change(configs, "second")
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/versions/0000000002", b"garbage")
    _write(configs, zookeeper, "config/current", b"\xff")
    capsys.readouterr()
    assert main(["config", "repair", "--configs", str(configs), "--dry-run"]) == 0
    assert _state(configs, zookeeper)[0] == b"\xff"
    capsys.readouterr()
    assert main(["config", "repair", "--configs", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "damaged: " in out and "/config/current: holds " in out
    assert "config/versions/0000000002: version 2 is unreadable" in out
    assert "repaired: current now points to version 1" in out
    assert _state(configs, zookeeper) == (b"1", [1, 2])
    assert main(["config", "repair", "--configs", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "repaired" not in out and "version 2 is unreadable" in out


@pytest.mark.parametrize("current", [b"5", b"2"])
def test_repair_fixes_a_current_pointing_to_a_missing_or_unreadable_version(
        configs, zookeeper, capsys, current):
    assert _push(configs) == 0
    _change(configs, "second")
    assert _push(configs) == 0
    _write(configs, zookeeper, "config/versions/0000000002", b"{}")
    _write(configs, zookeeper, "config/current", current)
    capsys.readouterr()
    assert main(["config", "repair", "--configs", str(configs)]) == 0
    out = capsys.readouterr().out
    assert "/config/current: points to" in out and f"version {current.decode()}" in out
    assert _state(configs, zookeeper)[0] == b"1"


def test_repair_leaves_a_healthy_tree_alone(configs, zookeeper, capsys):
    assert _push(configs) == 0
    capsys.readouterr()
    assert main(["config", "repair", "--configs", str(configs)]) == 0
    assert "no damage found (current version 1)" in capsys.readouterr().out
    assert _state(configs, zookeeper) == (b"1", [1])
