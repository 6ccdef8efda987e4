"""mycat-standin's configuration: the parts of MyCat's ``server.xml`` and ``schema.xml`` it uses.

``parse_server_xml`` and ``parse_schema_xml`` read one file each, ``load_conf`` reads a conf
directory and refuses the dangling references MyCat would refuse at start (``check_config``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

NAME = "mycat-standin"


class ConfError(Exception):
    """The MyCat conf directory cannot be used by mycat-standin."""


@dataclass(frozen=True)
class StandinUser:
    name: str
    password: str
    schemas: tuple[str, ...]
    read_only: bool = False
    default_schema: str | None = None


@dataclass(frozen=True)
class WriteHost:
    data_host: str
    name: str
    host: str
    port: int
    user: str
    password: str


@dataclass(frozen=True)
class DataHost:
    name: str
    heartbeat_sql: str
    write_hosts: tuple[WriteHost, ...]
    max_con: int = 1000
    db_type: str = "mysql"


@dataclass(frozen=True)
class DataNode:
    name: str
    data_host: str
    database: str


@dataclass(frozen=True)
class LogicalSchema:
    name: str
    # In schema.xml order: the schema's own dataNode first, then each table's dataNodes.
    data_nodes: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    schema: str
    data_node: str
    write_host: WriteHost
    database: str


@dataclass(frozen=True)
class StandinConfig:
    users: Mapping[str, StandinUser]
    schemas: Mapping[str, LogicalSchema]
    data_nodes: Mapping[str, DataNode]
    data_hosts: Mapping[str, DataHost]
    system: Mapping[str, str] = field(default_factory=dict)

    def route(self, schema: str) -> Route:
        """Where the stand-in sends a session's statements: the schema's first dataNode."""
        logical = self.schemas.get(schema)
        if logical is None:
            raise ConfError(f"schema {schema!r} is not in schema.xml")
        if not logical.data_nodes:
            raise ConfError(f"schema {schema!r} has no dataNode")
        node = self.data_nodes[logical.data_nodes[0]]
        host = self.data_hosts[node.data_host]
        return Route(schema, node.name, host.write_hosts[0], node.database)


def expand_names(spec: str) -> list[str]:
    """Expand MyCat's name lists: ``dn$0-2`` is dn0, dn1, dn2; items are comma-separated."""
    names: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if "$" not in item:
            names.append(item)
            continue
        prefix, _, span = item.partition("$")
        start, dash, end = span.partition("-")
        if not (dash and start.isdigit() and end.isdigit()) or int(end) < int(start):
            raise ConfError(f"bad name range {item!r}")
        names.extend(f"{prefix}{i}" for i in range(int(start), int(end) + 1))
    return names


def _local(tag: str) -> str:
    # The roots are mycat:schema / mycat:server; match children by local name either way.
    return tag.rsplit("}", 1)[-1]


def _children(elem: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in elem if isinstance(child.tag, str) and _local(child.tag) == name]


def _properties(elem: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): (p.text or "").strip() for p in _children(elem, "property")}


def _root(data: bytes, expected: str, file_name: str) -> ET.Element:
    # ElementTree (expat) never fetches the external schema.dtd/server.dtd the DOCTYPE names.
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfError(f"{file_name}: {exc}") from exc
    if _local(root.tag) != expected:
        raise ConfError(f"{file_name}: root element is {root.tag!r}, expected mycat:{expected}")
    return root


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def parse_server_xml(data: bytes) -> tuple[dict[str, StandinUser], dict[str, str]]:
    """Users and ``<system>`` properties of a server.xml."""
    root = _root(data, "server", "server.xml")
    system: dict[str, str] = {}
    for elem in _children(root, "system"):
        system.update(_properties(elem))
    users: dict[str, StandinUser] = {}
    for elem in _children(root, "user"):
        name = elem.get("name", "").strip()
        if not name:
            raise ConfError("server.xml: <user> without a name")
        if name in users:
            raise ConfError(f"server.xml: user {name!r} is defined twice")
        props = _properties(elem)
        if props.get("usingDecrypt", "0").strip() == "1":
            raise ConfError(f"server.xml: user {name!r}: usingDecrypt is not supported by {NAME}")
        schemas = tuple(s.strip() for s in props.get("schemas", "").split(",") if s.strip())
        default = props.get("defaultSchema", "").strip() or None
        users[name] = StandinUser(
            name=name,
            password=props.get("password", ""),
            schemas=schemas,
            read_only=_is_true(props.get("readOnly")),
            default_schema=default,
        )
    return users, system


