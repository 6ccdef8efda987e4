"""The agent's health-check scheduler and keepalived's track files (issue 16)."""

from __future__ import annotations

import os
import threading

import pytest

from stackha.checks.scheduler import Check, CheckScheduler, Verdict
from stackha.keepalived.trackfile import TrackFiles


class Flaky:
    def __init__(self, results: list[str | None]):
        self.results = list(results)

    def __call__(self) -> str | None:
        return self.results.pop(0) if self.results else None


def _scheduler(tmp_path, probe, fall=2, rise=2):
    changes: list[tuple[str, Verdict]] = []
    tracks = TrackFiles(tmp_path)
    scheduler = CheckScheduler(tracks, on_change=lambda n, v: changes.append((n, v)))
    scheduler.configure([Check("nginx", probe, 0.1, fall, rise, "chk_nginx.track")])
    return scheduler, tracks, changes


def test_fall_failures_in_a_row_fail_the_check_and_write_1(tmp_path):
    scheduler, tracks, changes = _scheduler(tmp_path, Flaky(["refused", None, "refused",
                                                             "refused"]))
    assert tracks.read("chk_nginx.track") == 0  # written at configure
    for _ in range(3):
        scheduler.run_once()
    assert tracks.read("chk_nginx.track") == 0 and not changes  # never two in a row
    scheduler.run_once()
    assert tracks.read("chk_nginx.track") == 1
    assert changes == [("nginx", Verdict(False, "refused"))]


def test_rise_passes_bring_it_back(tmp_path):
    scheduler, tracks, changes = _scheduler(tmp_path, Flaky(["x", "x", None, "x", None, None]))
    for _ in range(6):
        scheduler.run_once()
    assert [v.healthy for _, v in changes] == [False, True]
    assert tracks.read("chk_nginx.track") == 0


def test_a_probe_that_raises_is_a_failure_not_a_dead_scheduler(tmp_path):
    def broken() -> str | None:
        raise RuntimeError("boom")

    scheduler, tracks, _ = _scheduler(tmp_path, broken)
    scheduler.run_once()
    scheduler.run_once()
    assert tracks.read("chk_nginx.track") == 1
    assert "boom" in scheduler.verdicts()["nginx"].reason


def test_the_thread_probes_at_the_interval_and_reports_a_death(tmp_path):
    dead = threading.Event()
    failed = threading.Event()
    calls = []

    def probe() -> str | None:
        calls.append(1)
        return "refused" if dead.is_set() else None

    tracks = TrackFiles(tmp_path)
    scheduler = CheckScheduler(tracks, on_change=lambda n, v: failed.set())
    scheduler.configure([Check("nginx", probe, 0.02, 2, 2, "chk_nginx.track")])
    scheduler.start()
    try:
        dead.set()
        assert failed.wait(5)
        assert tracks.read("chk_nginx.track") == 1
    finally:
        scheduler.stop()
    assert len(calls) >= 2


def test_reconfigure_rewrites_a_track_file_left_by_a_killed_agent(tmp_path):
    (tmp_path / "chk_nginx.track").write_text("1\n")
    _scheduler(tmp_path, Flaky([]))
    assert (tmp_path / "chk_nginx.track").read_text() == "0\n"


def test_track_writes_are_atomic_renames_in_the_same_directory(tmp_path):
    tracks = TrackFiles(tmp_path)
    tracks.write("yield.track", 1)
    inode = os.stat(tmp_path / "yield.track").st_ino
    assert tracks.write("yield.track", 1) is False  # unchanged: no inotify event
    assert tracks.write("yield.track", 0) is True
    assert os.stat(tmp_path / "yield.track").st_ino != inode  # a new file, renamed in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["yield.track"]


@pytest.mark.parametrize("name", ["../x", "a/b", "", ".hidden"])
def test_track_names_stay_in_the_directory(tmp_path, name):
    with pytest.raises(ValueError):
        TrackFiles(tmp_path).write(name, 1)


