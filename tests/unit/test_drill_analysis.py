"""stackha drill, pure: probe series to outage figures, status series to time until green."""

from __future__ import annotations

import pytest

from stackha.lab.drill.analysis import (
    Outage,
    StatusSample,
    beyond_baseline,
    describe_masters,
    failed_between,
    master_history,
    master_while_serving,
    nodes_that_applied,
    non_green_seconds,
    other_masters,
    outages,
    probe_figures,
    span_of,
    split_brain_seen,
    time_to_green,
)
from stackha.lab.drill.probes import Sample


def series(pattern: str, step: float = 0.01, duration: float = 0.002) -> list[Sample]:
    """'..xx.' : one attempt per step, '.' ok, 'x' failed, 'm' ok with the marker."""
    return [Sample(t=i * step, duration=duration, ok=c != "x", error="" if c != "x" else
                   "ConnectionRefusedError: [Errno 111] refused", marked=c == "m")
            for i, c in enumerate(pattern)]


def test_no_failure_no_outage():
    figures = probe_figures(series("....."))
    assert (figures.sent, figures.failed, figures.outages) == (5, 0, ())
    assert figures.longest == 0.0 and figures.total == 0.0 and figures.recovered


def test_an_outage_runs_from_the_first_failure_to_the_first_success_after_it():
    [outage] = outages(series("..xxx.."))
    assert outage == Outage(start=pytest.approx(0.02), end=pytest.approx(0.05), failed=3)
    assert outage.duration == pytest.approx(0.03)


def test_longest_and_total_over_several_outages():
    figures = probe_figures(series(".x..xxxx.xx."))
    assert [o.failed for o in figures.outages] == [1, 4, 2]
    assert figures.longest == pytest.approx(0.04)
    assert figures.total == pytest.approx(0.01 + 0.04 + 0.02)
    assert figures.failed == 7 and figures.sent == 12
    assert figures.errors == {"ConnectionRefusedError": 7}


def test_an_outage_nothing_recovered_lasts_to_the_end_and_says_so():
    figures = probe_figures(series("..xxx"), end=1.0)
    [outage] = figures.outages
    assert not outage.recovered and not figures.recovered
    assert outage.end == 1.0 and outage.start == pytest.approx(0.02)


def test_unrecovered_outage_without_end_closes_at_the_last_attempt():
    [outage] = outages(series("..xx", duration=0.5))
    assert outage.end == pytest.approx(0.03 + 0.5)


def test_samples_are_ordered_by_start_whatever_order_they_finished_in():
    shuffled = list(reversed(series("..xx..")))
    assert [o.failed for o in outages(shuffled)] == [2]


def test_marked_answers_are_counted_with_the_first_time():
    figures = probe_figures(series("..mm.m"))
    assert figures.marked == 3 and figures.first_marked == pytest.approx(0.02)
    assert figures.failed == 0


def test_figures_as_json_values():
    data = probe_figures(series(".xx.")).to_dict()
    assert data["sent"] == 4 and data["failed"] == 2
    assert data["longest_outage_s"] == pytest.approx(0.02)
    assert data["outages"][0]["recovered"] is True


def reading(t: float, green: bool = True, reachable: bool = True, **kw) -> StatusSample:
    return StatusSample(t=t, reachable=reachable, problems=() if green else ("x",), **kw)


def test_time_to_green_is_the_start_of_the_final_green_streak_after_the_heal():
    readings = [reading(0), reading(1, False), reading(2, True), reading(3, False),
                reading(4, False), reading(5), reading(6)]
    assert time_to_green(readings, since=3.5) == pytest.approx(1.5)


def test_time_to_green_is_zero_when_it_never_stopped_being_green():
    assert time_to_green([reading(0), reading(1), reading(2)], since=1.0) == 0.0


def test_time_to_green_is_none_when_not_green_at_the_end():
    assert time_to_green([reading(0), reading(1, False)], since=0.5) is None
    assert time_to_green([reading(0), reading(1, reachable=False)], since=0.5) is None


