"""``stackha agent``: the node agent, a long-running service."""

from __future__ import annotations

import argparse
import fcntl
import logging
import os
import shlex
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

from stackha.agent.core import Agent, AgentSettings, RoleSettings, TrustSettings
from stackha.agent.vrrp import VrrpSettings
from stackha.cli.agentconfig import (
    DEFAULT_AGENT_CONFIG,
    AgentOptions,
    detach_defaults,
    read_agent_options,
)
from stackha.cli.mycat import add_agent_options as add_mycat_agent_options
from stackha.cli.mycat import agent_settings as mycat_agent_settings
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_INVALID, EXIT_OK, CommandError, emit, report
from stackha.keepalived.process import stop_keepalived
from stackha.keepalived.render import SCRIPT_USER
from stackha.lvs.node import LvsSettings
from stackha.model.grammar import name_reason
from stackha.model.problems import Problem
from stackha.model.spec import StackSpec
from stackha.trust.signing import KeyFileError, load_trusted

log = logging.getLogger(__name__)

DEFAULT_STATE_DIR = Path("/var/lib/stackha")


def _role_settings(args: argparse.Namespace, spec: StackSpec) -> dict[str, RoleSettings]:
    roles: dict[str, RoleSettings] = {}
    if args.nginx_dir:
        roles["nginx"] = RoleSettings(
            target=args.nginx_dir,
            reload=tuple(shlex.split(args.nginx_reload)) if args.nginx_reload else None,
            health=True, health_url=args.nginx_health_url)
    if args.mycat_dir:
        manager, health = mycat_agent_settings(args, spec)
        roles["mycat"] = RoleSettings(
            target=args.mycat_dir,
            reload=tuple(shlex.split(args.mycat_reload)) if args.mycat_reload else None,
            health=health is not None, mycat_manager=manager, mycat_health=health,
            mycat_backend_networks=tuple(args.mycat_backend_network)
            if args.mycat_backend_network else None)
    return roles


def stackha_command() -> str:
    found = shutil.which("stackha")
    return str(Path(found).resolve()) if found else str(Path(sys.argv[0]).resolve())


def vrrp_settings(args: argparse.Namespace, conf_dir: Path) -> VrrpSettings:
    """The node's keepalived settings from the options ``agent`` and ``render keepalived``
    share, so both render the very same file."""
    return VrrpSettings(conf_dir=conf_dir, run_dir=args.run_dir or args.state_dir / "run",
                        stackha_command=args.stackha_command or stackha_command(),
                        script_user=args.script_user, interface=args.vrrp_interface,
                        ipvs=args.lvs_engine == "ipvs", curl=_curl())


def _curl() -> str | None:
    """keepalived refuses scripts on paths a non-root user could write: only a system curl."""
    for path in ("/usr/bin/curl", "/bin/curl"):
        if os.access(path, os.X_OK):
            return path
    return None


def add_vrrp_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="last-known-good copy and bookkeeping (default /var/lib/stackha)")
    p.add_argument("--run-dir", type=Path, help="keepalived pid files, FIFO and log")
    p.add_argument("--script-user", default=SCRIPT_USER,
                   help="user keepalived runs the health checks as")
    p.add_argument("--stackha-command", help="absolute path of stackha for the health checks")
    p.add_argument("--vrrp-interface", help="interface for VRRP, overriding the spec")
    p.add_argument("--lvs-engine", choices=("nftables", "ipvs"), default="nftables",
                   help="ipvs adds keepalived virtual_server blocks on directors")


def _lvs_settings(args: argparse.Namespace) -> LvsSettings | None:
    if not args.lvs:
        return None
    return LvsSettings(state_dir=args.state_dir, interface=args.lvs_interface,
                       mycat_password_file=args.mycat_password_file)


def trust_settings(args: argparse.Namespace, spec: StackSpec) -> TrustSettings | None:
    """The pinned keys, read from this node's disk. No key is a refusal to start, not a node
    that applies whatever ZooKeeper holds; ``--allow-unsigned`` says so explicitly."""
    paths = args.trusted_key or []
    if args.allow_unsigned:
        if paths:
            raise CommandError("--allow-unsigned and --trusted-key exclude each other: an "
                               "agent that accepts unsigned versions checks nothing",
                               EXIT_INVALID)
        return None
    if not paths:
        raise CommandError("no trusted key: give --trusted-key PATH (the coordinator's public "
                           "key from `stackha keygen`, or a directory of *.pub files), or "
                           "--allow-unsigned for development", EXIT_INVALID)
    try:
        keys = load_trusted(paths)
    except KeyFileError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from exc
    return TrustSettings(cluster=spec.cluster, keys=keys)


