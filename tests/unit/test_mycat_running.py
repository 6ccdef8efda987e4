"""What the running MyCat reports against what the files define (pure part)."""

from __future__ import annotations

from pathlib import Path

from stackha.mycat.running import Expected, compare
from stackha.mycat.validate import validate_mycat

ROOT = Path(__file__).resolve().parents[2]


def _expected() -> Expected:
    files = {f"mycat/{p.name}": p.read_bytes() for p in (ROOT / "configs/mycat").iterdir()}
    model, _ = validate_mycat(files)
    assert model is not None
    return Expected.of(model)


def _datanodes(*names: str) -> list[dict]:
    return [{"NAME": n, "DATHOST": f"backend/db{n[-1]}"} for n in names]


def _sources(*names: str) -> list[dict]:
    return [{"DATANODE": n, "NAME": "hostM1"} for n in names]


def test_example_expects_its_schema_nodes_and_users():
    expected = _expected()
    assert expected.schemas == {"shop"}
    assert expected.data_nodes == {"dn0": "backend/db0", "dn1": "backend/db1",
                                   "dn2": "backend/db2"}
    assert expected.passwords == {"app": "app_pw", "report": "report_pw"}


def test_what_mycat_reports_matches():
    assert compare(_expected(), [{"DATABASE": "shop"}], _sources("dn2", "dn0", "dn1"),
                   _datanodes("dn0", "dn1", "dn2")) == []


def test_old_schema_still_running_is_named():
    # A full reload that failed its backend check leaves the old dataNodes and schemas.
    problems = compare(_expected(), [{"DATABASE": "oldshop"}], _sources("dn0", "dn1"),
                       [])
    assert problems == ["MyCat runs schemas oldshop, the files define shop",
                        "MyCat runs dataNodes dn0, dn1, the files define dn0, dn1, dn2"]


def test_a_datanode_moved_to_another_database_is_named():
    rows = [*_datanodes("dn0", "dn1"), {"NAME": "dn2", "DATHOST": "backend/db9"}]
    assert compare(_expected(), [{"database": "shop"}], _sources("dn0", "dn1", "dn2"),
                   rows) == \
        ["MyCat runs dataNode dn2 on backend/db9, the files say backend/db2"]
