"""Which backend addresses a MyCat schema.xml names, and whether they stay in allowed networks.

MyCat sends heartbeats to every writeHost and readHost ``url`` of every dataHost as soon as it
loads a schema. In the lab and the tests that must never leave the machine: a url naming a host
outside the lab network (or a name, which could resolve anywhere) is refused before MyCat is
started or reloaded on the file. Pure, apart from ``main`` (`python -m stackha.mycat.hosts`).
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from pathlib import Path

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
# MyCat's native driver takes HOST:PORT; the jdbc driver a JDBC url (jdbc:mysql://HOST:PORT/..).
_JDBC = re.compile(r"^[a-z0-9]+(?::[a-z0-9]+)*:(?://|@)?(?P<rest>.*)$", re.IGNORECASE)


def _host_of(url: str) -> str:
    url = url.strip()
    match = _JDBC.match(url)
    if match and "://" in url:
        url = url.split("://", 1)[1]
    elif match and url.lower().startswith("jdbc:oracle"):
        url = url.rsplit("@", 1)[-1]
    url = url.split("/", 1)[0].rsplit("@", 1)[-1]
    return url.rsplit(":", 1)[0].strip("[]") if ":" in url else url


def backend_urls(schema_xml: bytes) -> list[tuple[str, str]]:
    """(where, url) of every writeHost and readHost; a file that is not XML names none."""
    root = ET.fromstring(schema_xml)
    found = []
    for host in root.iter():
        tag = host.tag.rsplit("}", 1)[-1] if isinstance(host.tag, str) else ""
        if tag in ("writeHost", "readHost"):
            found.append((f"{tag}[host={host.attrib.get('host', '')}]",
                          host.attrib.get("url", "")))
    return found


def foreign_hosts(schema_xml: bytes, allowed: Iterable[ipaddress.IPv4Network]
                  ) -> list[str]:
    """One line per url whose host is not an IPv4 address inside ``allowed`` or loopback."""
    networks = [LOOPBACK, *allowed]
    try:
        urls = backend_urls(schema_xml)
    except ET.ParseError as exc:
        return [f"schema.xml: not XML ({exc}): its backends cannot be checked"]
    problems = []
    for where, url in urls:
        host = _host_of(url)
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            problems.append(f"schema.xml: {where} url={url!r}: {host!r} is not an IPv4 "
                            "address (a name could resolve anywhere)")
            continue
        if not any(address in network for network in networks):
            problems.append(f"schema.xml: {where} url={url!r}: {address} is outside "
                            f"{', '.join(str(n) for n in networks)}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stackha.mycat.hosts",
                                     description="refuse MyCat files naming foreign backends")
    parser.add_argument("--conf", type=Path, required=True, help="MyCat's conf directory")
    parser.add_argument("--allow", action="append", default=[], type=ipaddress.IPv4Network,
                        help="a network backends may be in (loopback always is)")
    args = parser.parse_args(argv)
    schema = args.conf / "schema.xml"
    try:
        data = schema.read_bytes()
    except OSError as exc:
        # MyCat would fall back to the demo schema bundled in its jar: not checked here.
        sys.stderr.write(f"mycat: {schema}: {exc.strerror}: not starting MyCat\n")
        return 1
    problems = foreign_hosts(data, args.allow)
    for line in problems:
        sys.stderr.write(f"mycat: not starting: {line}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
