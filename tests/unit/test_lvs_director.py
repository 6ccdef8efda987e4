"""The director's health verdicts and rounds (fake probes, fake nft), `lvs status` parsing,
and the keepalived `virtual_server` rendering of the ipvs engine."""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from pathlib import Path

from stackha.checks.scheduler import Verdict
from stackha.keepalived.render import RenderOptions, render_keepalived
from stackha.lvs.director import DirectedService, DirectorPlan, NftDirector, check_name
from stackha.lvs.nftrender import Backend
from stackha.lvs.status import nft_view, parse_live_table, parse_proc_ip_vs, render_table
from stackha.model.spec import LvsService, parse_spec
from tests.conftest import EXAMPLE_CONFIGS

MACS = {"10.0.0.31": "02:00:00:00:00:31", "10.0.0.32": "02:00:00:00:00:32"}


def test_a_realservers_first_result_decides_then_fall_and_rise(tmp_path):
    """On the agent's scheduler: unknown until the first result, then fall 2 / rise 2."""
    down: set[str] = set()
    director, _ = make_director(tmp_path, down)
    director.tick()
    name = check_name(director._plan.services[0].service, Backend("mycat2", "10.0.0.32"))
    assert director.checks.verdict(name) == Verdict(True, "ok")
    down.add("10.0.0.32")
    director.tick()
    assert director.checks.verdict(name).healthy  # one failure is not enough
    director.tick()
    assert not director.checks.verdict(name).healthy
    fresh, _ = make_director(tmp_path / "fresh", {"10.0.0.32"})
    assert fresh.checks.verdicts("lvs") == {}
    fresh.tick()  # a fresh realserver that fails starts down
    assert fresh.checks.verdict(name) == Verdict(False, "refused")


def make_director(tmp_path: Path, down: set[str]):
    loaded: list[str] = []
    service = LvsService(ipaddress.IPv4Address("10.0.0.200"), 8066, ("mycat1", "mycat2"))
    backends = (Backend("mycat1", "10.0.0.31"), Backend("mycat2", "10.0.0.32"))
    plan = DirectorPlan("eth0", (DirectedService(
        service, backends, lambda address: "refused" if address in down else None),))
    director = NftDirector(tmp_path / "lvs-director.json", load=loaded.append,
                           resolve=lambda address, _dev: MACS.get(address),
                           own_mac=lambda _dev: "02:00:00:00:00:21")
    director._plan = plan  # drive rounds by hand instead of the thread
    return director, loaded


def test_a_round_loads_only_when_the_set_changes(tmp_path):
    down: set[str] = set()
    director, loaded = make_director(tmp_path, down)
    director.tick()
    assert len(loaded) == 1 and MACS["10.0.0.32"] in loaded[0]
    director.tick()
    assert len(loaded) == 1  # nothing changed: nft is not run again
    down.add("10.0.0.32")
    director.tick()
    assert len(loaded) == 1  # fall 2: one failure is not enough
    director.tick()  # 1 of 2 pass: at the 50% panic threshold, not below it
    assert len(loaded) == 2 and MACS["10.0.0.32"] not in loaded[1]
    state = json.loads((tmp_path / "lvs-director.json").read_text())
    rows = {r["name"]: r for r in state["services"][0]["realservers"]}
    assert rows["mycat2"]["healthy"] is False and rows["mycat2"]["reason"] == "refused"
    down.clear()
    director.tick()  # rise 2: one pass is not enough
    assert len(loaded) == 2
    director.tick()
    assert len(loaded) == 3 and MACS["10.0.0.32"] in loaded[2]


LIVE = {"nftables": [
    {"metainfo": {"version": "1.0.6"}},
    {"table": {"family": "netdev", "name": "stackha_lvs"}},
    {"rule": {"family": "netdev", "table": "stackha_lvs", "chain": "ingress_eth0",
              "comment": "stackha 10.0.0.200:8066", "expr": [
                  {"match": {"op": "==", "left": {"meta": {"key": "pkttype"}},
                             "right": "host"}},
                  {"counter": {"packets": 12, "bytes": 900}},
                  {"mangle": {"key": {"payload": {"protocol": "ether", "field": "saddr"}},
                              "value": "02:00:00:00:00:21"}},
                  {"mangle": {"key": {"payload": {"protocol": "ether", "field": "daddr"}},
                              "value": {"map": {
                                  "key": {"jhash": {"mod": 3, "seed": 1, "expr": {
                                      "concat": [{"payload": {"protocol": "ip",
                                                              "field": "saddr"}}]}}},
                                  "data": {"set": [[0, "02:00:00:00:00:31"],
                                                   [1, "02:00:00:00:00:31"],
                                                   [2, "02:00:00:00:00:32"]]}}}}},
                  {"fwd": {"dev": "eth0"}}]}}]}


def test_live_table_is_read_back_per_service():
    [rule] = parse_live_table(LIVE)
    assert (rule.vip, rule.port, rule.device, rule.packets) == ("10.0.0.200", 8066, "eth0", 12)
    assert rule.hashing == "connection"
    assert rule.slots == {"02:00:00:00:00:31": 2, "02:00:00:00:00:32": 1}
    assert parse_live_table(None) == []


