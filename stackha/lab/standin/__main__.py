"""``python -m stackha.lab.standin --conf DIR``: run mycat-standin in the foreground.

Ports and bind address default to server.xml's ``serverPort``, ``managerPort`` and ``bindIp``
(as MyCat reads them), then to 8066, 9066 and 0.0.0.0. SIGTERM or SIGINT stops it cleanly.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from stackha.lab.standin.config import NAME, ConfError, load_conf
from stackha.lab.standin.server import DEFAULT_MANAGER_PORT, DEFAULT_SQL_PORT, run
from stackha.logs import setup_logging

logger = logging.getLogger("stackha.lab.standin")


def _port(value: str | None, default: int) -> int:
    return int(value) if value and value.strip().isdigit() else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stackha.lab.standin",
        description=f"{NAME}: a MySQL-protocol stand-in for MyCat 1.6 (no sharding).")
    parser.add_argument("--conf", required=True, type=Path,
                        help="MyCat conf directory with server.xml and schema.xml")
    parser.add_argument("--host", help="address to listen on (default: bindIp or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="SQL port (default: serverPort or 8066)")
    parser.add_argument("--manager-port", type=int,
                        help="manager port (default: managerPort or 9066)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every statement")
    args = parser.parse_args(argv)

    setup_logging(args.verbose)
    # mysql-mimic narrates each connection at INFO in its own format; our events cover it.
    logging.getLogger("mysql_mimic").setLevel(logging.WARNING)
    try:
        system = load_conf(args.conf).system
    except ConfError as exc:
        logger.error("event=conf_error name=%s conf=%s error=%r", NAME, args.conf, str(exc))
        return 2
    host = args.host or system.get("bindIp", "").strip() or "0.0.0.0"
    port = args.port if args.port is not None else _port(system.get("serverPort"),
                                                         DEFAULT_SQL_PORT)
    manager_port = (args.manager_port if args.manager_port is not None
                    else _port(system.get("managerPort"), DEFAULT_MANAGER_PORT))
    return run(args.conf, host, port, manager_port)


if __name__ == "__main__":
    sys.exit(main())