def _write_host(data_host: str, elem: ET.Element) -> WriteHost:
    name = elem.get("host", "").strip()
    url = elem.get("url", "").strip()
    if elem.get("usingDecrypt", "0").strip() == "1":
        raise ConfError(f"schema.xml: writeHost {name!r}: usingDecrypt is not supported")
    # dbDriver="native" gives HOST:PORT; dbDriver="jdbc" gives jdbc:mysql://HOST:PORT/...
    address = re.sub(r"^jdbc:mysql://", "", url).split("/", 1)[0].split("?", 1)[0]
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "3306"
    if not host or not port.isdigit():
        raise ConfError(f"schema.xml: writeHost {name!r}: bad url {url!r}")
    return WriteHost(data_host, name, host, int(port), elem.get("user", ""),
                     elem.get("password", ""))


def parse_schema_xml(
    data: bytes,
) -> tuple[dict[str, LogicalSchema], dict[str, DataNode], dict[str, DataHost]]:
    """Logical schemas, dataNodes and dataHosts of a schema.xml."""
    root = _root(data, "schema", "schema.xml")
    hosts: dict[str, DataHost] = {}
    for elem in _children(root, "dataHost"):
        name = elem.get("name", "").strip()
        beats = _children(elem, "heartbeat")
        sql = (beats[0].text or "").strip() if beats else ""
        writes = tuple(_write_host(name, w) for w in _children(elem, "writeHost"))
        if not writes:
            raise ConfError(f"schema.xml: dataHost {name!r} has no writeHost")
        max_con = elem.get("maxCon", "1000").strip()
        hosts[name] = DataHost(
            name=name,
            heartbeat_sql=sql or "select user()",
            write_hosts=writes,
            max_con=int(max_con) if max_con.isdigit() else 1000,
            db_type=elem.get("dbType", "mysql"),
        )
    nodes: dict[str, DataNode] = {}
    for elem in _children(root, "dataNode"):
        names = expand_names(elem.get("name", ""))
        # As in MyCat, a ranged dataNode takes every (dataHost, database) pair in order.
        pairs = [(h, d) for h in expand_names(elem.get("dataHost", ""))
                 for d in expand_names(elem.get("database", ""))]
        if len(pairs) != len(names):
            raise ConfError(f"schema.xml: dataNode {elem.get('name')!r}: {len(names)} names "
                            f"for {len(pairs)} dataHost/database pairs")
        for node_name, (host, database) in zip(names, pairs, strict=True):
            nodes[node_name] = DataNode(node_name, host, database)
    schemas: dict[str, LogicalSchema] = {}
    for elem in _children(root, "schema"):
        name = elem.get("name", "").strip()
        order: list[str] = expand_names(elem.get("dataNode", ""))
        for table in elem.iter():
            if isinstance(table.tag, str) and _local(table.tag) == "table":
                order.extend(expand_names(table.get("dataNode", "")))
        schemas[name] = LogicalSchema(name, tuple(dict.fromkeys(order)))
    return schemas, nodes, hosts


def check_config(config: StandinConfig) -> None:
    """Refuse references MyCat would refuse at start: unknown dataHosts, dataNodes, schemas."""
    for node in config.data_nodes.values():
        if node.data_host not in config.data_hosts:
            raise ConfError(f"dataNode {node.name!r} names unknown dataHost {node.data_host!r}")
    for schema in config.schemas.values():
        for node_name in schema.data_nodes:
            if node_name not in config.data_nodes:
                raise ConfError(f"schema {schema.name!r} names unknown dataNode {node_name!r}")
    for user in config.users.values():
        for schema_name in user.schemas:
            if schema_name not in config.schemas:
                raise ConfError(f"user {user.name!r} names unknown schema {schema_name!r}")
        if user.default_schema and user.default_schema not in user.schemas:
            raise ConfError(f"user {user.name!r}: defaultSchema is not one of its schemas")


def load_conf(conf_dir: Path) -> StandinConfig:
    """Read and check ``server.xml`` and ``schema.xml`` of a MyCat conf directory."""
    try:
        server = (conf_dir / "server.xml").read_bytes()
        schema = (conf_dir / "schema.xml").read_bytes()
    except OSError as exc:
        raise ConfError(str(exc)) from exc
    users, system = parse_server_xml(server)
    schemas, nodes, hosts = parse_schema_xml(schema)
    config = StandinConfig(users, schemas, nodes, hosts, system)
    check_config(config)
    return config
