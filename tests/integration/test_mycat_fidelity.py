"""Fidelity: stackha's MyCat validator against the real MyCat 1.6.6.1, side by side.

Every case of testkit/mycat_corpus.py (the example configs with one operator's mistake each)
goes to both: the real MyCat loads it through its own start-up code (testkit/realmycat.py),
stackha validates it as push-config would. The suite fails when stackha accepts a file set
MyCat refuses - a version that would stop every MyCat node it reached. Refusing what MyCat
loads is over-strictness; it is allowed only where the case's name says why
(``refused_by_stackha_only__...``), and the agreement rate is printed either way.

Needs java, javac and the release tarball at ../shared/mycat/ (or $STACKHA_MYCAT_TARBALL);
without them the suite skips and says which is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from stackha.model.problems import errors
from stackha.mycat.validate import validate_mycat
from testkit import ci_has_mycat, skip_unless_ci
from testkit.mycat_corpus import STACKHA_ONLY, VALID, Files, corpus
from testkit.realmycat import RealMycat, Verdict, missing_tools
from tests.integration.conftest import FIGURES

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Outcome:
    name: str
    mycat: Verdict
    stackha_errors: tuple[str, ...]

    @property
    def stackha_accepts(self) -> bool:
        return not self.stackha_errors

    @property
    def agrees(self) -> bool:
        """Same verdict, or a refusal the case's name declares deliberate."""
        if self.stackha_accepts == self.mycat.loaded:
            return True
        return self.name.startswith(STACKHA_ONLY) and self.mycat.loaded


def stackha_errors(files: Files) -> tuple[str, ...]:
    bundle = {f"mycat/{name}": text.encode() for name, text in files.items() if text is not None}
    _, problems = validate_mycat(bundle)
    return tuple(str(p) for p in errors(problems))


def compare(cases: Mapping[str, Files], oracle: RealMycat) -> list[Outcome]:
    verdicts = oracle.verdicts(cases)
    return [Outcome(name, verdicts[name], stackha_errors(files)) for name, files in cases.items()]


def agreement_rate(outcomes: list[Outcome]) -> float:
    return sum(o.agrees for o in outcomes) / len(outcomes)


def report(outcomes: list[Outcome]) -> Iterator[str]:
    refused = sum(not o.mycat.loaded for o in outcomes)
    yield (f"MyCat fidelity: {len(outcomes)} cases ({refused} refused by MyCat 1.6.6.1), "
           f"agreement {agreement_rate(outcomes):.1%}, "
           f"stackha accepts what MyCat refuses: "
           f"{sum(o.stackha_accepts and not o.mycat.loaded for o in outcomes)}, "
           f"deliberately stricter: "
           f"{sum(o.name.startswith(STACKHA_ONLY) and not o.stackha_accepts for o in outcomes)}")
    for outcome in outcomes:
        if not outcome.agrees:
            side = "accepts" if outcome.stackha_accepts else "refuses"
            mycat = outcome.mycat.reason or "LOADED"
            yield f"  DISAGREE {outcome.name}: stackha {side}; MyCat: {mycat}"


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> list[Outcome]:
    reason = missing_tools()
    if reason:
        # CI has Java (install-deps) and, where ../shared is, the release.
        skip_unless_ci(f"no real MyCat to compare with: {reason}",
                       ci_has_it=ci_has_mycat())
    started = time.monotonic()
    results = compare(corpus(), RealMycat())
    lines = list(report(results))
    lines[0] += f" ({time.monotonic() - started:.0f} s)"
    # The figure goes into the run's summary ("figures"), passing or not.
    request.config.stash[FIGURES].extend(lines)
    return results


def test_corpus_is_large_enough():
    assert len(corpus()) >= 100


def test_stackha_never_accepts_what_mycat_refuses(outcomes: list[Outcome]):
    unsafe = [f"{o.name}: MyCat says {o.mycat.reason}" for o in outcomes
              if o.stackha_accepts and not o.mycat.loaded]
    assert unsafe == []


def test_deliberate_refusals_are_files_mycat_loads(outcomes: list[Outcome]):
    """A ``refused_by_stackha_only__`` name is a claim: MyCat loads it and stackha does not."""
    wrong = [o.name for o in outcomes if o.name.startswith(STACKHA_ONLY)
             and (not o.mycat.loaded or o.stackha_accepts)]
    assert wrong == []


def test_valid_variants_load_in_both(outcomes: list[Outcome]):
    wrong = [f"{o.name}: MyCat {'loads' if o.mycat.loaded else o.mycat.reason}; stackha "
             f"{o.stackha_errors[:1] or 'accepts'}" for o in outcomes
             if o.name.startswith(VALID) and not (o.mycat.loaded and o.stackha_accepts)]
    assert wrong == []


def test_recorded_verdicts_are_mycats(outcomes: list[Outcome]):
    """tests/unit/golden/mycat_fidelity.json (the unit tests' stand-in for MyCat) is current."""
    golden = Path(__file__).parents[1] / "unit" / "golden" / "mycat_fidelity.json"
    recorded = {name: verdict == "LOADED"
                for name, verdict in json.loads(golden.read_text()).items()}
    assert recorded == {o.name: o.mycat.loaded for o in outcomes}


def test_agreement_rate_is_complete(outcomes: list[Outcome]):
    """Every disagreement left is over-strictness nobody has named yet: keep it at zero."""
    assert [line for line in report(outcomes)][1:] == []


# A full MyCat start of these files takes about 1 s here (measured 2026-12-02; the opt-in
# this replaces assumed 5-15 s), so every run checks the oracle on them.
FULL_START_CASES = (
    "valid__examples_as_shipped", "valid__read_host_with_weight", "user_without_schemas",
    "data_host_not_switch_from_1_6_7", "function_class_does_not_exist",
    "mod_count_more_than_data_nodes", "sequence_time_worker_id_not_a_number",
    STACKHA_ONLY + "check_sql_schema_typo_read_as_false",
)


def test_oracle_agrees_with_a_full_mycat_start():
    """The driver is a faithful oracle: on these cases the whole MyCat (MycatStartup, on
    loopback ports) comes up exactly when the driver says LOADED."""
    reason = missing_tools()
    if reason:
        skip_unless_ci(f"no real MyCat to start: {reason}", ci_has_it=ci_has_mycat())
    cases = {name: corpus()[name] for name in FULL_START_CASES}
    mycat = RealMycat()
    quick = mycat.verdicts(cases)
    # both outcomes present, or agreement would prove nothing
    assert {v.loaded for v in quick.values()} == {True, False}
    differ = []
    for name, files in cases.items():
        full = mycat.full_start(files, timeout=180)
        if full.loaded != quick[name].loaded:
            differ.append(f"{name}: driver {quick[name]}, full start {full}")
    assert differ == []
