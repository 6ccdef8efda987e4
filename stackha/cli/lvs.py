"""``stackha realserver start|stop|status`` and ``stackha lvs status``.

``register(subparsers)`` adds both to the main parser; each handler returns an exit code and
writes failures as one line on stderr.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
from pathlib import Path
from typing import Any

from stackha.cli.output import EXIT_FAIL, EXIT_INVALID, EXIT_OK, emit, say_error, write
from stackha.lvs.node import DIRECTOR_STATE, REALSERVER_STATE

DEFAULT_STATE_DIR = Path("/var/lib/stackha")


def _fail(message: str, code: int = EXIT_FAIL) -> int:
    say_error(message)
    return code


def _vip(text: str) -> str:
    try:
        return str(ipaddress.IPv4Address(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not an IPv4 address") from exc


def cmd_realserver(args: argparse.Namespace) -> int:
    from stackha.lvs.loaddr import NetlinkLoopback, route_interface
    from stackha.lvs.realserver import PRESENT, Realserver, RealserverError, healthy

    realserver = Realserver(args.state_dir / REALSERVER_STATE, NetlinkLoopback())
    try:
        known = realserver.vips()
        interface = args.interface or known.get(args.vip)
        if interface is None and args.action != "stop":
            interface = route_interface(args.vip)
            if interface in (None, "lo"):
                return _fail(f"--interface: cannot tell which interface faces {args.vip}; "
                             "give --interface", EXIT_INVALID)
        if args.action == "start":
            assert interface is not None
            changes = realserver.start(args.vip, interface)
            emit(f"realserver {args.vip} on {interface}: "
                 f"{'; '.join(changes) if changes else 'already set up'}")
            return EXIT_OK
        if args.action == "stop":
            changes = realserver.stop(args.vip)
            emit(f"realserver {args.vip}: "
                 f"{'; '.join(changes) if changes else 'nothing to undo'}")
            return EXIT_OK
        assert interface is not None
        pieces = realserver.status(args.vip, interface)
    except (RealserverError, OSError) as exc:
        return _fail(str(exc))
    for piece in pieces:
        mark = "ok " if piece.state == PRESENT else "!! "
        emit(f"{mark}{piece.what:<36} {piece.state:<9} {piece.detail}".rstrip())
    return EXIT_OK if healthy(pieces) else EXIT_FAIL


def cmd_lvs_status(args: argparse.Namespace) -> int:
    from stackha.lvs.engine import IPVS_PROC
    from stackha.lvs.nft import NftError, nft_list_table
    from stackha.lvs.status import (
        as_json,
        nft_view,
        parse_live_table,
        parse_proc_ip_vs,
        render_table,
    )

    views = []
    if IPVS_PROC.exists():
        views += parse_proc_ip_vs(IPVS_PROC.read_text())
    state_path = args.state_dir / DIRECTOR_STATE
    try:
        state = json.loads(state_path.read_text()) if state_path.exists() else None
    except (OSError, ValueError) as exc:
        return _fail(f"{state_path}: unreadable: {exc}")
    try:
        live = parse_live_table(nft_list_table())
    except NftError as exc:
        return _fail(str(exc))
    views += nft_view(live, state)
    if args.json:
        emit(json.dumps(as_json(views), indent=1))
    else:
        write(render_table(views))
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("realserver", help="LVS-DR realserver: the VIP on lo, ARP quiet")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--vip", required=True, type=_vip, help="the virtual service address")
    p.add_argument("--interface", help="interface facing the directors (default: the route "
                                       "to the VIP)")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                   help="where the sysctl values found before start are kept")
    p.set_defaults(func=cmd_realserver)

    lvs = subparsers.add_parser("lvs", help="LVS-DR director").add_subparsers(
        dest="lvs_command", required=True)
    p = lvs.add_parser("status", help="virtual services and realservers, like ipvsadm -L -n")
    p.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_lvs_status)
