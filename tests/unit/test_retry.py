"""Which failures are tried again, and when (stackha.model.retry), and where the MyCat side
marks its reasons so."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from stackha.agent import mycatrole
from stackha.agent.filesync import CommandReload, FileSync
from stackha.model.retry import RETRY_DELAYS, Retryable, plan_retry
from stackha.mycat.manager import ManagerError, ManagerNoAnswer, ManagerUnavailable
from stackha.mycat.running import Expected, verify
from stackha.mycat.validate import validate_mycat

ROOT = Path(__file__).resolve().parents[2]


def test_tries_double_apart_and_end():
    plans = []
    previous = None
    while (plan := plan_retry(7, previous, now=100.0)) is not None:
        plans.append(plan)
        previous = plan
    assert [p.attempt for p in plans] == list(range(1, len(RETRY_DELAYS) + 1))
    assert [p.delay for p in plans] == list(RETRY_DELAYS)
    assert all(b == 2 * a for a, b in pairwise(RETRY_DELAYS))
    assert plans[0].due == 105.0
    assert plan_retry(7, plans[-1], now=0.0) is None


def test_another_version_starts_its_own_count():
    used_up = plan_retry(7, None, now=0.0, delays=(1.0,))
    assert plan_retry(7, used_up, now=0.0, delays=(1.0,)) is None
    fresh = plan_retry(8, used_up, now=0.0, delays=(1.0,))
    assert fresh is not None and fresh.number == 8 and fresh.attempt == 1


def test_a_retryable_reason_is_a_string_whose_mark_formatting_drops():
    reason = Retryable("no greeting")
    assert reason == "no greeting" and f"x: {reason}" == "x: no greeting"
    # Formatting into a longer text drops the mark: only the deciding code passes it on.
    assert not isinstance(f"{reason}", Retryable)


def _expected() -> Expected:
    files = {f"mycat/{p.name}": p.read_bytes() for p in (ROOT / "configs/mycat").iterdir()}
    model, _ = validate_mycat(files)
    assert model is not None
    return Expected.of(model)


class _Manager:
    def __init__(self, error: ManagerError) -> None:
        self.error = error

    def databases(self):
        raise self.error


@pytest.mark.parametrize(("error", "tried_again"), [
    (ManagerUnavailable("127.0.0.1:9066: not a MySQL greeting: timed out"), True),
    (ManagerError("Access denied for user 'report'", code=1045), False),
])
def test_mycat_that_cannot_be_asked_is_retryable_one_that_refuses_is_not(error, tried_again):
    reason = verify(lambda user, password: _Manager(error), _expected(), "report")
    assert reason is not None and error.message in reason
    assert isinstance(reason, Retryable) is tried_again


def _sync(tmp_path: Path, reload) -> FileSync:
    return FileSync(name="svc", target=tmp_path / "target", reload=reload)


def test_filesync_says_a_failure_is_retryable_only_when_the_reload_said_so(tmp_path: Path):
    (tmp_path / "target").mkdir()
    answers = iter([Retryable("not answering"), None])
    result = _sync(tmp_path, lambda: next(answers)).apply({"a.conf": b"one\n"})
    assert not result.ok and result.rolled_back and result.retryable
    assert result.reason == "not answering"
    refused = _sync(tmp_path, CommandReload(["false"])).apply({"a.conf": b"two\n"})
    assert not refused.ok and not refused.retryable


def test_files_that_could_not_be_put_back_are_not_tried_again(tmp_path: Path, monkeypatch):
    (tmp_path / "target").mkdir()
    sync = _sync(tmp_path, lambda: Retryable("not answering"))
    monkeypatch.setattr(sync, "_restore", lambda *a, **k: "restoring files: disk full")
    result = sync.apply({"a.conf": b"one\n"})
    assert not result.ok and result.rollback_problem and not result.retryable
    monkeypatch.setattr(sync, "_restore",
                        lambda *a, **k: "reload after rollback: not answering")
    assert sync.apply({"a.conf": b"two\n"}).retryable


class _SilentMycat:
    """A MyCat manager port that takes logins and answers no command in time."""

    def __init__(self, *args, **kwargs) -> None:
        pass

    def _silent(self, *args, **kwargs):
        raise ManagerNoAnswer("no answer within 5 s (127.0.0.1:9066: timed out)")

    reload_config = reload_config_all = databases = version = _silent


@pytest.mark.parametrize(("kind", "tried_again"), [("config", True), ("config_all", False)])
def test_an_unanswered_full_reload_stays_a_refusal_even_when_mycat_stays_silent(
        tmp_path: Path, monkeypatch, kind: str, tried_again: bool):
    # config_all unanswered is MyCat 1.6's word for a new backend that does not answer; the
    # show commands after it going unanswered too must not turn that into "busy".
    monkeypatch.setattr(mycatrole, "ManagerClient", _SilentMycat)
    reload = mycatrole.ManagerReload(
        mycatrole.MycatManagerSettings(user="app", password_file=_password(tmp_path),
                                       verify_attempts=1, verify_wait=0.0), tmp_path)
    files = {p.name: p.read_bytes() for p in (ROOT / "configs/mycat").iterdir()}
    reload.prepare({k: v for k, v in files.items() if k != "myid.properties"})
    reload.kind = kind
    reason = reload()
    assert reason is not None and "no answer" in reason
    assert isinstance(reason, Retryable) is tried_again


def _password(tmp_path: Path) -> Path:
    path = tmp_path / "manager.pw"
    path.write_text("app_pw\n")
    return path