def _agent_settings(args: argparse.Namespace, spec: StackSpec,
                    trust: TrustSettings | None = None) -> AgentSettings:
    vrrp = vrrp_settings(args, args.keepalived_dir) if args.keepalived_dir else None
    return AgentSettings(node=args.node, state_dir=args.state_dir,
                         roles=_role_settings(args, spec), heartbeat=args.heartbeat,
                         health_wait=args.health_wait, rollout_wait=args.rollout_wait,
                         vrrp=vrrp, lvs=_lvs_settings(args),
                         reload_timeout=args.reload_timeout,
                         rollback_reload_timeout=args.rollback_reload_timeout,
                         health_timeout=args.health_timeout,
                         leave_services=args.on_stop == "leave", trust=trust)


def checked_options(parser: argparse.ArgumentParser, defaults: dict[str, Any],
                    given: argparse.Namespace) -> tuple[argparse.Namespace, AgentOptions]:
    """The file and the flags merged, or a CommandError (exit 2) after one line per problem."""
    options = read_agent_options(parser, defaults, given)
    report(options.problems)
    if any(p.is_error for p in options.problems):
        raise CommandError(f"{len(options.problems)} problem(s) in the agent configuration",
                           EXIT_INVALID)
    args = options.namespace()
    if not args.node:
        raise CommandError("node: required (node: in agent.yaml, or --node)", EXIT_INVALID)
    return args, options


def agent_args(argv: list[str]) -> argparse.Namespace:
    """``stackha agent ARGV`` parsed and merged with its configuration file, as the agent
    would run it (for ``render`` and tests: the parser alone holds only what was given)."""
    parser = argparse.ArgumentParser(prog="stackha")
    register(parser.add_subparsers(dest="command", required=True))
    given = parser.parse_args(["agent", *argv])
    return given.merge_options(given)


def check_config(args: argparse.Namespace, options: AgentOptions) -> int:
    """Everything ``stackha agent`` would check before starting, and nothing started."""
    spec = read_spec(args.configs)
    try:
        _agent_settings(args, spec, trust_settings(args, spec))
    except CommandError as exc:
        raise CommandError(str(exc), EXIT_INVALID) from exc
    if spec.node(args.node) is None:
        report([Problem(str(args.configs / "stackha.yaml"), "nodes",
                        f"node {args.node} is not in this spec (the agent refuses "
                        "versions whose spec lacks it)", "warning")])
    emit(f"agent configuration ok: node {args.node}; from the file: "
         f"{', '.join(k.replace('_', '-') for k in options.from_file) or 'nothing'}; "
         f"from flags: {', '.join(k.replace('_', '-') for k in options.from_flags) or 'nothing'}")
    return EXIT_OK


LOCK_FILE = "agent.lock"


