"""``stackha agent``: the node agent, a long-running service."""

from __future__ import annotations

import argparse
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
from stackha.cli.mycat import add_agent_options as add_mycat_agent_options
from stackha.cli.mycat import agent_settings as mycat_agent_settings
from stackha.cli.options import add_common, read_spec
from stackha.cli.output import EXIT_INVALID, EXIT_OK, CommandError
from stackha.keepalived.render import SCRIPT_USER
from stackha.lvs.node import LvsSettings
from stackha.model.grammar import name_reason
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


def cmd_agent(args: argparse.Namespace) -> int:
    # The name becomes status/<node>, file names in the state dir and keepalived's router_id.
    if (reason := name_reason(args.node)) is not None:
        raise CommandError(f"--node {args.node!r}: {reason}")
    spec = read_spec(args.configs)
    trust = trust_settings(args, spec)
    vrrp = vrrp_settings(args, args.keepalived_dir) if args.keepalived_dir else None
    settings = AgentSettings(node=args.node, state_dir=args.state_dir,
                             roles=_role_settings(args, spec), heartbeat=args.heartbeat,
                             health_wait=args.health_wait, rollout_wait=args.rollout_wait,
                             vrrp=vrrp, lvs=_lvs_settings(args),
                             reload_timeout=args.reload_timeout,
                             rollback_reload_timeout=args.rollback_reload_timeout,
                             health_timeout=args.health_timeout, trust=trust)
    from stackha.store.connect import build_store

    if trust is None:
        log.warning("event=unsigned_versions_allowed node=%s", args.node)
    else:
        log.info("event=trusted_keys keys=%s cluster=%s", ",".join(trust.keys.ids),
                 trust.cluster)

    if args.metrics_port:  # first: the metrics are no-ops until served
        from stackha.agent import metrics

        metrics.serve(args.metrics_port, args.metrics_address)
    store = build_store(spec, args.zk, "agent", retry_forever=True,
                        credential_file=args.credential_file)
    if store.identity is not None and store.identity.user != args.node:
        # One identity per node: a node reports, and reads role files, only as itself.
        raise CommandError(f"agent credential is for {store.identity.user!r}, not for node "
                           f"{args.node!r} (stackha credentials issue {args.node})")
    agent = Agent(settings, store)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    agent.run()
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("agent", help="the node agent (long-running)")
    add_common(p)
    p.add_argument("--node", required=True, help="this node's name in the spec")
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
    p.add_argument("--metrics-port", type=int, default=0, help="Prometheus port (0: off)")
    p.add_argument("--metrics-address", default="127.0.0.1")
    p.set_defaults(func=cmd_agent)
