"""Versions and faults that once put the agent into a crash loop or a half-applied node, from
the side of whoever publishes them or pulls the plug: a real agent, real ZooKeeper, real nginx.

Every test ends on the same checks: the agent is still running (or restarts and stays up), the
page nginx serves is exactly one version's, and the status says what happened."""

from __future__ import annotations

import signal
from pathlib import Path
from types import MappingProxyType

import pytest

from stackha.model.bundle import Bundle, ConfigVersion, serialise_version, sha256_hex
from testkit.agentlab import NginxNode, coordinator_store, fetch, node_status, wait_for
from tests.integration.test_agent import (
    _applied,
    _document,
    _files_of,
    _publish_raw,
    _push,
    _set_page,
)

pytestmark = pytest.mark.integration


def _status(configs: Path, zookeeper, number: int | None = None) -> dict:
    """The status once it reports a refusal (of ``number``, if given)."""
    return wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                    and s["last_error"] and (number is None or s["rejected_version"] == number)
                    and s, what=f"refusal of version {number} reported")


def _entry(text: str) -> dict:
    return {"content": text, "encoding": "utf-8", "sha256": sha256_hex(text.encode()),
            "mode": "0644"}


def _good_version_one(node: NginxNode, configs: Path, zookeeper, *extra: str) -> None:
    _set_page(configs, "good one\n")
    _push(configs)
    node.start_agent(*extra)
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    assert fetch(node.url) == "good one\n"


def _no_strays(root: Path) -> None:
    strays = [p for p in root.rglob(".stackha.*.tmp")]
    assert strays == [], f"temporary files left: {strays}"


HOSTILE = {
    "newline": {"nginx/html/a\n/etc/passwd": "x"},
    "file_and_directory": {"nginx/conf.d": "x", "nginx/conf.d/x.conf": "# y\n"},
    "long_name": {"nginx/html/" + "n" * 300: "x"},
    "file_named_like_nginx_logs": {"nginx/logs": "not a directory\n"},
}


@pytest.mark.parametrize("extra", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_version_is_refused_and_survives_a_restart(node, configs, zookeeper, extra):
    _good_version_one(node, configs, zookeeper)
    files = _files_of(configs)
    files["nginx/html/index.html"] = _entry("must never be served\n")
    files.update({path: _entry(text) for path, text in extra.items()})
    number = _publish_raw(configs, zookeeper, _document(files))
    status = _status(configs, zookeeper, number)
    assert f"version {number} rejected at" in status["last_error"]
    assert "\n" not in status["last_error"]
    assert status["applied_version"] == 1
    assert node.agent.poll() is None, "the agent exited on a hostile version"
    assert fetch(node.url) == "good one\n"
    # The same state after a restart: no crash, still refusing, still serving version 1.
    assert node.stop_agent(signal.SIGTERM) == 0
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="status after the restart")
    assert node.agent.poll() is None
    assert fetch(node.url) == "good one\n"
    assert (node.prefix / "html/index.html").read_text() == "good one\n"
    # And it still takes the next good version (published raw: push-config itself refuses
    # to publish on top of an unreadable previous version).
    _set_page(configs, "good three\n")
    _publish_raw(configs, zookeeper, _document(_files_of(configs)))
    wait_for(lambda: fetch(node.url) == "good three\n", what="the next good version")
    _no_strays(node.root)


@pytest.mark.parametrize("canary", ["nosuchnode", "bad/"])
def test_canary_not_in_the_spec_does_not_stop_the_agent(node, configs, zookeeper, canary):
    _good_version_one(node, configs, zookeeper, "--rollout-wait", "1")
    _set_page(configs, "two\n")
    contents = {p.relative_to(configs).as_posix(): p.read_bytes()
                for p in configs.rglob("*") if p.is_file()}
    version = ConfigVersion(0, Bundle.from_contents(contents), "now", "test", "odd canary",
                            MappingProxyType({"nginx": canary}))
    number = _publish_raw(configs, zookeeper, serialise_version(version))
    wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
             and (s["applied_version"] == number or s["rejected_version"] == number),
             what="the version decided")
    assert node.agent.poll() is None, "the agent exited on an unknown canary"
    status = node_status(configs, zookeeper.hosts, "nginx1")
    expected = "two\n" if status["applied_version"] == number else "good one\n"
    assert fetch(node.url) == expected


def test_managed_file_turned_symlink_and_dropped(node, configs, zookeeper, tmp_path):
    (configs / "nginx/html/extra.html").write_text("extra\n")
    _good_version_one(node, configs, zookeeper)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the agent's\n")
    extra = node.prefix / "html/extra.html"
    extra.unlink()
    extra.symlink_to(outside)
    (configs / "nginx/html/extra.html").unlink()
    _set_page(configs, "two\n")
    _push(configs)
    wait_for(lambda: _applied(configs, zookeeper, 2), what="version 2 applied")
    assert node.agent.poll() is None
    assert not extra.is_symlink() and not extra.exists()
    assert outside.read_text() == "not the agent's\n"


