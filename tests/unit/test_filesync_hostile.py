"""FileSync against hostile versions, a hostile local user and faults: it refuses, it never
raises, it never writes outside its target, and a killed apply comes back whole."""

from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stackha.agent.filesync import FileSync, command_reload, read_managed_list
from stackha.model.bundle import path_conflicts, unsafe_path_reason

ROOT = Path(__file__).resolve().parents[2]


def _sync(tmp_path: Path, **kwargs) -> FileSync:
    (tmp_path / "state").mkdir(exist_ok=True)
    return FileSync(name="web", target=tmp_path / "target",
                    managed_list=tmp_path / "state/web.managed", **kwargs)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize(("path", "words"), [
    ("a\n/etc/passwd", "control characters"),
    ("tab\there", "control characters"),
    ("x" * 300, "longer than 255 bytes"),
    ("/".join(["d" * 200] * 6), "longer than 1024 bytes"),
])
def test_bad_names_are_refused_by_the_path_check(path, words):
    reason = unsafe_path_reason(path)
    assert reason is not None and words in reason


def test_a_file_that_is_also_a_directory_prefix_is_a_conflict():
    assert path_conflicts(["conf.d", "conf.d/x.conf", "other"]) == [
        "'conf.d' is a file and also a directory of 'conf.d/x.conf'"]
    assert path_conflicts(["conf.d/x.conf", "conf.dx"]) == []


@pytest.mark.parametrize("files", [
    {"a\n/etc/passwd": b"x"},
    {"conf.d": b"x", "conf.d/x.conf": b"y"},
    {"x" * 300: b"x"},
])
def test_hostile_names_are_refusals_and_the_old_files_stay(tmp_path, files):
    sync = _sync(tmp_path)
    assert sync.apply({"keep": b"good"}).ok
    result = sync.apply({"keep": b"new", **files})
    assert (result.ok, result.stage, result.changed) == (False, "validate", False)
    assert _tree(tmp_path / "target") == {"keep": b"good"}


def test_a_file_where_the_target_has_a_directory_is_refused(tmp_path):
    sync = _sync(tmp_path)
    assert sync.apply({"keep": b"good"}).ok
    (tmp_path / "target/logs").mkdir()
    (tmp_path / "target/logs/error.log").write_bytes(b"log")
    result = sync.apply({"keep": b"new", "logs": b"file"})
    assert not result.ok and "logs: is a directory on this node" in result.reason
    assert (tmp_path / "target/keep").read_bytes() == b"good"
    assert (tmp_path / "target/logs/error.log").read_bytes() == b"log"


def test_a_directory_where_the_target_has_a_file_is_refused(tmp_path):
    sync = _sync(tmp_path)
    assert sync.apply({"keep": b"good"}).ok
    (tmp_path / "target/plain").write_bytes(b"someone's file")
    result = sync.apply({"keep": b"new", "plain/x.conf": b"y"})
    assert not result.ok and "not a directory" in result.reason
    assert (tmp_path / "target/keep").read_bytes() == b"good"
    assert (tmp_path / "target/plain").read_bytes() == b"someone's file"


