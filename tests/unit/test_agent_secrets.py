"""What the agent keeps on disk with passwords in it is for root only (found in review:
MyCat's server.xml/schema.xml were written 0644 because the secret-file list names
mycat/server.xml and the writer asked for server.xml; last-good.json, which holds every
password, was 0644 in a world-readable state directory)."""

from __future__ import annotations

import stat
from pathlib import Path

from stackha.agent.core import Agent, AgentSettings, RoleSettings
from stackha.model.bundle import Bundle, ConfigVersion


def _agent(tmp_path: Path) -> Agent:
    settings = AgentSettings(node="mycat1", state_dir=tmp_path / "state",
                             roles={"mycat": RoleSettings(target=tmp_path / "conf"),
                                    "nginx": RoleSettings(target=tmp_path / "nginx")})
    return Agent(settings, store=None)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_mycat_secret_files_are_written_for_root_only(tmp_path):
    agent = _agent(tmp_path)
    example = Path(__file__).resolve().parents[2] / "configs" / "mycat"
    files = {name: (example / name).read_bytes() for name in ("server.xml", "schema.xml",
                                                              "rule.xml")}
    result = agent.resources["mycat"].apply(files)
    assert result.ok, result.reason
    conf = tmp_path / "conf"
    assert _mode(conf / "server.xml") == 0o600 and _mode(conf / "schema.xml") == 0o600
    assert _mode(conf / "rule.xml") == 0o644
    assert agent.resources["nginx"].modes("nginx.conf") == 0o644


def test_the_state_directory_and_last_good_are_root_only(tmp_path):
    agent = _agent(tmp_path)
    version = ConfigVersion(1, Bundle.from_contents({"mycat/server.xml": b"password"}),
                            "2026-12-01T00:00:00Z", "t", "m")
    agent._save_last_good(version)
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(agent.last_good_path) == 0o600


def test_the_journal_of_an_apply_is_root_only(tmp_path):
    """The journal holds the previous server.xml while a version is applied."""
    agent = _agent(tmp_path)
    example = Path(__file__).resolve().parents[2] / "configs" / "mycat"
    files = {name: (example / name).read_bytes() for name in ("server.xml", "schema.xml",
                                                              "rule.xml")}
    resource = agent.resources["mycat"]
    assert resource.apply(files).ok
    changed = dict(files, **{"rule.xml": files["rule.xml"] + b"\n"})
    result = resource.apply(changed, version=2, hold=True)  # held: the journal stays
    assert result.ok, result.reason
    journals = list((tmp_path / "state").glob("*journal*"))
    assert journals and all(_mode(p) == 0o600 for p in journals), journals
    resource.commit()
