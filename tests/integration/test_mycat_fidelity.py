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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest

from stackha.model.problems import errors
from stackha.mycat.validate import validate_mycat
from testkit.mycat_corpus import STACKHA_ONLY, VALID, Files, corpus
from testkit.realmycat import RealMycat, Verdict, missing_tools

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
def outcomes() -> list[Outcome]:
    reason = missing_tools()
    if reason:
        pytest.skip(f"no real MyCat to compare with: {reason}")
    results = compare(corpus(), RealMycat())
    print()  # the figure, for the log: pytest -s or -rA shows it
    for line in report(results):
        print(line)
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


def test_agreement_rate_is_complete(outcomes: list[Outcome]):
    """Every disagreement left is over-strictness nobody has named yet: keep it at zero."""
    assert [line for line in report(outcomes)][1:] == []
