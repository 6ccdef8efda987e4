"""The ``stackha`` command line. Output for people goes to stdout; errors one line each."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import signal
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from . import __version__
from .agent.core import Agent, AgentSettings, RoleSettings, VrrpSettings
from .agent.status import parse_status
from .bundle import SPEC_FILE
from .compose.commands import add_lab_parsers, add_status_arguments, containers_view
from .configset import ConfigSet, load_configs
from .connect import agent_identity, open_store
from .coordinator import Coordinator, VersionUnreadable, mask_secrets
from .keepalived.render import RenderOptions, render_keepalived
from .logs import setup_logging
from .lvs import cli as lvs_cli
from .lvs.node import LvsSettings
from .mycatcli import MycatCommandError
from .mycatcli import add_agent_options as add_mycat_agent_options
from .mycatcli import add_parsers as add_mycat_parsers
from .mycatcli import agent_settings as mycat_agent_settings
from .problems import Problem, errors, warnings
from .spec import StackSpec, parse_spec
from .statusview import build_rows, render_table, split_brain
from .store.base import StoreError
from .store.mycatzk import MycatLayoutWrite, layout_write_for

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class CommandError(Exception):
    """A one-line reason the command could not do its job."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


def _emit(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _report(problems: list[Problem]) -> None:
    for problem in problems:
        sys.stderr.write(f"{problem}\n")


def read_spec(configs: Path) -> StackSpec:
    path = configs / SPEC_FILE
    try:
        text = path.read_text()
    except OSError as exc:
        raise CommandError(f"{path}: cannot read: {exc.strerror}", EXIT_INVALID) from exc
    spec, problems = parse_spec(text, str(path))
    _report(errors(problems))
    if spec is None:
        raise CommandError(f"{path}: {len(errors(problems))} error(s)", EXIT_INVALID)
    return spec


def _coordinator(args: argparse.Namespace, staged: bool = True) -> Coordinator:
    return Coordinator(open_store(read_spec(args.configs), args.zk, "coordinator"), staged)


def _published_line(number: int | None, tail: str, canaries: Mapping[str, str]) -> str:
    staged = ", ".join(f"{node} ({role})" for role, node in sorted(canaries.items()))
    return (f"published version {number} {tail}"
            + (f"; canary first: {staged}" if staged else ""))


def cmd_validate(args: argparse.Namespace) -> int:
    configset, problems = load_configs(args.configs)
    _report(problems)
    if configset is None:
        raise CommandError(f"{args.configs}: {len(errors(problems))} error(s), nothing published",
                           EXIT_INVALID)
    _, layout_problems = _mycat_layout(configset, args.configs)
    _report(layout_problems)
    _emit(f"{args.configs}: valid ({len(configset.bundle.files)} files, "
          f"{len(warnings(problems + layout_problems))} warning(s))")
    return EXIT_OK


def _mycat_layout(configset: ConfigSet, configs: Path
                  ) -> tuple[MycatLayoutWrite | None, list[Problem]]:
    """MyCat's own ZooKeeper layout when the spec enables it, with what it cannot carry."""
    files = {path: f.content for path, f in configset.bundle.files.items()}
    write, problems = layout_write_for(configset.spec, files)
    return write, [replace(p, file=f"{configs}/{p.file}") for p in problems]


def cmd_mycat(args: argparse.Namespace) -> int:
    from .mycatcli import cmd_mycat as run_mycat

    return run_mycat(args, read_spec(args.configs))


def cmd_push(args: argparse.Namespace) -> int:
    configset, problems = load_configs(args.configs)
    _report(problems)
    if configset is None:
        raise CommandError(f"{args.configs}: {len(errors(problems))} error(s), nothing published",
                           EXIT_INVALID)
    spec = configset.spec
    mycat, layout_problems = _mycat_layout(configset, args.configs)
    _report(layout_problems)
    if errors(layout_problems):
        raise CommandError(f"{args.configs}: MyCat's ZooKeeper layout cannot be built, nothing "
                           "published", EXIT_INVALID)
    store = open_store(spec, args.zk, "coordinator")
    try:
        if not args.dry_run:
            store.ensure_layout(agent_identity(spec))
        result = Coordinator(store, staged=not args.all_at_once).push(
            configset.bundle, args.message or "", dry_run=args.dry_run, mycat=mycat, spec=spec)
    finally:
        store.close()
    if result.diff:
        sys.stdout.write(result.diff)
    if result.outcome == "unchanged":
        _emit(f"unchanged: version {result.number} already holds this configuration")
    elif result.outcome == "dry-run":
        _emit(f"dry run: would publish a new version after {result.previous or 'none'}")
    else:
        _emit(_published_line(result.number, f"(previous {result.previous or 'none'})",
                              result.canaries))
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args)
    try:
        current = coordinator.store.current_number()
        entries = coordinator.history()
    finally:
        coordinator.store.close()
    for entry in entries:
        if isinstance(entry, list):
            _emit(f"  unreadable: {'; '.join(str(p) for p in entry)}")
            continue
        mark = "*" if entry.number == current else " "
        _emit(f"{mark} {entry.number:>5}  {entry.created}  {entry.author}  "
              f"{entry.digest[:12]}  {entry.message}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args)
    try:
        number = args.version or coordinator.store.current_number()
        if not number:
            raise CommandError("no version has been published yet")
        version = coordinator.version(number)
    finally:
        coordinator.store.close()
    if args.file:
        if args.file not in version.bundle.files:
            raise CommandError(f"version {number} has no file '{args.file}'")
        text = version.bundle.files[args.file].content.decode("utf-8", errors="replace")
        sys.stdout.write(text if args.show_secrets else mask_secrets(text))
        return EXIT_OK
    _emit(f"version {version.number}  created {version.created}  by {version.author}")
    _emit(f"message: {version.message}")
    _emit(f"digest:  {version.digest}")
    for path, file in sorted(version.bundle.files.items()):
        _emit(f"  {file.sha256[:16]}  {file.mode:04o}  {len(file.content):>7}  {path}")
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    from .coordinator import bundle_diff

    coordinator = _coordinator(args)
    try:
        old, new = coordinator.version(args.a), coordinator.version(args.b)
    finally:
        coordinator.store.close()
    sys.stdout.write(bundle_diff(old.bundle, new.bundle, f"v{args.a}", f"v{args.b}",
                                 args.show_secrets))
    return EXIT_OK


def cmd_rollback(args: argparse.Namespace) -> int:
    coordinator = _coordinator(args, staged=not args.all_at_once)
    try:
        result = coordinator.rollback(args.version)
    finally:
        coordinator.store.close()
    if result.outcome == "unchanged":
        _emit(f"unchanged: current version {result.number} already equals version "
              f"{args.version}")
    else:
        _emit(_published_line(result.number, f"equal to version {args.version}",
                              result.canaries))
    return EXIT_OK


def _role_settings(args: argparse.Namespace, spec: StackSpec) -> dict[str, RoleSettings]:
    roles: dict[str, RoleSettings] = {}
    if args.nginx_dir:
        roles["nginx"] = RoleSettings(
            target=args.nginx_dir,
            reload=tuple(shlex.split(args.nginx_reload)) if args.nginx_reload else None,
            health_url=args.nginx_health_url or spec.health_check("nginx").url)
    if args.mycat_dir:
        try:
            manager, health = mycat_agent_settings(args, spec)
        except MycatCommandError as exc:
            raise CommandError(str(exc), EXIT_INVALID) from exc
        roles["mycat"] = RoleSettings(
            target=args.mycat_dir,
            reload=tuple(shlex.split(args.mycat_reload)) if args.mycat_reload else None,
            mycat_manager=manager, mycat_health=health)
    return roles


def _stackha_command() -> str:
    found = shutil.which("stackha")
    return str(Path(found).resolve()) if found else str(Path(sys.argv[0]).resolve())


def _vrrp_settings(args: argparse.Namespace) -> VrrpSettings | None:
    if args.keepalived_dir is None:
        return None
    return VrrpSettings(conf_dir=args.keepalived_dir,
                        run_dir=args.run_dir or args.state_dir / "run",
                        stackha_command=args.stackha_command or _stackha_command(),
                        script_user=args.script_user, interface=args.vrrp_interface,
                        ipvs=args.lvs_engine == "ipvs")


def _lvs_settings(args: argparse.Namespace) -> LvsSettings | None:
    if not args.lvs:
        return None
    return LvsSettings(state_dir=args.state_dir, interface=args.lvs_interface,
                       mycat_password_file=args.mycat_password_file)


def cmd_agent(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    settings = AgentSettings(node=args.node, state_dir=args.state_dir,
                             roles=_role_settings(args, spec), heartbeat=args.heartbeat,
                             health_wait=args.health_wait, rollout_wait=args.rollout_wait,
                             vrrp=_vrrp_settings(args), lvs=_lvs_settings(args))
    from .connect import build_store

    agent = Agent(settings, build_store(spec, args.zk, "agent", retry_forever=True))
    if args.metrics_port:
        from .agent import metrics

        metrics.serve(args.metrics_port, args.metrics_address)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    agent.run()
    return EXIT_OK


def cmd_render_keepalived(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    options = RenderOptions(stackha_command=args.stackha_command or "/usr/local/bin/stackha",
                            script_user=args.script_user)
    ipvs = args.lvs_engine == "ipvs"
    if args.all:
        if args.out is None:
            raise CommandError("--all needs --out DIR")
        args.out.mkdir(parents=True, exist_ok=True)
        for node in spec.nodes:
            if spec.groups_of(node.name):
                path = args.out / f"{node.name}.conf"
                path.write_text(render_keepalived(spec, node.name, options, ipvs=ipvs))
                _emit(f"wrote {path}")
        return EXIT_OK
    if not args.node:
        raise CommandError("give --node NAME or --all --out DIR")
    if spec.node(args.node) is None:
        raise CommandError(f"node {args.node} is not in the spec")
    sys.stdout.write(render_keepalived(spec, args.node, options, ipvs=ipvs))
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    containers: list[dict[str, str]] | None = None
    if args.containers:  # the compose lab's containers, shown even when ZooKeeper is down
        table, containers = containers_view(args)
        if not args.json:
            sys.stdout.write(table + "\n")
    store = open_store(spec, args.zk, "coordinator")
    try:
        current = store.current_number()
        raw = store.statuses()
    finally:
        store.close()
    rows = build_rows(spec, {n: parse_status(n, d) for n, d in raw.items()}, current)
    if args.json:
        _emit(json.dumps({"current_version": current, "nodes": [r.as_dict() for r in rows],
                          "split_brain": split_brain(rows),
                          **({"containers": containers} if containers is not None else {})},
                         indent=1))
    else:
        sys.stdout.write(render_table(rows))
    return EXIT_OK


def cmd_drill(args: argparse.Namespace) -> int:
    from .drill.command import cmd_drill as run_drill

    return run_drill(args, read_spec, _emit, CommandError)


def _all_at_once(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--all-at-once", action="store_true",
                        help="no canary: every node applies the version at once")


def _common(parser: argparse.ArgumentParser, zk: bool = True) -> None:
    parser.add_argument("--configs", type=Path, default=Path("configs"),
                        help="directory with stackha.yaml, nginx/ and mycat/ (default configs/)")
    if zk:
        parser.add_argument("--zk", metavar="HOSTS",
                            help="ZooKeeper hosts, overriding the spec (also $STACKHA_ZK)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stackha", description=__doc__)
    parser.add_argument("--version", action="version", version=f"stackha {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("validate", help="validate configs/ without publishing")
    _common(p, zk=False)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("push-config", help="validate configs/ and publish a new version")
    _common(p)
    p.add_argument("--dry-run", action="store_true", help="show the diff, publish nothing")
    p.add_argument("-m", "--message", default="", help="what this change is for")
    _all_at_once(p)
    p.set_defaults(func=cmd_push)

    config = sub.add_parser("config", help="published versions").add_subparsers(
        dest="config_command", required=True)
    p = config.add_parser("history", help="every version, oldest first; * marks current")
    _common(p)
    p.set_defaults(func=cmd_history)
    p = config.add_parser("show", help="a version's files, or one file")
    _common(p)
    p.add_argument("version", type=int, nargs="?")
    p.add_argument("file", nargs="?")
    p.add_argument("--show-secrets", action="store_true", help="do not mask passwords")
    p.set_defaults(func=cmd_show)
    p = config.add_parser("diff", help="unified diff between two versions")
    _common(p)
    p.add_argument("a", type=int)
    p.add_argument("b", type=int)
    p.add_argument("--show-secrets", action="store_true")
    p.set_defaults(func=cmd_diff)
    p = config.add_parser("rollback", help="publish a new version equal to an old one")
    _common(p)
    p.add_argument("version", type=int)
    _all_at_once(p)
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("agent", help="the node agent (long-running)")
    _common(p)
    p.add_argument("--node", required=True, help="this node's name in the spec")
    p.add_argument("--state-dir", type=Path, default=Path("/var/lib/stackha"),
                   help="last-known-good copy and bookkeeping (default /var/lib/stackha)")
    p.add_argument("--nginx-dir", type=Path, help="nginx prefix the nginx files go to")
    p.add_argument("--nginx-reload", help="command that reloads nginx, e.g. 'nginx -s reload'")
    p.add_argument("--nginx-health-url", help="URL the nginx health check asks")
    p.add_argument("--mycat-dir", type=Path, help="MyCat conf directory")
    p.add_argument("--mycat-reload", help="command that reloads MyCat; with --mycat-manager, "
                                          "the command that starts it when the manager port "
                                          "does not answer")
    add_mycat_agent_options(p)
    p.add_argument("--heartbeat", type=float, default=5.0, help="status refresh, seconds")
    p.add_argument("--rollout-wait", type=float, default=60.0,
                   help="seconds to wait for a version's canary before applying anyway")
    p.add_argument("--health-wait", type=float, default=5.0,
                   help="how long a reloaded service may take to become healthy")
    p.add_argument("--keepalived-dir", type=Path,
                   help="run VRRP: keepalived.conf is written here and keepalived supervised")
    p.add_argument("--run-dir", type=Path, help="keepalived pid files, FIFO and log")
    p.add_argument("--script-user", default="keepalived_script",
                   help="user keepalived runs the health checks as")
    p.add_argument("--stackha-command", help="absolute path of stackha for the health checks")
    p.add_argument("--vrrp-interface", help="interface for VRRP, overriding the spec")
    p.add_argument("--lvs-engine", choices=("nftables", "ipvs"), default="nftables",
                   help="ipvs adds keepalived virtual_server blocks on directors")
    p.add_argument("--lvs", action="store_true",
                   help="LVS-DR: realserver setup on realservers, forwarding on directors")
    p.add_argument("--lvs-interface", help="interface facing the LVS peers, overriding the spec")
    p.add_argument("--mycat-password-file", type=Path,
                   help="password for the director's `check: mycat` login")
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: off)")
    p.add_argument("--metrics-address", default="127.0.0.1")
    p.set_defaults(func=cmd_agent)

    render = sub.add_parser("render", help="print what the agent would write").add_subparsers(
        dest="render_command", required=True)
    p = render.add_parser("keepalived", help="a node's keepalived.conf")
    _common(p, zk=False)
    p.add_argument("--node")
    p.add_argument("--all", action="store_true", help="every node with a VRRP group")
    p.add_argument("--out", type=Path, help="directory for --all (one NODE.conf each)")
    p.add_argument("--script-user", default="keepalived_script")
    p.add_argument("--stackha-command", help="stackha path the check scripts use")
    p.add_argument("--lvs-engine", choices=("nftables", "ipvs"), default="nftables")
    p.set_defaults(func=cmd_render_keepalived)

    add_mycat_parsers(sub, _common, cmd_mycat)

    p = sub.add_parser("status", help="every node's applied version, VRRP state and health")
    _common(p)
    p.add_argument("--json", action="store_true")
    add_status_arguments(p)
    p.set_defaults(func=cmd_status)
    add_lab_parsers(sub, _common)
    from .drill.command import add_parser as add_drill_parser

    add_drill_parser(sub, _common, cmd_drill)

    lvs_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        return int(args.func(args))
    except CommandError as exc:
        sys.stderr.write(f"stackha: {exc}\n")
        return exc.code
    except VersionUnreadable as exc:
        _report(exc.problems)
        return EXIT_FAIL
    except StoreError as exc:
        sys.stderr.write(f"stackha: {exc}\n")
        return EXIT_FAIL
    except KeyboardInterrupt:
        return 130


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
