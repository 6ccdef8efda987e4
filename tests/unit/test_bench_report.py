"""The pure helpers the benchmark report is computed with."""

from __future__ import annotations

import math

from bench.lab import example_nginx_conf, node_address
from bench.reload_load import Counts, classify_body
from bench.report import Table, markdown, median, percentile


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 11)]  # 1..10
    assert percentile(values, 0.5) == 5.0      # ceil(0.5 * 10) = 5th
    assert percentile(values, 0.9) == 9.0
    assert percentile(values, 0.99) == 10.0    # fewer than 100 samples: the worst one
    assert percentile(values, 1.0) == 10.0
    assert percentile(values, 0.0) == 1.0


def test_percentile_of_a_hundred_is_not_the_maximum():
    values = [float(v) for v in range(100, 0, -1)]  # unordered on purpose
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 0.5) == 50.0


def test_percentile_survives_float_rounding():
    # 0.1 * 30 is 3.0000000000000004: still rank 3, not 4.
    assert percentile([float(v) for v in range(1, 31)], 0.1) == 3.0


def test_percentile_and_median_of_nothing_are_nan():
    assert math.isnan(percentile([], 0.5))
    assert math.isnan(median([]))
    assert percentile([7.0], 0.99) == 7.0


def test_markdown_renders_floats_with_three_decimals():
    text = markdown(Table("T", ("a", "b"), ((1, 2.5),), ("a note",)))
    assert "| 1 | 2.500 |" in text and "- a note" in text and text.startswith("### T")


def test_example_nginx_conf_listens_on_loopback_and_answers_the_marker():
    text = example_nginx_conf(18080, "push 3")
    assert "listen 127.0.0.1:18080 default_server;" in text
    assert 'location = /version {\n            return 200 "push 3\\n";' in text
    assert text.startswith("user root;\n")


def test_node_addresses_are_distinct_loopback_addresses():
    addresses = [node_address(i) for i in range(300)]
    assert len(set(addresses)) == 300
    assert all(a.startswith("127.") and a.endswith("/8") for a in addresses)


def test_body_classification():
    assert classify_body("/", "content 3\n")
    assert classify_body("/version", "push 12\n")
    assert not classify_body("/", "push 12\n")
    assert not classify_body("/version", "push 1")  # truncated
    assert not classify_body("/", "<html>502 Bad Gateway</html>")


def test_counts_add_up():
    total = Counts()
    one = Counts(requests=3, ok=2, reset=1, stale_retried=1)
    total.add(one)
    total.add(Counts(requests=1, ok=1))
    assert (total.requests, total.ok, total.reset, total.stale_retried) == (4, 3, 1, 1)
    assert total.failed == 1


def test_the_drill_section_turns_the_drill_document_into_rows():
    from bench.drill import rows_of

    probe = {"sent": 100, "failed": 3, "longest_outage_s": 0.125}
    quiet = {"sent": 90, "failed": 0, "longest_outage_s": 0.0}
    doc = {"scenarios": [
        {"name": "bad-config", "ran": True, "probes": {"web": quiet, "sql": probe},
         "green_after_heal_s": 7.94, "served_rejected_config": False},
        {"name": "zk-outage", "ran": True, "probes": {"web": quiet, "sql": quiet},
         "green_after_heal_s": None, "served_rejected_config": None},
        {"name": "node-cut", "ran": False, "not_run": "no VRRP group", "probes": {}},
    ]}
    assert rows_of(doc) == [
        ("bad-config", "none", "0/90", "0.12 s", "3/100", "7.9 s", "no"),
        ("zk-outage", "none", "0/90", "none", "0/90", "NOT GREEN", "-"),
        ("node-cut", "not run", "-", "-", "-", "no VRRP group", "-"),
    ]


def test_the_lab_idle_section_tells_a_nodes_programs_apart():
    from bench.lab_idle import kind_of

    assert kind_of("/opt/stackha/bin/python /opt/stackha/bin/stackha agent --config /e/a.yaml") \
        == "agent"
    assert kind_of("/opt/stackha/bin/python3 /opt/stackha/bin/stackha agent --config /a.yaml") \
        == "agent"
    # The container's init and entrypoint name the agent in their arguments: not the agent.
    assert kind_of("tini -- stackha-lab-entrypoint /opt/stackha/bin/stackha agent --config /a") \
        is None
    assert kind_of("/bin/bash /usr/local/bin/stackha-lab-entrypoint /opt/stackha/bin/stackha "
                   "agent --config /a") is None
    assert kind_of("keepalived --dont-fork -f /run/k.conf") == "keepalived"
    assert kind_of("/usr/sbin/keepalived -n") == "keepalived"
    assert kind_of("nginx: worker process") == "nginx"
    assert kind_of("/usr/sbin/nginx -g daemon off;") == "nginx"
    assert kind_of("java -server -Xmx1G io.mycat.MycatStartup") == "MyCat (release JVM)"
    assert kind_of("/opt/stackha/bin/python -m stackha.lab.standin --conf /c") == \
        "MyCat stand-in"
    assert kind_of("/opt/stackha/bin/stackha check nginx") is None
    assert kind_of("sleep infinity") is None
