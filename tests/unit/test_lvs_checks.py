"""The director's check settings in the spec, fall/rise counting and the panic threshold
(issue #16: one failed check per realserver emptied the pool on a starved director)."""

from __future__ import annotations

import pytest

from stackha.model.problems import errors
from stackha.model.spec import parse_spec
from tests.conftest import EXAMPLE_CONFIGS

EXAMPLE = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()


def with_service_keys(extra: str) -> str:
    return EXAMPLE.replace("    check_interval: 0.5\n", f"    check_interval: 0.5\n{extra}", 1)


def test_director_checks_default_to_fall_2_rise_2_login_every_10_panic_below_50():
    spec, problems = parse_spec(EXAMPLE, "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    service = spec.lvs_services[0]
    assert (service.check_fall, service.check_rise) == (2, 2)
    assert service.check_login_every == 10
    assert service.panic_threshold == 50


def test_director_check_settings_can_be_raised():
    spec, problems = parse_spec(with_service_keys(
        "    check_fall: 3\n    check_rise: 5\n    check_login_every: 1\n"
        "    panic_threshold: 0\n"), "stackha.yaml")
    assert spec is not None, [str(p) for p in problems]
    service = spec.lvs_services[0]
    assert (service.check_fall, service.check_rise, service.check_login_every,
            service.panic_threshold) == (3, 5, 1, 0)


@pytest.mark.parametrize("key,value", [("check_fall", 1), ("check_rise", 1),
                                       ("check_fall", 0), ("check_login_every", 0),
                                       ("panic_threshold", 101), ("panic_threshold", -1)])
def test_too_low_or_out_of_range_is_one_error_naming_the_field(key, value):
    spec, problems = parse_spec(with_service_keys(f"    {key}: {value}\n"), "stackha.yaml")
    assert spec is None
    [problem] = errors(problems)
    line = str(problem)
    assert "\n" not in line and f"lvs_services[0].{key}" in line, line
    if key in ("check_fall", "check_rise"):
        assert "at least 2" in line, line
