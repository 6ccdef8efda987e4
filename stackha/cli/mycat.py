"""``stackha mycat …``: MyCat operations that are not configuration pushes.

``reload-zk`` asks MyCat nodes running with loadZk=true to re-read their ZooKeeper layout;
``offline`` and ``online`` drain a node through its manager port (9066) and bring it back.
"""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path
from typing import Any

from stackha.agent.mycatrole import MycatHealthSettings, MycatManagerSettings
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_INVALID, EXIT_OK, CommandError, emit
from stackha.model.spec import StackSpec
from stackha.mycat.manager import ManagerClient, ManagerError
from stackha.store.mycatzk import target_of


class MycatCommandError(CommandError):
    """A mistake in the MyCat options: exit status 2."""

    def __init__(self, message: str):
        super().__init__(message, EXIT_INVALID)


def reload_zk(spec: StackSpec, zk_override: str | None, node: str | None,
              every: bool) -> list[str]:
    from stackha.store.connect import open_store

    target = target_of(spec)
    if target is None:
        raise MycatCommandError("the spec does not enable mycat_zookeeper")
    if every == (node is not None):
        raise MycatCommandError("give --node MYID or --all")
    if node is not None and node not in target.nodes:
        raise MycatCommandError(f"'{node}' is not a mycat node of the spec (known: "
                                f"{', '.join(target.nodes) or 'none'})")
    myids = list(target.nodes) if every else [str(node)]
    store = open_store(spec, zk_override, "coordinator")
    try:
        return store.request_mycat_reload(target, myids)
    finally:
        store.close()


def manager_client(spec: StackSpec, args: argparse.Namespace) -> ManagerClient:
    check = spec.health_check("mycat")
    user = args.user or check.user
    if not user:
        raise MycatCommandError("give --user (or health_checks.mycat.user in the spec)")
    try:
        password = args.password_file.read_text().strip() if args.password_file else ""
    except OSError as exc:
        raise MycatCommandError(f"{args.password_file}: cannot read: {exc.strerror}") from exc
    port = args.manager_port or check.manager_port or 9066
    return ManagerClient(args.host, port, user, password, timeout=args.timeout)


def cmd_mycat(args: argparse.Namespace) -> int:
    spec = read_spec(args.configs)
    try:
        if args.mycat_command == "reload-zk":
            for path in reload_zk(spec, args.zk, args.node, args.all):
                emit(f"requested: {path}")
            return EXIT_OK
        client = manager_client(spec, args)
        if args.mycat_command == "offline":
            client.offline()
            emit(f"{client.host}:{client.port}: offline (new logins and pings refused)")
        else:
            client.online()
            emit(f"{client.host}:{client.port}: online")
        return EXIT_OK
    except MycatCommandError as exc:
        raise CommandError(str(exc)) from exc
    except ManagerError as exc:
        raise CommandError(f"manager port: {exc.message}") from exc


def register(sub: Any) -> None:
    """``mycat reload-zk|offline|online``."""
    common, handler = add_common, cmd_mycat
    mycat = sub.add_parser("mycat", help="MyCat: ZooKeeper reload, drain").add_subparsers(
        dest="mycat_command", required=True)
    p = mycat.add_parser("reload-zk", help="make MyCat nodes (loadZk=true) re-read ZooKeeper")
    common(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--node", metavar="MYID", help="one MyCat node (its myid)")
    which.add_argument("--all", action="store_true", help="every MyCat node of the spec")
    p.set_defaults(func=handler)
    for name, text in (("offline", "drain: refuse new logins and pings (manager port)"),
                       ("online", "undo offline")):
        p = mycat.add_parser(name, help=text)
        common(p)
        p.add_argument("--host", default="127.0.0.1", help="MyCat host (default 127.0.0.1)")
        p.add_argument("--manager-port", type=int,
                       help="default: health_checks.mycat.manager_port, else 9066")
        p.add_argument("--user", help="manager user (default: health_checks.mycat.user)")
        p.add_argument("--password-file", type=Path,
                       help="file holding the password (never on the command line)")
        p.add_argument("--timeout", type=float, default=5.0)
        p.set_defaults(func=handler)


def add_agent_options(parser: argparse.ArgumentParser) -> None:
    """The agent's options for reloading MyCat through its manager port."""
    parser.add_argument("--mycat-manager", metavar="HOST:PORT",
                        help="reload MyCat through its manager port (reload @@config or "
                             "@@config_all, as the change needs) instead of --mycat-reload")
    parser.add_argument("--mycat-manager-user",
                        help="manager account (default: health_checks.mycat.user)")
    parser.add_argument("--mycat-manager-password-file", type=Path,
                        help="its password (default: taken from server.xml)")
    parser.add_argument("--mycat-reload-retries", type=int, default=5,
                        help="retries while reload @@config_all is refused (default 5)")
    parser.add_argument("--mycat-reload-backoff", type=float, default=0.5,
                        help="first wait between those retries, doubling (default 0.5 s)")
    parser.add_argument("--mycat-drain", type=float, metavar="SECONDS",
                        help="with --mycat-manager: on stop send `offline` (COM_PING then "
                             "fails, so the directors drop the node) and wait SECONDS before "
                             "exiting; send `online` when the agent starts")
    parser.add_argument("--mycat-health", action="store_true",
                        help="after a reload, log in as health_checks.mycat.user on its port "
                             "and run `select 1` (stackha check mycat); roll back on failure")
    parser.add_argument("--mycat-health-password-file", type=Path,
                        help="password for that login (default: taken from server.xml)")
    parser.add_argument("--mycat-backend-network", action="append", metavar="CIDR",
                        type=ipaddress.IPv4Network, default=None,
                        help="refuse versions whose schema.xml names a backend outside these "
                             "networks (and loopback), before MyCat is started or reloaded "
                             "on them; repeatable (default: no such check)")


def agent_settings(args: argparse.Namespace, spec: StackSpec
                   ) -> tuple[MycatManagerSettings | None, MycatHealthSettings | None]:
    check = spec.health_check("mycat")
    manager = None
    if args.mycat_manager:
        host, sep, port = args.mycat_manager.rpartition(":")
        if not sep or not port.isdigit():
            raise MycatCommandError(f"--mycat-manager {args.mycat_manager}: give HOST:PORT")
        user = args.mycat_manager_user or check.user
        if not user:
            raise MycatCommandError("--mycat-manager needs --mycat-manager-user (or "
                                    "health_checks.mycat.user in the spec)")
        manager = MycatManagerSettings(host=host, port=int(port), user=user,
                                       password_file=args.mycat_manager_password_file,
                                       retries=args.mycat_reload_retries,
                                       backoff=args.mycat_reload_backoff,
                                       drain_wait=args.mycat_drain)
    if args.mycat_drain is not None and manager is None:
        raise MycatCommandError("--mycat-drain needs --mycat-manager")
    health = None
    if args.mycat_health:
        # host, port, user and timeout come from each applied version's spec
        health = MycatHealthSettings(password_file=args.mycat_health_password_file)
    return manager, health