def test_non_green_seconds_counts_each_reading_until_the_next():
    readings = [reading(0), reading(1, False), reading(3, reachable=False), reading(4)]
    assert non_green_seconds(readings) == pytest.approx(3.0)
    assert non_green_seconds([reading(0, False)], end=2.5) == pytest.approx(2.5)


def test_split_brain_seen_gathers_every_node_named():
    readings = [reading(0), reading(1, False, split_brain={"web": ("nginx1", "nginx2")}),
                reading(2, False, split_brain={"web": ("nginx2", "nginx3")})]
    assert split_brain_seen(readings) == {"web": ("nginx1", "nginx2", "nginx3")}
    assert span_of(readings, lambda s: "web" in s.split_brain) == (1, 2)


def test_span_of_lasts_until_the_next_reading():
    readings = [reading(0), reading(1, False), reading(2, False), reading(4)]
    assert span_of(readings, lambda s: not s.green) == (1, 4)
    assert span_of(readings, lambda s: s.t > 10) is None


def test_nodes_that_applied_a_version():
    readings = [reading(0, applied={"a": 1, "b": 1}), reading(1, applied={"a": 2, "b": 1})]
    assert nodes_that_applied(readings, 2) == ("a",)
    assert nodes_that_applied(readings, 3) == ()


def test_master_history_lists_changes_only():
    readings = [reading(0, masters={"web": ("n1",)}), reading(1, masters={"web": ("n1",)}),
                reading(2, masters={"web": ("n1", "n2")}), reading(3, reachable=False),
                reading(4, masters={}), reading(5, masters={"web": ("n1",)})]
    history = master_history(readings, "web")
    assert history == [(0, ("n1",)), (2, ("n1", "n2")), (4, ()), (5, ("n1",))]
    assert describe_masters(history) == "n1 → n1+n2 (2.0 s) → none (4.0 s) → n1 (5.0 s)"


def test_a_canary_counts_as_serving_through_a_vip_only_while_master_during_its_trial():
    readings = [reading(0, masters={"web": ("nginx2",)}), reading(5, masters={"web": ("nginx1",)}),
                reading(20, masters={"web": ("nginx2",)})]
    trial = [8.0, 9.0, 10.0]  # its own address served the marked page from 8 s to 10 s
    assert not master_while_serving(readings, "nginx2", trial)
    assert not master_while_serving(readings, "nginx2", [])
    readings.insert(2, reading(9.5, masters={"web": ("nginx2",)}))
    assert master_while_serving(readings, "nginx2", trial)
    assert master_while_serving([reading(10.8, masters={"web": ("nginx2",)})], "nginx2", trial)


def test_failed_between_counts_by_time_and_kind():
    taken = [Sample(0.0, 0.001, False, "keep-alive RemoteDisconnected: x"),
             Sample(0.1, 0.001, False, "fresh ConnectionRefusedError: y"),
             Sample(0.2, 0.001, True),
             Sample(0.3, 0.001, False, "keep-alive ConnectionResetError: z")]
    assert failed_between(taken, 0.0) == 3
    assert failed_between(taken, 0.05) == 2
    assert failed_between(taken, 0.0, 0.2, prefix="keep-alive") == 1
    assert failed_between(taken, 0.0, prefix="fresh") == 1


def test_beyond_baseline_scales_the_baselines_failure_rate():
    taken = [Sample(i * 0.01 - 1.0, 0.001, i % 50 != 0) for i in range(300)]
    after, before, expected = beyond_baseline(taken, 0.0)
    assert (after, before) == (4, 2) and expected == pytest.approx(4.0, abs=0.1)


def test_other_masters_ignores_readings_with_no_master_and_the_unreachable():
    series = [reading(0.0, masters={"web": ("nginx1",)}),
              reading(1.0, masters={}),  # the restarting agent's report is gone a moment
              reading(2.0, reachable=False, masters={"web": ("nginx2",)}),
              reading(3.0, masters={"web": ("nginx1",)})]
    assert other_masters(series, "web", "nginx1") == ()
    moved = [*series, reading(4.0, masters={"web": ("nginx2",)})]
    assert other_masters(moved, "web", "nginx1") == ("nginx2",)
    assert other_masters(moved, "web", "nginx1", since=4.5) == ()
