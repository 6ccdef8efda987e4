"""The lab's ZooKeeper credentials: generated once, kept in compose/.stackha/ (mode 0600).

``lab.env`` holds the coordinator's credential, the path of the agent registry and the path of
the lab's signing key (for the coordinator on the host: `set -a; . compose/.stackha/lab.env`).
Every node has its own credential (``stackha credentials issue``): ``agent-<node>.env`` holds
only that node's, the one file its container gets (with the signing key's public half,
``signing.pub``, mounted), and ``agents.registry`` their digests. A coordinator credential
already in the environment wins and is written to the file, so host and containers always
agree.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from stackha.lab.compose.backend import LabError
from stackha.model.spec import StackSpec
from stackha.store.registry import REGISTRY_ENV, issue, read_registry

LAB_ENV = "lab.env"
REGISTRY_FILE = "agents.registry"


def agent_env_file(node: str) -> str:
    return f"agent-{node}.env"


def parse_env_file(text: str) -> dict[str, str]:
    """Pure: ``NAME=value`` lines; blank lines and ``#`` comments skipped."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def _env_names(spec: StackSpec) -> tuple[str, str]:
    zk = spec.zookeeper
    if zk.agent_auth is None or not zk.agent_auth.env:
        raise LabError("zookeeper.agent_auth: the lab passes the agent credential to the "
                       "containers through the environment: give it as {env: NAME}")
    if zk.coordinator_auth is None or not zk.coordinator_auth.env:
        raise LabError("zookeeper.coordinator_auth: the lab needs it as {env: NAME}")
    return zk.coordinator_auth.env, zk.agent_auth.env


def _write_private(path: Path, lines: list[str]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def lab_credentials(spec: StackSpec, directory: Path,
                    environ: Mapping[str, str] = os.environ,
                    extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the host's coordinator needs, by variable name (the coordinator credential and
    the registry): from the environment, the kept file, or new. Every node of the spec gets
    its own credential once (kept across runs; delete its file to rotate it). ``extra`` (the
    signing key's path) goes into lab.env only, never to the agents."""
    coordinator_var, agent_var = _env_names(spec)
    kept = {}
    if (directory / LAB_ENV).exists():
        kept = parse_env_file((directory / LAB_ENV).read_text())
    directory.mkdir(parents=True, exist_ok=True)
    registry = (directory / REGISTRY_FILE).resolve()
    values = {**(extra or {}),
              coordinator_var: (environ.get(coordinator_var) or kept.get(coordinator_var)
                                or f"coordinator:{secrets.token_urlsafe(18)}"),
              REGISTRY_ENV: str(registry)}
    header = "# stackha lab credentials, made by `stackha up`; keep private."
    _write_private(directory / LAB_ENV, [header, *(f"{k}={v}" for k, v in values.items())])
    known = read_registry(registry).digests
    for node in spec.nodes:
        path = directory / agent_env_file(node.name)
        if node.name in known and path.exists():
            continue
        credential = directory / f".{node.name}.credential"
        issue(node.name, registry, credential)
        _write_private(path, [header, f"{agent_var}={credential.read_text().strip()}"])
        credential.unlink()
    return values


def load_lab_credentials(directory: Path, environ: Mapping[str, str] = os.environ
                         ) -> dict[str, str]:
    """What the kept file adds to ``environ`` (names not already set); empty without one."""
    path = directory / LAB_ENV
    if not path.exists():
        return {}
    return {k: v for k, v in parse_env_file(path.read_text()).items() if not environ.get(k)}


MYCAT_CHECK_PASSWORD = "mycat-check.password"


def write_password_file(directory: Path, server_xml: Path, user: str | None) -> Path | None:
    """The password of the health check's MyCat user (from server.xml), for the directors."""
    if not user:
        return None
    from stackha.lab.standin.config import ConfError, parse_server_xml

    try:
        users, _ = parse_server_xml(server_xml.read_bytes())
    except (OSError, ConfError) as exc:
        raise LabError(f"{server_xml}: {exc}") from exc
    if user not in users:
        raise LabError(f"health_checks.mycat.user {user!r} is not a user of {server_xml}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / MYCAT_CHECK_PASSWORD
    _write_private(path, [users[user].password])
    return path
