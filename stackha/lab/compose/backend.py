"""Pure: the MySQL backend the lab must run, read from the MyCat files' ``schema.xml``."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from stackha.lab.standin.config import ConfError, parse_schema_xml


class LabError(Exception):
    """The spec or the configs describe something the compose lab cannot run."""


@dataclass(frozen=True)
class Backend:
    """One MariaDB holding every database of every dataNode."""

    address: ipaddress.IPv4Address
    port: int
    user: str
    password: str
    databases: tuple[str, ...]


def backend_from_schema(schema_xml: bytes) -> Backend:
    try:
        _, nodes, hosts = parse_schema_xml(schema_xml)
    except ConfError as exc:
        raise LabError(f"mycat/schema.xml: {exc}") from exc
    writes = [w for h in hosts.values() for w in h.write_hosts]
    if not writes:
        raise LabError("mycat/schema.xml: no writeHost: the lab needs a MySQL backend")
    endpoints = {(w.host, w.port, w.user, w.password) for w in writes}
    if len(endpoints) != 1:
        raise LabError("mycat/schema.xml: the lab runs one MySQL backend, but the writeHosts "
                       f"name {len(endpoints)} different hosts or accounts")
    first = writes[0]
    try:
        address = ipaddress.IPv4Address(first.host)
    except ValueError as exc:
        raise LabError(f"mycat/schema.xml: writeHost {first.name}: the lab needs an IPv4 "
                       f"address, got {first.host!r}") from exc
    databases = tuple(dict.fromkeys(n.database for n in nodes.values()))
    return Backend(address, first.port, first.user, first.password, databases)
