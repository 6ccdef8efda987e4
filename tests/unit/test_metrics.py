"""The agent's /metrics text (stackha.agent.metrics), read back by prometheus_client's parser:
what a Prometheus server scrapes must parse, with the values and labels the agent set."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from stackha.agent.metrics import BUCKETS, Metric, render


def _families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _text(*metrics: Metric) -> str:
    return "\n".join(line for m in metrics for line in m.exposition()) + "\n"


def test_gauges_counters_and_histograms_parse_with_their_values():
    gauge = Metric("gauge", "t_version", "Applied version")
    gauge.set(7)
    counter = Metric("counter", "t_failures", "Failures", ["reason"])
    counter.labels(reason="validate").inc()
    counter.labels("validate").inc(2)
    counter.labels(reason="health").inc()
    histogram = Metric("histogram", "t_reload_seconds", "Reload time", ["role"])
    for seconds in (0.004, 0.2, 30.0):
        histogram.labels(role="nginx").observe(seconds)
    found = _families(_text(gauge, counter, histogram))

    assert [(s.name, s.value) for s in found["t_version"].samples] == [("t_version", 7.0)]
    assert found["t_failures"].type == "counter"
    assert {(s.name, s.labels["reason"], s.value) for s in found["t_failures"].samples} == {
        ("t_failures_total", "validate", 3.0), ("t_failures_total", "health", 1.0)}
    samples = {(s.name, s.labels.get("le")): s.value for s in found["t_reload_seconds"].samples}
    assert samples[("t_reload_seconds_bucket", "0.005")] == 1.0
    assert samples[("t_reload_seconds_bucket", "0.25")] == 2.0
    assert samples[("t_reload_seconds_bucket", "10.0")] == 2.0
    assert samples[("t_reload_seconds_bucket", "+Inf")] == 3.0
    assert samples[("t_reload_seconds_count", None)] == 3.0
    assert math.isclose(samples[("t_reload_seconds_sum", None)], 30.204)
    assert len([k for k in samples if k[0].endswith("_bucket")]) == len(BUCKETS) + 1


def test_a_hostile_label_value_stays_one_label_value():
    # Group and check names come from the spec: a quote, a backslash or a newline in one
    # must not end the label, add a series or break the scrape.
    gauge = Metric("gauge", "t_master", 'Master\\n of "a" group\nsecond line', ["group"])
    hostile = 'web"} 1\nt_master{group="x\\'
    gauge.labels(group=hostile).set(1)
    family = _families(_text(gauge))["t_master"]
    assert [(s.labels, s.value) for s in family.samples] == [({"group": hostile}, 1.0)]
    assert family.documentation == 'Master\\n of "a" group\nsecond line'  # HELP escaped too


def test_the_agents_metrics_and_the_process_figures_parse():
    found = _families(render().decode())
    assert {"stackha_applied_version", "stackha_apply_failures", "stackha_reload_seconds",
            "stackha_zookeeper_connected", "stackha_vrrp_master", "stackha_vrid_conflicts",
            "stackha_vrrp_split_brain", "stackha_health_check_ok"} <= set(found)
    rss = found["process_resident_memory_bytes"].samples[0].value
    assert 1 << 20 < rss < 1 << 32
    assert found["process_open_fds"].samples[0].value >= 3


def test_labels_and_counters_refuse_what_prometheus_would_refuse():
    counter = Metric("counter", "t_c", "C", ["reason"])
    with pytest.raises(ValueError, match="takes labels"):
        counter.labels("a", "b")
    with pytest.raises(ValueError, match=r"takes labels \('reason',\), not \['group'\]"):
        counter.labels(group="web")
    with pytest.raises(ValueError, match="only goes up"):
        counter.labels("a").inc(-1)
