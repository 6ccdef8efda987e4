"""The fidelity corpus against MyCat's recorded verdicts, for machines without the real MyCat.

tests/unit/golden/mycat_fidelity.json holds what the real MyCat 1.6.6.1 made of each case of
testkit/mycat_corpus.py (tests/integration/test_mycat_fidelity.py checks it is still what
MyCat says, and rewrites nothing: regenerate it by hand when the corpus changes). Here only
stackha runs: it must refuse every case MyCat refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stackha.model.problems import errors
from stackha.mycat.validate import validate_mycat
from testkit.mycat_corpus import STACKHA_ONLY, VALID, corpus

GOLDEN = Path(__file__).parent / "golden" / "mycat_fidelity.json"
RECORDED: dict[str, str] = json.loads(GOLDEN.read_text())
CASES = corpus()


def stackha_accepts(name: str) -> bool:
    files = {f"mycat/{k}": v.encode() for k, v in CASES[name].items() if v is not None}
    return not errors(validate_mycat(files)[1])


def test_every_case_has_a_recorded_verdict():
    assert sorted(RECORDED) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(n for n, v in RECORDED.items() if v != "LOADED"))
def test_refused_by_mycat_is_refused_by_stackha(name: str):
    assert not stackha_accepts(name), f"MyCat: {RECORDED[name]}"


@pytest.mark.parametrize("name", sorted(n for n in RECORDED if n.startswith(VALID)))
def test_valid_variants_are_accepted(name: str):
    assert RECORDED[name] == "LOADED"
    assert stackha_accepts(name)


@pytest.mark.parametrize("name", sorted(n for n in RECORDED if n.startswith(STACKHA_ONLY)))
def test_deliberate_refusals(name: str):
    assert RECORDED[name] == "LOADED"
    assert not stackha_accepts(name)