def test_a_managed_file_turned_symlink_is_dropped_without_touching_its_target(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    sync = _sync(tmp_path)
    assert sync.apply({"keep": b"1", "gone": b"2"}).ok
    (tmp_path / "target/gone").unlink()
    os.symlink(outside, tmp_path / "target/gone")
    result = sync.apply({"keep": b"1b"})
    assert result.ok, result.reason
    assert not os.path.lexists(tmp_path / "target/gone")
    assert outside.read_bytes() == b"precious"


def test_an_old_line_format_managed_list_cannot_name_files_outside(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"do not delete")
    (tmp_path / "state").mkdir()
    # What the old line format turned a name holding a newline into, after a restart.
    (tmp_path / "state/web.managed").write_text(f"a\n{victim}\n../victim\nb\n")
    sync = _sync(tmp_path)
    assert sync._managed == {"a", "b"}
    assert sync.apply({"c": b"x"}).ok
    assert victim.read_bytes() == b"do not delete"
    stored = json.loads((tmp_path / "state/web.managed").read_text())
    assert stored == {"format": 1, "files": ["c"]}
    assert read_managed_list(tmp_path / "state/web.managed") == {"c"}


def test_garbage_managed_list_is_read_as_nothing(tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state/web.managed").write_bytes(b'{"files": [1, null, "/abs", "ok"]}')
    assert read_managed_list(tmp_path / "state/web.managed") == {"ok"}
    (tmp_path / "state/web.managed").write_bytes(b"\xff\xfe\x00garbage")
    assert read_managed_list(tmp_path / "state/web.managed") == set()


def test_no_space_while_writing_leaves_every_previous_file(tmp_path, monkeypatch):
    sync = _sync(tmp_path)
    assert sync.apply({"a": b"1", "b": b"2", "c": b"3"}).ok
    monkeypatch.setenv("STACKHA_FAILPOINT", "enospc@write_temp")
    result = sync.apply({"a": b"1new", "b": b"2new", "c": b"3new"})
    assert not result.ok and not result.changed
    assert "no space left on device" in result.reason
    assert _tree(tmp_path / "target") == {"a": b"1", "b": b"2", "c": b"3"}
    assert not (tmp_path / "state/web.journal").exists()


def test_no_space_for_the_journal_changes_nothing(tmp_path, monkeypatch):
    sync = _sync(tmp_path)
    assert sync.apply({"a": b"1"}).ok
    monkeypatch.setenv("STACKHA_FAILPOINT", "enospc@journal")
    result = sync.apply({"a": b"2"})
    assert not result.ok and "journal: no space left on device" in result.reason
    assert (tmp_path / "target/a").read_bytes() == b"1"


def test_a_hanging_reload_times_out_and_the_rollback_reload_is_short(tmp_path):
    marker = tmp_path / "reloads"
    reload = command_reload(["sh", "-c", f"echo x >> {marker}; "
                                         f"grep -q hang {tmp_path}/target/a && sleep 30; exit 0"],
                            timeout=1.0, retry_timeout=0.3)
    sync = _sync(tmp_path, reload=reload)
    assert sync.apply({"a": b"fine"}).ok
    result = sync.apply({"a": b"hang"})
    assert (result.ok, result.stage) == (False, "reload")
    assert result.reason == "reload timed out after 1 s"
    assert (tmp_path / "target/a").read_bytes() == b"fine"
    assert result.rollback_problem == ""
    assert marker.read_text().count("x") == 3


def test_reload_that_itself_hangs_during_rollback_is_cut_at_the_short_limit(tmp_path):
    reload = command_reload(["sleep", "30"], timeout=0.5, retry_timeout=0.2)
    sync = _sync(tmp_path, reload=reload)
    (tmp_path / "target").mkdir()
    result = sync.apply({"a": b"x"})
    assert result.rolled_back
    assert result.rollback_problem == "reload after rollback: reload timed out after 0.2 s"
    # The rollback did not complete: its journal stays, for the next start to finish it.
    assert (tmp_path / "state/web.journal").exists()


# a local attacker swapping directories --------------------------------------------------
_RENAME_EXCHANGE = 2
_libc = ctypes.CDLL(None, use_errno=True)


def _exchange(a: Path, b: Path) -> None:
    _libc.renameat2(-100, bytes(a), -100, bytes(b), _RENAME_EXCHANGE)


def test_swapping_a_directory_for_a_symlink_never_gets_a_write_outside(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target = tmp_path / "target"
    sync = _sync(tmp_path)
    assert sync.apply({"sub/deeper/page": b"v0", "sub/other": b"o"}).ok
    decoy = target / "decoy"
    os.symlink(outside, decoy)
    stop = threading.Event()
    swaps = [0]

    def attacker() -> None:
        while not stop.is_set():
            _exchange(target / "sub", decoy)  # sub <-> a symlink to outside, atomically
            swaps[0] += 1

    thread = threading.Thread(target=attacker)
    thread.start()
    try:
        results = [sync.apply({"sub/deeper/page": f"v{n}".encode(), "sub/other": b"o",
                               f"sub/new{n}": b"n"}) for n in range(1, 200)]
    finally:
        stop.set()
        thread.join()
    assert swaps[0] > 100
    assert list(outside.iterdir()) == [], "something was written outside the target"
    assert any(not r.ok for r in results), "the swaps never got in the way: no attack seen"
    assert all(r.ok or r.stage in ("write", "validate") for r in results)


# killed half-way: the next start puts the previous set back ------------------------------
_KILLED_APPLY = """
import sys
from pathlib import Path
from stackha.agent.filesync import FileSync
root = Path(sys.argv[1])
sync = FileSync(name="web", target=root / "target", managed_list=root / "state/web.managed",
                reload=lambda: None)
sync.apply({"a": b"new a", "b": b"new b", "c/d": b"new d"}, version=2)
"""


@pytest.mark.parametrize("step", ["after_journal", "after_first_rename", "after_all_renames",
                                  "after_reload", "before_journal_clear"])
def test_a_killed_apply_is_undone_on_the_next_start(tmp_path, step):
    sync = _sync(tmp_path)
    assert sync.apply({"a": b"old a", "b": b"old b", "gone": b"old gone"}, version=1).ok
    env = {**os.environ, "STACKHA_FAILPOINT": step, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _KILLED_APPLY, str(tmp_path)], env=env)
    assert done.returncode == -9, "the failpoint did not fire"
    assert (tmp_path / "state/web.journal").exists()
    again = _sync(tmp_path)
    assert again.recover(committed=1) == 2
    files = _tree(tmp_path / "target")
    assert files == {"a": b"old a", "b": b"old b", "gone": b"old gone"}
    assert not (tmp_path / "state/web.journal").exists()
    assert again._managed == {"a", "b", "gone"}
    assert _sync(tmp_path)._managed == {"a", "b", "gone"}


def test_a_journal_of_a_committed_version_is_only_cleared(tmp_path):
    sync = _sync(tmp_path)
    assert sync.apply({"a": b"old"}, version=1).ok
    assert sync.apply({"a": b"new"}, version=2, hold=True).ok
    assert (tmp_path / "state/web.journal").exists()
    assert _sync(tmp_path).recover(committed=2) is None
    assert (tmp_path / "target/a").read_bytes() == b"new"
    assert not (tmp_path / "state/web.journal").exists()


def test_a_held_apply_rolls_back_when_asked(tmp_path):
    sync = _sync(tmp_path)
    assert sync.apply({"a": b"old"}, version=1).ok
    assert sync.apply({"a": b"new", "b": b"added"}, version=2, hold=True).ok
    assert sync.rollback() == ""
    assert _tree(tmp_path / "target") == {"a": b"old"}
    assert sync._managed == {"a"}
