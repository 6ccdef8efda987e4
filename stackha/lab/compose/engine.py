"""The system side of the lab: lifecycle through the compose CLI, inspection through the Docker SDK.

Every failure to reach Docker becomes a ``LabError`` whose one line says what to do.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackha.lab.compose.backend import LabError
from stackha.lab.compose.render import BUILD_PROFILE

log = logging.getLogger(__name__)

SETUP_HINT = "run scripts/docker-setup.sh (or `make up`)"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


@dataclass(frozen=True)
class ContainerState:
    service: str
    node: str
    name: str
    state: str  # running, exited, created, ...
    status: str  # docker's words: "Up 3 minutes", "Exited (137) 2 seconds ago"
    address: str
    image: str


def docker_client() -> Any:
    """A Docker SDK client that has answered a ping, or a LabError saying why not."""
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:  # pragma: no cover - a dependency of stackha
        raise LabError("the docker Python package is missing: pip install docker") from exc
    try:
        client = docker.from_env(timeout=30)
        client.ping()
    except DockerException as exc:
        host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise LabError(f"the Docker engine is not running or not reachable at {host} "
                       f"({exc.__class__.__name__}): start dockerd, or {SETUP_HINT}") from exc
    return client


def check_cli() -> None:
    """The docker CLI and its compose plugin are installed."""
    if shutil.which("docker") is None:
        raise LabError(f"the docker command is not installed: {SETUP_HINT}")
    try:
        done = subprocess.run(["docker", "compose", "version"], capture_output=True,
                              text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise LabError(f"`docker compose version` failed: {exc}") from exc
    if done.returncode != 0:
        raise LabError("the compose CLI (`docker compose`, Compose v2) is not installed: "
                       f"{SETUP_HINT}")


@dataclass
class ComposeProject:
    """One compose project: its file, name and the environment the CLI runs with."""

    file: Path
    name: str
    env: Mapping[str, str] = field(default_factory=dict)
    # Where the file's relative paths (build contexts, mounts) start: compose/, while the
    # rendered file lives in compose/.stackha/ (stackha.lab.compose.paths).
    directory: Path | None = None

    def command(self, *args: str, profile: bool = False) -> list[str]:
        base = ["docker", "compose", "--file", str(self.file), "--project-name", self.name]
        if self.directory is not None:
            base += ["--project-directory", str(self.directory)]
        if profile:
            base += ["--profile", BUILD_PROFILE]
        return [*base, *args]

    def run(self, *args: str, profile: bool = False, capture: bool = False,
            extra_env: Mapping[str, str] | None = None,
            timeout: float | None = None) -> subprocess.CompletedProcess[str]:
        command = self.command(*args, profile=profile)
        log.debug("event=compose command=%r", " ".join(command))
        env = {**os.environ, **self.env, **(extra_env or {})}
        try:
            return subprocess.run(command, env=env, text=True, timeout=timeout,
                                  capture_output=capture,
                                  cwd=self.directory or self.file.parent)
        except FileNotFoundError as exc:
            raise LabError(f"the docker command is not installed: {SETUP_HINT}") from exc

    def run_checked(self, *args: str, what: str, **kwargs: Any) -> None:
        done = self.run(*args, **kwargs)
        if done.returncode != 0:
            detail = (done.stderr or "").strip().splitlines()[-1:] if kwargs.get("capture") \
                else []
            raise LabError(f"{what} failed: `docker compose {' '.join(args)}` exited "
                           f"{done.returncode}" + (f": {detail[0]}" if detail else ""))


def image_label(client: Any, tag: str, label: str) -> str | None:
    """The label's value on a local image; None when the image is not there."""
    from docker.errors import ImageNotFound

    try:
        image = client.images.get(tag)
    except ImageNotFound:
        return None
    return (image.labels or {}).get(label, "")


def containers(client: Any, project: str) -> list[ContainerState]:
    """Every container of the project, running or not (one list call, docker's own words)."""
    found = []
    for raw in client.api.containers(all=True, filters={"label": f"{PROJECT_LABEL}={project}"}):
        labels = raw.get("Labels") or {}
        networks = (raw.get("NetworkSettings") or {}).get("Networks") or {}
        address = next((n.get("IPAddress") for n in networks.values() if n.get("IPAddress")),
                       "")
        names = raw.get("Names") or [""]
        found.append(ContainerState(
            service=labels.get(SERVICE_LABEL, ""), node=labels.get("stackha.node", ""),
            name=names[0].lstrip("/"), state=raw.get("State", ""),
            status=raw.get("Status", ""), address=address, image=raw.get("Image", "")))
    return sorted(found, key=lambda c: c.service)


def leftovers(client: Any, project: str) -> dict[str, Sequence[str]]:
    """Containers, networks and volumes the project still has (empty lists: none)."""
    selector = {"label": f"{PROJECT_LABEL}={project}"}
    return {
        "containers": [c.name for c in client.containers.list(all=True, filters=selector)],
        "networks": [n.name for n in client.networks.list(filters=selector)],
        "volumes": [v.name for v in client.volumes.list(filters=selector)],
    }
