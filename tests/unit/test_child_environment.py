"""Programs stackha starts never see its credentials (found in review: reload commands and
keepalived inherited STACKHA_AGENT_CREDENTIAL)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from stackha.agent.filesync import CommandReload
from stackha.keepalived.process import KeepalivedProcess
from stackha.model.environment import child_environment
from stackha.model.spec import Credential
from stackha.store.credentials import read_identity

SECRETS = {"STACKHA_AGENT_CREDENTIAL": "agent:s3cret", "STACKHA_COORDINATOR_CREDENTIAL": "c:x",
           "STACKHA_MYCAT_PASSWORD": "pw", "ZK_AGENT": "agent:from-spec"}


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH_EXTRA_FOR_TEST", "kept")
    # A spec may name any variable for a credential: reading it marks it.
    read_identity(Credential(env="ZK_AGENT"), "zookeeper.agent_auth")


def test_a_reload_command_sees_no_credential(tmp_path: Path, secret_env: None):
    seen = tmp_path / "env"
    assert CommandReload(("sh", "-c", f"env > {seen}"))() is None
    text = seen.read_text()
    assert "PATH_EXTRA_FOR_TEST=kept" in text  # the child did run with an environment
    assert not [name for name in SECRETS if f"{name}=" in text]
    assert "s3cret" not in text


def test_keepalived_is_started_without_credentials(tmp_path: Path, secret_env: None,
                                                   monkeypatch: pytest.MonkeyPatch):
    started: list[dict[str, str] | None] = []

    class Spawned:
        pid = 4242

    def fake_popen(command, **kwargs):
        started.append(kwargs.get("env"))
        return Spawned()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    process = KeepalivedProcess(config=tmp_path / "keepalived.conf", run_dir=tmp_path)
    process._spawn()
    assert started and started[0] is not None
    assert "PATH_EXTRA_FOR_TEST" in started[0]
    assert not set(SECRETS) & set(started[0])


def test_the_filter_keeps_ordinary_variables_and_the_lab_backend_password():
    env = {"PATH": "/bin", "STACKHA_NGINX_DIR": "/srv/nginx", "BACKEND_PASSWORD": "x",
           **SECRETS}
    kept = child_environment(env, secret=["ZK_AGENT"])
    assert kept == {"PATH": "/bin", "STACKHA_NGINX_DIR": "/srv/nginx", "BACKEND_PASSWORD": "x"}
