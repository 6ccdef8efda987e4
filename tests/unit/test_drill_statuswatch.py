"""stackha drill: the status reader gives up on a ZooKeeper that does not answer, the watch
records it, and waiting for green only trusts fresh readings."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import pytest

from stackha.lab.drill.green import sample_of
from stackha.lab.drill.statuswatch import StatusReader, StatusWatch
from stackha.model.spec import parse_spec
from stackha.model.status import NodeStatus
from stackha.store.base import StoreError

ROOT = Path(__file__).resolve().parents[2]


class FakeStore:
    def __init__(self, hang: threading.Event | None = None) -> None:
        self.hang = hang
        self.connected = True
        self.closed = False

    def current_number(self) -> int:
        if self.hang is not None:
            self.hang.wait(10)
            if self.closed:
                raise StoreError("closed")
        return 1

    def statuses(self) -> dict[str, NodeStatus]:
        return {"nginx1": NodeStatus("nginx1", applied_version=1,
                                     vrrp=MappingProxyType({"web": "MASTER"}),
                                     health=MappingProxyType({"nginx": "ok"}))}

    def close(self) -> None:
        self.closed = True
        if self.hang is not None:
            self.hang.set()


@pytest.fixture
def reader():
    spec, _ = parse_spec((ROOT / "configs/stackha.yaml").read_text(), "spec")
    assert spec is not None
    return StatusReader(spec, connect_timeout=0.1, read_timeout=0.3)


def test_reader_keeps_its_session_while_it_works(reader, monkeypatch):
    opened: list[FakeStore] = []
    monkeypatch.setattr(reader, "_open", lambda: opened.append(FakeStore()) or opened[-1])
    first, second = reader.document(), reader.document()
    # Each reading carries its own time (the reports' ages are taken against it).
    assert first.pop("read_at") and second.pop("read_at")
    assert first == second and first["current_version"] == 1 and len(opened) == 1
    assert first["nodes"][0]["node"] == "nginx1" and first["nodes"][0]["reporting"]
    opened[0].connected = False
    reader.document()
    assert len(opened) == 2 and opened[0].closed


def test_reader_judges_report_ages_when_it_reads(reader, monkeypatch):
    # A report an hour old (a hard-killed MASTER whose session lingers) is stale, not MASTER.
    class OldReport(FakeStore):
        def statuses(self) -> dict[str, NodeStatus]:
            (status,) = super().statuses().values()
            return {"nginx1": replace(status, heartbeat="2000-01-01T00:00:00.000000Z")}

    monkeypatch.setattr(reader, "_open", OldReport)
    sample = sample_of(0.0, reader.document())
    assert "group web: no MASTER (stale report from nginx1 claims it)" in sample.problems
    assert not sample.green and sample.masters.get("web") is None


def test_reader_gives_up_on_a_read_kazoo_holds_back(reader, monkeypatch):
    hung = FakeStore(threading.Event())
    monkeypatch.setattr(reader, "_open", lambda: hung)
    started = time.monotonic()
    with pytest.raises(StoreError, match="no answer within"):
        reader.document()
    assert time.monotonic() - started < 3 and hung.closed


def test_reader_turns_a_failed_connect_into_store_error(reader, monkeypatch):
    def refuse() -> FakeStore:
        raise StoreError("cannot reach ZooKeeper at x: timed out")

    monkeypatch.setattr(reader, "_open", refuse)
    with pytest.raises(StoreError, match="cannot reach ZooKeeper"):
        reader.document()


def test_watch_records_unreadable_status_and_waits_for_fresh_green():
    state = {"up": True}

    def read() -> dict:
        if not state["up"]:
            raise StoreError("no answer within 5 s")
        return {"current_version": 1, "split_brain": {}, "nodes": [
            {"node": "a", "reporting": True, "applied_version": 1, "health": {},
             "vrrp": {"web": "MASTER"}, "last_error": ""}]}

    watch = StatusWatch(read, time.monotonic(), interval=0.02).start()
    try:
        assert watch.wait_green(timeout=2, stable=0.1) is not None
        state["up"] = False
        assert watch.wait_for(lambda s: not s.reachable, timeout=2) is not None
        assert watch.wait_green(timeout=0.3, stable=0.1) is None  # old green does not count
        state["up"] = True
        green = watch.wait_green(timeout=2, stable=0.1)
        assert green is not None
        assert any(not s.reachable and s.t < green for s in watch.series())
    finally:
        watch.stop()
