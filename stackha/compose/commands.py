"""`stackha up | down | logs` and the container part of `stackha status --containers`."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..spec import StackSpec
from . import engine
from .backend import Backend, LabError, backend_from_schema
from .digests import LABEL, image_digests, source_files, tree_files
from .progress import assess, describe
from .render import LabOptions, images, render_compose, service_name
from .secrets import lab_credentials, load_lab_credentials, write_password_file
from .view import endpoints, render_containers
from .wheelhouse import build_wheelhouse

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_COMPOSE_DIR = REPO / "compose"
COMPOSE_FILE = "compose.yaml"
PRIVATE_DIR = ".stackha"


def _cli() -> Any:
    # cli imports this module to register the commands: import it back lazily.
    from .. import cli

    return cli


def _emit(line: str = "") -> None:
    _cli()._emit(line)


@dataclass(frozen=True)
class Lab:
    spec: StackSpec
    backend: Backend
    options: LabOptions
    compose_dir: Path
    configs: Path

    @property
    def file(self) -> Path:
        return self.compose_dir / COMPOSE_FILE

    def project(self, env: dict[str, str] | None = None) -> engine.ComposeProject:
        return engine.ComposeProject(self.file, self.options.project, env or {})


def mycat_tarball(compose_dir: Path) -> str | None:
    """The MyCat release to build into the image: $MYCAT_TARBALL, or one dropped in mycat/."""
    named = os.environ.get("MYCAT_TARBALL")
    if named:
        if not (compose_dir / "mycat" / named).is_file():
            raise LabError(f"MYCAT_TARBALL={named}: no such file in {compose_dir / 'mycat'}")
        return named
    found = sorted((compose_dir / "mycat").glob("Mycat-server-*.tar.gz"))
    return found[0].name if found else None


def load_lab(args: argparse.Namespace) -> Lab:
    spec = _cli().read_spec(args.configs)
    schema = args.configs / "mycat" / "schema.xml"
    try:
        backend = backend_from_schema(schema.read_bytes())
    except OSError as exc:
        raise LabError(f"{schema}: cannot read: {exc.strerror}") from exc
    compose_dir = args.compose_dir.resolve()
    options = LabOptions(configs_mount=os.path.relpath(args.configs.resolve(), compose_dir),
                         mycat_release=mycat_tarball(compose_dir) is not None)
    return Lab(spec, backend, options, compose_dir, args.configs)


def _write_if_changed(path: Path, text: str) -> bool:
    if path.exists() and path.read_text() == text:
        return False
    path.write_text(text)
    return True


def _build_images(lab: Lab, project: engine.ComposeProject, client: Any, force: bool) -> None:
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


def _push(lab: Lab, deadline: float) -> None:
    """`stackha push-config` once ZooKeeper answers (the ensemble needs a few seconds).

    The very command, so the lab publishes exactly what an operator would; its diff (the whole
    configuration on a first push) is kept out of `stackha up`'s output.
    """
    cli = _cli()
    from ..store.base import StoreError

    # Parsed by push-config's own parser, so every option has its default.
    push = cli.build_parser().parse_args(["push-config", "--configs", str(lab.configs),
                                          "-m", "stackha up"])
    while True:
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                cli.cmd_push(push)
            break
        except StoreError as exc:
            if time.monotonic() > deadline:
                raise LabError(f"ZooKeeper did not answer: {exc}") from exc
            time.sleep(2)
    lines = out.getvalue().strip().splitlines()
    _emit(lines[-1] if lines else "published")


def _wait_for_agents(lab: Lab, deadline: float) -> None:
    from ..agent.status import parse_status
    from ..connect import open_store

    store = open_store(lab.spec, None, "coordinator")
    shown = ""
    try:
        while True:
            current = store.current_number()
            statuses = {n: parse_status(n, d) for n, d in store.statuses().items()}
            progress = assess(lab.spec, statuses, current)
            line = describe(progress)
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


def cmd_up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    deadline = started + args.timeout
    engine.check_cli()
    client = engine.docker_client()
    lab = load_lab(args)
    # Until the ensemble has formed kazoo warns on every refused connection: expected here.
    logging.getLogger("kazoo.client").setLevel(logging.ERROR)
    credentials = lab_credentials(lab.spec, lab.compose_dir / PRIVATE_DIR)
    os.environ.update(credentials)  # the push below, and the compose CLI's interpolation
    check = lab.spec.health_check("mycat")
    write_password_file(lab.compose_dir / PRIVATE_DIR, lab.configs / "mycat" / "server.xml",
                        check.user)
    if _write_if_changed(lab.file, render_compose(lab.spec, lab.backend, lab.options,
                                                  source=str(lab.configs / "stackha.yaml"))):
        _emit(f"wrote {lab.file}")
    project = lab.project()
    _build_images(lab, project, client, args.build)
    _emit("starting the containers ...")
    project.run_checked("up", "--detach", "--remove-orphans", "--quiet-pull", capture=True,
                        what="starting the lab")
    _push(lab, deadline)
    _emit("waiting for every agent to apply it and report healthy ...")
    _wait_for_agents(lab, deadline)
    _emit(f"the lab is up ({time.monotonic() - started:.0f} s)")
    _emit("")
    users = _sql_user(lab)
    for line in endpoints(lab.spec, users[0], users[1]):
        _emit(f"  {line}")
    _emit("")
    _emit("  stackha status --containers   every node and container")
    _emit("  stackha logs [SERVICE]        the containers' logs")
    _emit(f"  set -a; . {lab.compose_dir / PRIVATE_DIR / 'lab.env'}; set +a"
          "   credentials for push-config")
    if not lab.options.mycat_release:
        _emit("  MyCat nodes run mycat-standin, stackha's MySQL-protocol stand-in (not MyCat):"
              " see compose/mycat/README.md")
    return 0


def _sql_user(lab: Lab) -> tuple[str | None, str | None]:
    from ..standin.server import ConfError, parse_server_xml

    try:
        users, _ = parse_server_xml((lab.configs / "mycat" / "server.xml").read_bytes())
    except (OSError, ConfError):
        return None, None
    name = lab.spec.health_check("mycat").user or next(iter(users), None)
    user = users.get(name or "")
    schema = (user.default_schema or (user.schemas[0] if user.schemas else None)) if user else None
    return name, schema


def cmd_down(args: argparse.Namespace) -> int:
    engine.check_cli()
    client = engine.docker_client()
    project = engine.ComposeProject(args.compose_dir.resolve() / COMPOSE_FILE, args.project)
    if not project.file.exists():
        raise LabError(f"{project.file}: no compose file (stackha up writes it)")
    down = ["down", "--remove-orphans", "--timeout", "15"]
    if args.volumes:
        down.append("--volumes")
    project.run_checked(*down, what="stopping the lab", capture=True)
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
    project = engine.ComposeProject(args.compose_dir.resolve() / COMPOSE_FILE, args.project)
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
    try:
        client = engine.docker_client()
        rows = engine.containers(client, args.project)
    except LabError as exc:
        raise _cli().CommandError(str(exc)) from exc
    return render_containers(rows), [vars(r) for r in rows]


def _lab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compose-dir", type=Path, default=DEFAULT_COMPOSE_DIR,
                        help="the compose project's directory (default: compose/ of stackha)")
    parser.add_argument("--project", default=LabOptions().project,
                        help="compose project name (default stackha)")


def add_lab_parsers(sub: Any, common: Callable[..., None]) -> None:
    """Register up, down and logs on the main parser's subcommands."""
    p = sub.add_parser("up", help="the whole stack in docker compose on this machine")
    common(p, zk=False)
    _lab_arguments(p)
    p.add_argument("--build", action="store_true", help="rebuild every image first")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds to wait for every agent to be ready (default 600)")
    p.set_defaults(func=_guarded(cmd_up))

    p = sub.add_parser("down", help="stop the compose stack and remove its containers")
    _lab_arguments(p)
    p.add_argument("--volumes", action="store_true", help="remove its volumes too")
    p.set_defaults(func=_guarded(cmd_down))

    p = sub.add_parser("logs", help="the compose stack's logs, or one service's")
    _lab_arguments(p)
    p.add_argument("service", nargs="?", help="a service or node name (default: all)")
    p.add_argument("-f", "--follow", action="store_true")
    p.add_argument("--tail", type=int, help="lines from the end of each log")
    p.set_defaults(func=_guarded(cmd_logs))


def add_status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--containers", action="store_true",
                        help="also the lab's containers (Docker), before the agents' table")
    _lab_arguments(parser)


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """LabError becomes the CLI's one-line CommandError."""

    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except LabError as exc:
            raise _cli().CommandError(str(exc)) from exc

    run.__name__ = command.__name__
    return run


__all__ = ["add_lab_parsers", "add_status_arguments", "containers_view", "service_name"]