def test_current_moved_backwards_is_refused(node, configs, zookeeper):
    _good_version_one(node, configs, zookeeper)
    _set_page(configs, "two\n")
    _push(configs)
    wait_for(lambda: _applied(configs, zookeeper, 2), what="version 2 applied")
    store = coordinator_store(configs, zookeeper.hosts)
    try:
        store.client.set(store.current_path, b"1")
    finally:
        store.close()
    status = _status(configs, zookeeper, 1)
    assert "config/current 1 is lower than applied version 2" in status["last_error"]
    assert status["applied_version"] == 2
    assert fetch(node.url) == "two\n"
    assert (node.prefix / "html/index.html").read_text() == "two\n"


def _sick_version(configs: Path) -> None:
    conf = configs / "nginx/nginx.conf"
    conf.write_text(conf.read_text().replace('return 200 "ok\\n";', 'return 503 "sick\\n";'))
    _set_page(configs, "from the sick version\n")


STEPS = ["after_journal", "after_first_rename", "after_all_renames", "after_reload",
         "before_journal_clear"]


@pytest.mark.parametrize("sick", [True, False], ids=["failing", "passing"])
@pytest.mark.parametrize("step", STEPS)
def test_killed_at_any_step_comes_back_as_one_version(node, configs, zookeeper, monkeypatch,
                                                      step, sick):
    _good_version_one(node, configs, zookeeper)
    node.stop_agent(signal.SIGTERM)
    monkeypatch.setenv("STACKHA_FAILPOINT", step)
    node.start_agent()
    monkeypatch.delenv("STACKHA_FAILPOINT")
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 reported")
    if sick:
        _sick_version(configs)
    else:
        _set_page(configs, "good two\n")
    _push(configs)
    assert node.agent.wait(timeout=60) == -signal.SIGKILL, "the failpoint did not fire"
    node.agent = None
    node.start_agent()
    # Only a version that passed its health check and was saved may survive the kill.
    survived = not sick and step == "before_journal_clear"
    if survived:
        wait_for(lambda: _applied(configs, zookeeper, 2), what="version 2 kept")
        assert fetch(node.url) == "good two\n"
        assert (node.prefix / "html/index.html").read_text() == "good two\n"
    else:
        status = _status(configs, zookeeper, 2)
        assert status["applied_version"] == 1
        assert ("interrupted" in status["last_error"]
                or (sick and step == "before_journal_clear")), status["last_error"]
        assert fetch(node.url) == "good one\n"
        assert (node.prefix / "html/index.html").read_text() == "good one\n"
        assert 'return 200 "ok\\n";' in (node.prefix / "nginx.conf").read_text()
    assert node.agent.poll() is None
    assert not (node.root / "state/nginx.journal").exists()
    _no_strays(node.root)


def test_no_space_refusal_keeps_the_previous_files(node, configs, zookeeper, monkeypatch):
    _good_version_one(node, configs, zookeeper)
    node.stop_agent(signal.SIGTERM)
    monkeypatch.setenv("STACKHA_FAILPOINT", "enospc@write_temp")
    node.start_agent()
    monkeypatch.delenv("STACKHA_FAILPOINT")
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 reported")
    _set_page(configs, "two\n")
    (configs / "nginx/html/more.html").write_text("more\n")
    _push(configs)
    status = _status(configs, zookeeper, 2)
    assert "no space left on device" in status["last_error"]
    assert fetch(node.url) == "good one\n"
    assert not (node.prefix / "html/more.html").exists()
    assert node.agent.poll() is None
    _no_strays(node.root)


def test_hanging_reload_times_out_and_heartbeat_shows_the_apply(node, configs, zookeeper):
    reload = " ".join(node.nginx_command("-s", "reload"))
    # Hangs only for the version with the marker page; the rollback's reload is quick again.
    hanging = (f"sh -c 'grep -q hang {node.prefix}/html/index.html && exec sleep 60; "
               f"exec {reload}'")
    _good_version_one(node, configs, zookeeper, "--nginx-reload", hanging,
                      "--reload-timeout", "4", "--rollback-reload-timeout", "2")
    _set_page(configs, "hang\n")
    _push(configs)
    seen = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                    and s["health"].get("nginx") == "applying version 2" and s,
                    what="a heartbeat saying the agent is applying")
    assert seen["applied_version"] == 1
    status = _status(configs, zookeeper, 2)
    assert "version 2 rolled back at reload: nginx: reload timed out after 4 s" \
        in status["last_error"]
    wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
             and s["health"] == {"nginx": "ok"}, what="health back after the apply")
    assert fetch(node.url) == "good one\n"
    assert node.agent.poll() is None