def test_status_joins_the_live_table_with_health(tmp_path):
    director, _ = make_director(tmp_path, {"10.0.0.32"})
    director.tick()
    state = json.loads((tmp_path / "lvs-director.json").read_text())
    [view] = nft_view(parse_live_table(LIVE), state)
    reals = {r.name: r for r in view.reals}
    assert reals["mycat1"].slots == 2 and reals["mycat1"].health == "up"
    assert reals["mycat1"].weight == 1  # the spec's weight, from the state file
    assert reals["mycat2"].health == "down (refused)"
    text = render_table([view])
    assert "TCP  10.0.0.200:8066 hash(conn) [nftables] dev eth0 packets 12" in text
    assert "-> 10.0.0.31:8066" in text


PROC_IP_VS = """IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  0A4D00C8:1F82 sh persistent 300
  -> 0A4D001F:1F82      Route   1      3          0
  -> 0A4D0020:1F82      Route   0      0          1
"""


def test_proc_ip_vs_is_parsed():
    [view] = parse_proc_ip_vs(PROC_IP_VS)
    assert (view.vip, view.port, view.scheduler, view.engine) == ("10.77.0.200", 8066, "sh",
                                                                   "ipvs")
    assert [(r.address, r.weight, r.forward) for r in view.reals] == [
        ("10.77.0.31", 1, "Route"), ("10.77.0.32", 0, "Route")]


def test_ipvs_engine_renders_dr_virtual_servers_with_the_chosen_check():
    text = (EXAMPLE_CONFIGS / "stackha.yaml").read_text()
    spec, _ = parse_spec(text.replace("persistence_timeout: 0", "persistence_timeout: 300"))
    assert spec is not None
    conf = render_keepalived(spec, "director1", RenderOptions(stackha_command="/x/stackha"),
                             ipvs=True)
    block = conf[conf.index("virtual_server 10.77.0.200 8066 {"):]
    for line in ("lb_kind DR", "lb_algo sh", "persistence_timeout 300", "protocol TCP"):
        assert f"    {line}\n" in block
    assert block.count("real_server ") == 3 and block.count("weight 1") == 3
    assert ('misc_path "/x/stackha check mycat --host 10.77.0.31 --port 8066 --timeout 1 '
            '--manager-port 9066"') in block
    tcp = parse_spec(text.replace("check: mycat", "check: tcp"))[0]
    assert "TCP_CHECK" in render_keepalived(tcp, "director1", ipvs=True)
    pinned = parse_spec(text.replace("engine: auto", "engine: nftables"))[0]
    assert "virtual_server" not in render_keepalived(pinned, "director1", ipvs=True)


def test_a_blackholed_realserver_delays_no_other_verdict(tmp_path):
    """mycat1 stops answering (its probe hangs to the timeout) and mycat2 goes down at the same
    time: mycat2 leaves the table while mycat1's probe still hangs. The old director waited
    for every probe of a round before judging any."""
    hang = threading.Event()
    release = threading.Event()
    down: set[str] = set()
    loaded: list[str] = []

    def probe(address: str) -> str | None:
        if address == "10.0.0.31" and hang.is_set():
            release.wait(10)
            return "timed out"
        return "refused" if address in down else None

    service = LvsService(ipaddress.IPv4Address("10.0.0.200"), 8066, ("mycat1", "mycat2"),
                         check_interval=0.05, panic_threshold=0)
    backends = (Backend("mycat1", "10.0.0.31"), Backend("mycat2", "10.0.0.32"))
    director = NftDirector(tmp_path / "lvs-director.json", load=loaded.append,
                           resolve=lambda address, _dev: MACS.get(address),
                           own_mac=lambda _dev: "02:00:00:00:00:21")
    director.configure(DirectorPlan("eth0", (DirectedService(service, backends, probe),)))
    try:
        wait_for(lambda: loaded and MACS["10.0.0.32"] in loaded[-1], "mycat2 forwarded")
        hang.set()
        down.add("10.0.0.32")
        wait_for(lambda: MACS["10.0.0.32"] not in loaded[-1], "mycat2 taken out")
        assert not release.is_set() and MACS["10.0.0.31"] in loaded[-1]
    finally:
        release.set()
        director.stop()


def test_a_fresh_director_loads_nothing_before_each_realserver_answered(tmp_path):
    director, loaded = make_director(tmp_path, {"10.0.0.32"})
    director._schedule_checks(director._plan)
    director.render()  # no result yet: all unknown would read as panic, forwarding to all
    assert loaded == []
    director.tick()
    assert len(loaded) == 1 and MACS["10.0.0.31"] in loaded[0] \
        and MACS["10.0.0.32"] not in loaded[0]


def test_the_lvs_node_checks_on_the_schedulers_it_is_given(tmp_path):
    from stackha.checks.scheduler import CheckScheduler
    from stackha.lvs.node import LvsNode, LvsSettings

    shared = CheckScheduler(None)
    assert LvsNode(LvsSettings(tmp_path), shared).director.checks is shared


def wait_for(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
