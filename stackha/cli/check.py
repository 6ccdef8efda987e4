"""`stackha check nginx|mycat`: the health checks keepalived runs.

Kept apart from the main CLI so it imports almost nothing: keepalived runs it every second
and a healthy answer must come back well under 100 ms. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stackha.checks.probes import check_http, check_mysql, check_tcp


def _read_password(path: Path | None) -> str:
    if path is None:
        return ""
    return path.read_text().strip()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stackha check")
    sub = parser.add_subparsers(dest="what", required=True)
    nginx = sub.add_parser("nginx", help="HTTP GET; healthy is 2xx/3xx within the timeout")
    nginx.add_argument("--url", default="http://127.0.0.1/healthz")
    nginx.add_argument("--timeout", type=float, default=1.0)
    mycat = sub.add_parser("mycat", help="MySQL-protocol login and `select 1`")
    mycat.add_argument("--host", default="127.0.0.1")
    mycat.add_argument("--port", type=int, default=8066)
    mycat.add_argument("--user", help="without a user only the TCP port is probed")
    mycat.add_argument("--password-file", type=Path,
                       help="file holding the password (never on the command line)")
    mycat.add_argument("--manager-port", type=int, help="also require the manager port")
    mycat.add_argument("--timeout", type=float, default=1.0)
    args = parser.parse_args(argv)
    if args.what == "nginx":
        reason = check_http(args.url, args.timeout)
    elif args.user:
        try:
            password = _read_password(args.password_file)
        except OSError as exc:
            reason = f"cannot read {args.password_file}: {exc.strerror}"
        else:
            reason = check_mysql(args.host, args.port, args.user, password, args.timeout)
    else:
        reason = check_tcp(args.host, args.port, args.timeout)
    if reason is None and args.what == "mycat" and args.manager_port:
        reason = check_tcp(args.host, args.manager_port, args.timeout)
    if reason:
        sys.stderr.write(f"unhealthy: {reason}\n")
        return 1
    return 0