@pytest.mark.parametrize("value", [255, -255, True, "1"])
def test_track_values_are_keepalived_integers(tmp_path, value):
    with pytest.raises(ValueError):
        TrackFiles(tmp_path).write("x.track", value)


def test_a_hung_probe_delays_no_other_check(tmp_path):
    """A MyCat that accepts and never greets holds its probe until the timeout: nginx dying
    meanwhile must still fail its check (the old scheduler ran probes one after another)."""
    release = threading.Event()
    hung = threading.Event()
    nginx_failed = threading.Event()

    def mycat() -> str | None:
        hung.set()
        release.wait(10)
        return "timed out"

    changes = []

    def changed(name: str, verdict: Verdict) -> None:
        changes.append((name, verdict.healthy))
        if name == "nginx":
            nginx_failed.set()

    scheduler = CheckScheduler(TrackFiles(tmp_path), on_change=changed)
    scheduler.configure([Check("mycat", mycat, 0.02, 2, 2, "chk_mycat.track"),
                         Check("nginx", lambda: "refused", 0.02, 2, 2, "chk_nginx.track")])
    scheduler.start()
    try:
        assert hung.wait(5)
        assert nginx_failed.wait(5), "the nginx check waited behind the hung MyCat probe"
        assert not release.is_set() and changes == [("nginx", False)]
        assert TrackFiles(tmp_path).read("chk_nginx.track") == 1
    finally:
        release.set()
        scheduler.stop()


def test_groups_are_configured_apart_with_their_own_callbacks(tmp_path):
    node_changes, lvs_changes = [], []
    scheduler = CheckScheduler(TrackFiles(tmp_path),
                               on_change=lambda n, v: node_changes.append(n))
    scheduler.configure([Check("nginx", Flaky(["x", "x"]), 0.1, 2, 2, "chk_nginx.track")])
    scheduler.configure([Check("rs:mycat1", Flaky(["refused"]), 0.1, initial=None)],
                        group="lvs", on_change=lambda n, v: lvs_changes.append((n, v)))
    assert set(scheduler.verdicts()) == {"nginx"}
    assert scheduler.verdicts("lvs") == {"rs:mycat1": Verdict(None, "not checked yet")}
    scheduler.run_once("lvs")
    # unknown until the first result, which decides at once
    assert lvs_changes == [("rs:mycat1", Verdict(False, "refused"))] and not node_changes
    scheduler.configure([], group="lvs")  # the director's plan went away
    assert scheduler.verdicts("lvs") == {} and set(scheduler.verdicts()) == {"nginx"}
    scheduler.run_once()
    scheduler.run_once()
    assert node_changes == ["nginx"]
    with pytest.raises(ValueError, match="in group node"):
        scheduler.configure([Check("nginx", Flaky([]), 0.1)], group="lvs")


def test_without_track_files_checks_still_run(tmp_path):
    changes = []
    scheduler = CheckScheduler(None, on_change=lambda n, v: changes.append(v.healthy))
    scheduler.configure([Check("x", Flaky(["a", "b"]), 0.1, 2, 2, "chk_x.track")])
    scheduler.run_once()
    scheduler.run_once()
    assert changes == [False] and not list(tmp_path.iterdir())


def test_a_reconfigured_check_is_not_probed_twice_as_often(tmp_path):
    calls = []
    scheduler = CheckScheduler(TrackFiles(tmp_path))
    check = Check("nginx", lambda: calls.append(1), 0.05)
    scheduler.configure([check])
    scheduler.start()
    try:
        for _ in range(5):  # each configure puts an entry in the schedule
            scheduler.configure([check])
        threading.Event().wait(0.5)
    finally:
        scheduler.stop()
    # one probe each 0.05 s at most (10 in 0.5 s, and 6 right after the configures); with
    # stale entries kept each configure would add its own 10
    assert len(calls) <= 20