def hold_agent_lock(state_dir: Path) -> int:
    """One agent per state directory, held for the life of the process (the kernel lets go
    when it ends, however it ends). Two agents would fight over the files and keepalived, and
    ``--stop-services`` next to a running agent would see keepalived restarted at once."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise CommandError(f"an agent (pid {holder}) runs on {state_dir}: stop it first",
                           EXIT_INVALID) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def stop_services(args: argparse.Namespace) -> int:
    """Stop the keepalived an agent left running (a plain agent stop leaves it): SIGTERM, so a
    master advertises priority 0 and its backup takes over at once."""
    if not args.keepalived_dir:
        emit("no keepalived-dir: no keepalived to stop")
        return EXIT_OK
    hold_agent_lock(args.state_dir)  # a running agent would start it again at once
    vrrp = vrrp_settings(args, args.keepalived_dir)
    pid = stop_keepalived(vrrp.run_dir, vrrp.conf_dir / "keepalived.conf")
    emit(f"keepalived (pid {pid}) stopped" if pid else "keepalived was not running")
    return EXIT_OK


def keep_cryptography_out() -> None:
    """Mark the cryptography package absent in this (the agent's) process.

    pymysql imports it where it is installed, for the RSA key exchange of MySQL 8's
    sha256_password and caching_sha2_password logins. The agent's logins (MyCat 1.6's
    manager and server ports, whose one method is mysql_native_password) need none of it,
    and it costs 8.4 MiB resident of the agent's 30 (VmRSS of `import pymysql` with and
    without it, 2026-12-02). A None entry makes the import raise ImportError, which pymysql
    expects; a host that has cryptography for other work then pays nothing for it here."""
    sys.modules.setdefault("cryptography", None)  # type: ignore[arg-type]


def cmd_agent(args: argparse.Namespace, parser: argparse.ArgumentParser,
              defaults: dict[str, Any]) -> int:
    args, options = checked_options(parser, defaults, args)
    # The name becomes status/<node>, file names in the state dir and keepalived's router_id.
    if (reason := name_reason(args.node)) is not None:
        raise CommandError(f"--node {args.node!r}: {reason}", EXIT_INVALID)
    if args.check_config:
        return check_config(args, options)
    if args.stop_services:
        return stop_services(args)
    spec = read_spec(args.configs)
    trust = trust_settings(args, spec)
    settings = _agent_settings(args, spec, trust)
    hold_agent_lock(args.state_dir)
    keep_cryptography_out()  # this process is the agent from here on
    from stackha.store.connect import build_store

    if trust is None:
        log.warning("event=unsigned_versions_allowed node=%s", args.node)
    else:
        log.info("event=trusted_keys keys=%s cluster=%s", ",".join(trust.keys.ids),
                 trust.cluster)

    store = build_store(spec, args.zk, "agent", retry_forever=True,
                        credential_file=args.credential_file)
    if store.identity is not None and store.identity.user != args.node:
        # One identity per node: a node reports, and reads role files, only as itself.
        raise CommandError(f"agent credential is for {store.identity.user!r}, not for node "
                           f"{args.node!r} (stackha credentials issue {args.node})")
    agent = Agent(settings, store)
    if args.metrics_port:
        from stackha.agent import endpoints

        try:
            endpoints.serve(args.metrics_address, args.metrics_port, agent.node_view)
        except OSError as exc:
            raise CommandError(f"metrics-port: cannot listen on {args.metrics_address}:"
                               f"{args.metrics_port}: {exc.strerror}") from exc
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    agent.run()
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="the node agent (long-running)")
    p.add_argument("--config", type=Path,
                   help=f"agent configuration file (default {DEFAULT_AGENT_CONFIG}, if "
                        "present): the options below as `name: value`; flags override it")
    p.add_argument("--check-config", action="store_true",
                   help="check the configuration file and the flags, start nothing (exit 0 or 2)")
    p.add_argument("--stop-services", action="store_true",
                   help="stop the keepalived a stopped agent left running, then exit")
    add_common(p)
    p.add_argument("--node", help="this node's name in the spec (required)")
    p.add_argument("--credential-file", type=Path,
                   help="this node's own ZooKeeper credential (instead of the spec's "
                        "zookeeper.agent_auth); see `stackha credentials issue`")
    p.add_argument("--nginx-dir", type=Path, help="nginx prefix the nginx files go to")
    p.add_argument("--nginx-reload", help="command that reloads nginx, e.g. 'nginx -s reload'")
    p.add_argument("--nginx-health-url",
                   help="URL the nginx health check asks (default: the applied version's "
                        "health_checks.nginx.url)")
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
    p.add_argument("--reload-timeout", type=float, default=20.0,
                   help="seconds a reload command may take before it counts as failed")
    p.add_argument("--rollback-reload-timeout", type=float, default=5.0,
                   help="limit for the rollback's reload after a reload timed out")
    p.add_argument("--health-timeout", type=float, default=2.0,
                   help="seconds one health probe may take")
    p.add_argument("--keepalived-dir", type=Path,
                   help="run VRRP: keepalived.conf is written here and keepalived supervised")
    add_vrrp_options(p)
    p.add_argument("--lvs", action="store_true",
                   help="LVS-DR: realserver setup on realservers, forwarding on directors")
    p.add_argument("--lvs-interface", help="interface facing the LVS peers, overriding the spec")
    p.add_argument("--mycat-password-file", type=Path,
                   help="password for the director's `check: mycat` login")
    p.add_argument("--trusted-key", type=Path, action="append", metavar="PATH",
                   help="public key (PEM, from `stackha keygen`) whose signatures this node "
                        "accepts, or a directory of *.pub; repeat it while keys rotate")
    p.add_argument("--allow-unsigned", action="store_true",
                   help="development only: apply versions without checking signatures")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="port of the agent's HTTP endpoints: /metrics, /health, /vrrp/GROUP, "
                        "/status (0: off)")
    p.add_argument("--metrics-address", default="127.0.0.1",
                   help="address they listen on (default 127.0.0.1)")
    p.add_argument("--on-stop", choices=("leave", "stop-services"), default="leave",
                   help="on SIGTERM: leave keepalived running for the next agent to adopt "
                        "(default), or stop it (a container whose agent is its last process)")
    # Every option above may also come from the file: it must see which ones the command line
    # gave, so the parser keeps no defaults and the merge supplies them (agentconfig.merge).
    defaults = detach_defaults(p)
    p.set_defaults(func=lambda args: cmd_agent(args, p, defaults),
                   merge_options=lambda args: checked_options(p, defaults, args)[0])
