"""FileSync on a real filesystem: atomic writes, path safety, rollback."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stackha.agent.filesync import FileSync, UnsafePath, command_reload


def _sync(tmp_path: Path, **kwargs) -> FileSync:
    return FileSync(name="web", target=tmp_path / "target",
                    managed_list=tmp_path / "web.managed", **kwargs)


def test_writes_files_with_modes_and_removes_files_no_longer_wanted(tmp_path):
    sync = _sync(tmp_path)
    assert sync.apply({"a.conf": b"one", "sub/b.txt": b"two"}).ok
    assert (tmp_path / "target/sub/b.txt").read_bytes() == b"two"
    result = sync.apply({"a.conf": b"one, changed"})
    assert result.ok and result.changed
    assert not (tmp_path / "target/sub/b.txt").exists()
    assert sync.apply({"a.conf": b"one, changed"}).changed is False


def test_secret_files_are_written_0600(tmp_path):
    sync = FileSync(name="mycat", target=tmp_path / "t",
                    modes=lambda p: 0o600 if p == "server.xml" else 0o644)
    assert sync.apply({"server.xml": b"<x/>", "rule.xml": b"<y/>"}).ok
    assert (tmp_path / "t/server.xml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "t/rule.xml").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("path", ["../evil", "/etc/evil", "a/../../evil", "a//b", "./a"])
def test_unsafe_paths_are_refused_before_anything_is_written(tmp_path, path):
    sync = _sync(tmp_path)
    result = sync.apply({"fine.txt": b"x", path: b"evil"})
    assert not result.ok and result.stage == "validate"
    assert not (tmp_path / "target/fine.txt").exists()


def test_symlink_in_the_path_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "target").mkdir()
    os.symlink(outside, tmp_path / "target/link")
    sync = _sync(tmp_path)
    with pytest.raises(UnsafePath):
        sync.destination("link/file")
    result = sync.apply({"link/file": b"x"})
    assert not result.ok and "symlink" in result.reason
    assert not (outside / "file").exists()


def test_validation_failure_writes_nothing(tmp_path):
    sync = _sync(tmp_path, validate=lambda staging: ["bad"]
                 if (staging / "a").read_bytes() == b"bad" else [])
    assert sync.apply({"a": b"good"}).ok
    result = sync.apply({"a": b"bad"})
    assert (result.ok, result.stage, result.changed) == (False, "validate", False)
    assert (tmp_path / "target/a").read_bytes() == b"good"


def test_reload_failure_puts_previous_files_back(tmp_path):
    marker = tmp_path / "reloads"
    sync = _sync(tmp_path, reload=command_reload(["sh", "-c", f'echo x >> {marker}; '
                                           f'grep -q bad {tmp_path}/target/a && exit 3; exit 0']))
    assert sync.apply({"a": b"good", "keep": b"k"}).ok
    result = sync.apply({"a": b"bad", "new": b"n"})
    assert not result.ok and result.rolled_back and result.stage == "reload"
    assert "reload exited 3" in result.reason
    assert (tmp_path / "target/a").read_bytes() == b"good"
    assert (tmp_path / "target/keep").read_bytes() == b"k"
    assert not (tmp_path / "target/new").exists()
    assert marker.read_text().count("x") == 3  # first apply, failed reload, reload after undo


def test_health_failure_rolls_back(tmp_path):
    target = tmp_path / "target"
    sync = _sync(tmp_path, health=lambda: None if (target / "a").read_bytes() == b"ok"
                 else "unhealthy", health_wait=0.3)
    assert sync.apply({"a": b"ok"}).ok
    result = sync.apply({"a": b"sick"})
    assert (result.ok, result.stage, result.reason) == (False, "health", "unhealthy")
    assert (target / "a").read_bytes() == b"ok"


def test_managed_list_survives_a_restart(tmp_path):
    assert _sync(tmp_path).apply({"a": b"1", "b": b"2"}).ok
    again = _sync(tmp_path)
    assert again.apply({"a": b"1"}).changed
    assert not (tmp_path / "target/b").exists()
