"""Shared fixtures: a real ZooKeeper on loopback and copies of the example configs."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest

from testkit import AGENT, COORDINATOR, EXAMPLE_CONFIGS, ROOT, write_registry
from testkit.localzk import LocalZooKeeper
from testkit.signing import harness_keys

__all__ = ["AGENT", "COORDINATOR", "EXAMPLE_CONFIGS", "ROOT"]


def without_tls(spec_text: str) -> str:
    """The spec without its ``zookeeper.tls`` block."""
    lines, skipping = [], False
    for line in spec_text.splitlines(keepends=True):
        if line.startswith("  tls:"):
            skipping = True
            continue
        if skipping and line.startswith("    "):
            continue
        skipping = False
        lines.append(line)
    return "".join(lines)


@pytest.fixture(scope="session")
def zookeeper(tmp_path_factory: pytest.TempPathFactory):
    server = LocalZooKeeper(tmp_path_factory.mktemp("zookeeper"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The coordinator's credential, the agent registry, and nginx1's credential as the
    agent default (harnesses give other nodes theirs)."""
    monkeypatch.setenv("STACKHA_COORDINATOR_CREDENTIAL", COORDINATOR)
    monkeypatch.setenv("STACKHA_AGENT_CREDENTIAL", AGENT)
    # push-config signs with the harnesses' key; their agents pin its public half.
    monkeypatch.setenv("STACKHA_SIGNING_KEY", str(harness_keys().private))
    monkeypatch.setenv("STACKHA_AGENT_REGISTRY", str(write_registry(tmp_path / "agents.registry")))


@pytest.fixture
def configs(tmp_path: Path, zookeeper: LocalZooKeeper, credentials: None) -> Path:
    """A copy of the example configs pointing at the test ZooKeeper, with a fresh cluster."""
    target = tmp_path / "configs"
    shutil.copytree(EXAMPLE_CONFIGS, target)
    spec = target / "stackha.yaml"
    text = spec.read_text()
    text = text.replace("cluster: demo", f"cluster: t{uuid.uuid4().hex[:10]}")
    text = text.replace('hosts: "10.77.0.5:2281,10.77.0.6:2281,10.77.0.7:2281"',
                        f'hosts: "{zookeeper.hosts}"')
    text = text.replace('hosts: "10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181"',
                        f'hosts: "{zookeeper.hosts}"')
    # The example talks TLS to the lab; the shared server is plain (tests/integration/
    # test_zk_tls.py starts its own TLS one).
    text = without_tls(text)
    spec.write_text(text)
    return target
