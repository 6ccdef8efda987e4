"""`stackha up | down | logs` and the container part of `stackha status --containers`.

Called by ``stackha.cli.lab``: each command takes an ``emit`` callback for its progress lines
and raises LabError; nothing here imports the command line.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stackha.lab.compose import engine
from stackha.lab.compose.backend import Backend, LabError, backend_from_schema
from stackha.lab.compose.digests import LABEL, image_digests, source_files, tree_files
from stackha.lab.compose.hostnet import allow_bridge_local, remove_bridge_local
from stackha.lab.compose.labtls import lab_tls_env, lab_tls_files
from stackha.lab.compose.paths import PRIVATE_DIR, lab_compose_file, running_compose_file
from stackha.lab.compose.render import (
    LabOptions,
    images,
    render_compose,
    service_name,
    zookeeper_members,
)
from stackha.lab.compose.secrets import lab_credentials, load_lab_credentials, write_password_file
from stackha.lab.compose.signing import lab_signing_key
from stackha.lab.compose.view import endpoints, render_containers
from stackha.lab.compose.wheelhouse import build_wheelhouse
from stackha.model.spec import StackSpec
from stackha.trust.signing import SIGNING_KEY_ENV, KeyFileError, load_private

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[3]
DEFAULT_COMPOSE_DIR = REPO / "compose"


Emit = Callable[[str], None]


@dataclass(frozen=True)
class Lab:
    spec: StackSpec
    backend: Backend
    options: LabOptions
    compose_dir: Path
    configs: Path

    @property
    def file(self) -> Path:
        return running_compose_file(self.compose_dir)

    def project(self, env: dict[str, str] | None = None) -> engine.ComposeProject:
        return engine.ComposeProject(self.file, self.options.project, env or {},
                                     directory=self.compose_dir)


# cgroup v1 with RT group scheduling: docker's parent group holds what its containers may
# share (docker-setup.sh starts dockerd with --cpu-rt-runtime); each keepalived container
# asks for this much of every second, 4 of them 8 % of a CPU at most.
RT_GROUP = Path("/sys/fs/cgroup/cpu/docker/cpu.rt_runtime_us")
CONTAINER_RT_US = 20_000


RT_ROOT = Path("/sys/fs/cgroup/cpu/cpu.rt_runtime_us")


def container_rt_budget(group: Path = RT_GROUP, root: Path = RT_ROOT) -> int:
    """The realtime budget to give keepalived containers here: 0 unless docker's cgroup has
    realtime time to hand out (cgroup v2 hosts have no such knob and need none). Where RT
    group scheduling exists and docker's cgroup has none, keepalived's VRRP runs SCHED_OTHER
    in the lab and flaps on a busy host: the warning names the fix."""
    try:
        available = int(group.read_text())
    except (OSError, ValueError):
        available = 0
    if available >= 8 * CONTAINER_RT_US:
        return CONTAINER_RT_US
    if root.exists():
        log.warning("event=lab_no_realtime_budget cgroup=%s available_us=%d "
                    "fix=%r", group.parent, available, "scripts/docker-setup.sh")
    return 0


def mycat_tarball(compose_dir: Path) -> str | None:
    """The MyCat release to build into the image: $MYCAT_TARBALL, or one dropped in mycat/."""
    named = os.environ.get("MYCAT_TARBALL")
    if named:
        if not (compose_dir / "mycat" / named).is_file():
            raise LabError(f"MYCAT_TARBALL={named}: no such file in {compose_dir / 'mycat'}")
        return named
    found = sorted((compose_dir / "mycat").glob("Mycat-server-*.tar.gz"))
    return found[0].name if found else None


def place_tarball(tarball: Path, compose_dir: Path) -> str:
    """Put the MyCat release into the image's build context (compose/mycat/, git-ignored),
    the only one there: the build takes what it finds. Returns its name."""
    if not tarball.is_file():
        raise LabError(f"--mycat-tarball {tarball}: no such file")
    if not tarball.name.endswith((".tar.gz", ".tgz")):
        raise LabError(f"--mycat-tarball {tarball}: not a .tar.gz (a MyCat 1.6 release)")
    name = tarball.name if tarball.name.startswith("Mycat-server-") \
        else f"Mycat-server-{tarball.name}"
    target = compose_dir / "mycat" / name
    for other in (compose_dir / "mycat").glob("Mycat-server-*.tar.gz"):
        if other != target:
            other.unlink()
    if not target.is_file() or target.stat().st_size != tarball.stat().st_size \
            or target.read_bytes() != tarball.read_bytes():
        shutil.copyfile(tarball, target)
    return name


def load_lab(args: argparse.Namespace, spec: StackSpec) -> Lab:
    schema = args.configs / "mycat" / "schema.xml"
    try:
        backend = backend_from_schema(schema.read_bytes())
    except OSError as exc:
        raise LabError(f"{schema}: cannot read: {exc.strerror}") from exc
    compose_dir = args.compose_dir.resolve()
    if getattr(args, "mycat_tarball", None) is not None:
        os.environ["MYCAT_TARBALL"] = place_tarball(args.mycat_tarball, compose_dir)
    options = LabOptions(configs_mount=os.path.relpath(args.configs.resolve(), compose_dir),
                         mycat_release=mycat_tarball(compose_dir) is not None,
                         rt_runtime_us=container_rt_budget())
    return Lab(spec, backend, options, compose_dir, args.configs)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return True


def _build_images(lab: Lab, project: engine.ComposeProject, client: Any, force: bool,
                  _emit: Emit) -> None:
    contexts = {i.context: tree_files(lab.compose_dir / i.context)
                for i in images(lab.options)}
    digests = image_digests(images(lab.options), contexts, source_files(REPO),
                            mycat_tarball(lab.compose_dir) or "")
    for image in images(lab.options):
        have = engine.image_label(client, image.tag, LABEL)
        if not force and have == digests[image.service]:
            continue
        why = "--build" if force else ("missing" if have is None else "sources changed")
        _emit(f"building {image.tag} ({why}) ...")
        started = time.monotonic()
        if image.service == "image-base":
            build_wheelhouse(REPO, lab.compose_dir / image.context / "wheels")
        project.run_checked("build", image.service, profile=True, capture=True,
                            what=f"building {image.tag}",
                            extra_env={"STACKHA_IMAGE_DIGEST": digests[image.service]})
        _emit(f"built {image.tag} in {time.monotonic() - started:.0f} s")


def _push(lab: Lab, deadline: float, _emit: Emit, signing_key: Path) -> None:
    """Publish the lab's configs/ as `stackha push-config` does (the same function), once
    ZooKeeper answers (the ensemble needs a few seconds)."""
    from stackha.coordinator.publish import ConfigRejected, publish_configs
    from stackha.store.base import StoreError
    from stackha.store.connect import open_store

    try:
        key = load_private(signing_key)
    except KeyFileError as exc:
        raise LabError(str(exc)) from exc
    while True:
        try:
            # `stackha init` first: the lab's tree is its own, and a node whose credential
            # was re-issued gets its ACLs back before the push checks them.
            store = open_store(lab.spec, None, "coordinator")
            try:
                store.ensure_layout(take_over=True)
            finally:
                store.close()
            result = publish_configs(lab.configs, None, "stackha up", signing_key=key)
            break
        except ConfigRejected as exc:
            raise LabError(f"{exc}: " + "; ".join(str(p) for p in exc.problems)) from exc
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise LabError(f"ZooKeeper did not answer: {exc}") from exc
            time.sleep(2)
    if result.outcome == "unchanged":
        _emit(f"unchanged: version {result.number} already holds this configuration")
    else:
        _emit(f"published version {result.number} (previous {result.previous or 'none'})")


def _wait_for_agents(lab: Lab, deadline: float, _emit: Emit) -> None:
    from stackha.model.cluster import ClusterView
    from stackha.store.connect import open_store

    store = open_store(lab.spec, None, "coordinator")
    shown = ""
    try:
        while True:
            # With the time read: a stale report (a node that died) is not ready.
            progress = ClusterView.of(lab.spec, store.current_number(), store.statuses(),
                                      datetime.now(UTC)).progress()
            line = progress.describe()
            if line != shown:
                _emit(f"  {line}")
                shown = line
            if progress.failed:
                raise LabError("an agent refused the configuration: "
                               + "; ".join(f"{n}: {why}" for n, why in progress.failed))
            if progress.done:
                return
            if time.monotonic() > deadline:
                raise LabError(f"timed out waiting for the agents: {line}")
            time.sleep(1)
    finally:
        store.close()


def cmd_up(args: argparse.Namespace, spec: StackSpec, _emit: Emit) -> int:
    started = time.monotonic()
    deadline = started + args.timeout
    engine.check_cli()
    client = engine.docker_client()
    lab = load_lab(args, spec)
    # Until the ensemble has formed kazoo warns on every refused connection: expected here.
    logging.getLogger("kazoo.client").setLevel(logging.ERROR)
    # Before the compose file is rendered: the agents mount the public half.
    signing_key = lab_signing_key(lab.compose_dir / PRIVATE_DIR)
    credentials = lab_credentials(lab.spec, lab.compose_dir / PRIVATE_DIR,
                                  extra={SIGNING_KEY_ENV: str(signing_key)})
    os.environ.update(credentials)  # the push below, and the compose CLI's interpolation
    # The CA, each member's server certificate and each node's client certificate (kept).
    made = lab_tls_files(lab.spec, lab.compose_dir / PRIVATE_DIR,
                         [(myid, str(address)) for myid, address, _ in
                          zookeeper_members(lab.spec)])
    if made:
        _emit(f"TLS: issued {', '.join(made)} ({lab.compose_dir / PRIVATE_DIR / 'tls'})")
    os.environ.update(lab_tls_env(lab.compose_dir / PRIVATE_DIR))
    check = lab.spec.health_check("mycat")
    write_password_file(lab.compose_dir / PRIVATE_DIR, lab.configs / "mycat" / "server.xml",
                        check.user)
    if _write_if_changed(lab.file, render_compose(lab.spec, lab.backend, lab.options,
                                                  source=str(lab.configs / "stackha.yaml"))):
        _emit(f"wrote {lab.file}")
    project = lab.project()
    _build_images(lab, project, client, args.build, _emit)
    if allow_bridge_local(lab.options.bridge_name):
        _emit(f"iptables: frames inside {lab.options.bridge_name} accepted (DOCKER-USER), "
              "so VRRP adverts pass on the internal lab network")
    _emit("starting the containers ...")
    # Certificates are bind-mounted files: a container started with the old ones keeps its
    # TLS context, so new ones mean recreating the containers (rotation).
    recreate = ["--force-recreate"] if made else []
    project.run_checked("up", "--detach", "--remove-orphans", "--quiet-pull", *recreate,
                        capture=True, what="starting the lab")
    _push(lab, deadline, _emit, signing_key)
    _emit("waiting for every agent to apply it and report healthy ...")
    _wait_for_agents(lab, deadline, _emit)
    _emit(f"the lab is up ({time.monotonic() - started:.0f} s)")
    _emit("")
    users = _sql_user(lab)
    for line in endpoints(lab.spec, users[0], users[1]):
        _emit(f"  {line}")
    _emit("")
    _emit("  stackha status --containers   every node and container")
    _emit("  stackha logs [SERVICE]        the containers' logs")
    private = lab.compose_dir / PRIVATE_DIR
    tls_env = f" . {private / 'tls.env'};" if lab.spec.zookeeper.tls is not None else ""
    _emit(f"  set -a; . {private / 'lab.env'};{tls_env} set +a"
          "   credentials, signing key (and TLS files) for push-config")
    if not lab.options.mycat_release:
        _emit("  MyCat nodes run mycat-standin, stackha's MySQL-protocol stand-in (not MyCat):"
              " see compose/mycat/README.md")
    return 0


def _sql_user(lab: Lab) -> tuple[str | None, str | None]:
    from stackha.lab.standin.config import ConfError, parse_server_xml

    try:
        users, _ = parse_server_xml((lab.configs / "mycat" / "server.xml").read_bytes())
    except (OSError, ConfError):
        return None, None
    name = lab.spec.health_check("mycat").user or next(iter(users), None)
    user = users.get(name or "")
    schema = (user.default_schema or (user.schemas[0] if user.schemas else None)) if user else None
    return name, schema


def cmd_down(args: argparse.Namespace, _emit: Emit) -> int:
    engine.check_cli()
    client = engine.docker_client()
    compose_dir = args.compose_dir.resolve()
    project = engine.ComposeProject(lab_compose_file(compose_dir), args.project,
                                    directory=compose_dir)
    if not project.file.exists():
        raise LabError(f"{project.file}: no compose file (stackha up writes it)")
    down = ["down", "--remove-orphans", "--timeout", "15"]
    if args.volumes:
        down.append("--volumes")
    project.run_checked(*down, what="stopping the lab", capture=True)
    remove_bridge_local(LabOptions().bridge_name)
    left = {kind: names for kind, names in engine.leftovers(client, args.project).items()
            if names}
    if left:
        _emit("left behind: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in left.items()))
        return 1
    _emit(f"the lab is down: no container, network{' or volume' if args.volumes else ''} "
          f"of project {args.project} is left")
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    engine.check_cli()
    compose_dir = args.compose_dir.resolve()
    project = engine.ComposeProject(lab_compose_file(compose_dir), args.project,
                                    directory=compose_dir)
    command = ["logs", "--no-color", "--timestamps"]
    if args.follow:
        command.append("--follow")
    if args.tail is not None:
        command += ["--tail", str(args.tail)]
    if args.service:
        client = engine.docker_client()
        known = {c.service for c in engine.containers(client, args.project)}
        by_node = {c.node: c.service for c in engine.containers(client, args.project)}
        service = args.service if args.service in known else by_node.get(args.service)
        if service is None:
            raise LabError(f"no service or node {args.service!r} in the lab "
                           f"(services: {', '.join(sorted(known)) or 'none running'})")
        command.append(service)
    return project.run(*command).returncode


def containers_view(args: argparse.Namespace) -> tuple[str, list[dict[str, str]]]:
    """For `stackha status --containers`: the table and the same rows as dicts.

    The lab's kept credentials are loaded into the environment when none are set, so the
    agent table that follows works without sourcing lab.env first.
    """
    os.environ.update(load_lab_credentials(args.compose_dir.resolve() / PRIVATE_DIR))
    os.environ.update(lab_tls_env(args.compose_dir.resolve() / PRIVATE_DIR))
    client = engine.docker_client()
    rows = engine.containers(client, args.project)
    return render_containers(rows), [vars(r) for r in rows]


__all__ = ["cmd_down", "cmd_logs", "cmd_up", "containers_view", "service_name"]
