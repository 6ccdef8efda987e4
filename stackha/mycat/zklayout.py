"""Pure: MyCat 1.6's own ZooKeeper layout, built from validated schema/server/rule XML.

A MyCat started with ``loadZk=true`` reads its configuration from ``/mycat/<clusterId>/``
instead of its conf directory. MyCat keeps it there as JSON made by Gson from its JAXB
entity classes (``io.mycat.config.loader.zkprocess.entity``), so the JSON mirrors the XML:
attribute and element names become keys, integer attributes become numbers, boolean ones
``true``/``false``, and repeated elements become arrays. Keys follow the Java field order,
absent attributes are left out (Gson drops nulls), and values are not expanded: MyCat turns
the JSON back into XML and reads that, so ``dn$0-2`` stays ``dn$0-2``.

What MyCat's entities have no field for cannot travel this way; each such setting is
reported as a warning naming the file, element and setting, instead of being dropped
silently.

Nothing here touches ZooKeeper: ``build_layout`` returns the znodes to write, relative to
the cluster's base path, in the order they must be written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stackha.model.grammar import name_reason
from stackha.model.problems import WARNING, Problem

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

SCHEMA_XML, SERVER_XML, RULE_XML = "schema.xml", "server.xml", "rule.xml"
# MyCat reloads on every write to one of the schema znodes, so a dataNode must exist before
# a schema names it and a dataHost before a dataNode names it.
DATA_HOST, DATA_NODE, SCHEMA = "schema/dataHost", "schema/dataNode", "schema/schema"
SERVER_DEFAULT, SERVER_USER = "server/default", "server/user"
TABLE_RULE, FUNCTION = "rules/tableRule", "rules/function"
SEQUENCES_COMMON, SEQUENCES_CLUSTER = "sequences/common", "sequences/cluster"
CACHE = "cache"
CACHE_SERVICE, EHCACHE = f"{CACHE}/cacheservice.properties", f"{CACHE}/ehcache.xml"
CLUSTER_NODE = ""  # the base node itself
# MyCat 1.6.7 uploads its local files over the layout unless this marker exists.
CONF_INITIALIZED = "confInitialized"
# The sequence property files MyCat's uploader knows; "NAME-<myid>.properties" is per node.
SEQUENCE_FILES = ("sequence_conf", "sequence_db_conf", "sequence_distributed_conf",
                  "sequence_time_conf")
# Below the base path MyCat itself creates and deletes these at run time.
# MyCat 1.6.6.1 reads all four from sequences/common on every load and logs a
# NullPointerException or IndexOutOfBoundsException for each one missing, so the layout always
# has them: the published file when there is one, otherwise these (what each means when empty:
# no sequence of that kind; the distributed and time ones need their ids).
DEFAULT_SEQUENCES = {
    "sequence_conf": b"# No global sequences in local-file mode (none published).\n",
    "sequence_db_conf": b"# No sequences stored in a dataNode (none published).\n",
    "sequence_distributed_conf": b"INSTANCEID=01\nCLUSTERID=01\n",
    "sequence_time_conf": b"WORKID=01\nDATAACENTERID=01\n",
}
# MyCat's cache node: cacheservice.properties as text, ehcache.xml as Gson JSON, the shape
# MyCat's own uploader (XmltoZkMain) writes. Without it every load logs an exception.
DEFAULT_CACHE_SERVICE = (
    b"# SQL route and ER caches of MyCat (written by stackha: the layout needs a cache node)\n"
    b"factory.encache=io.mycat.cache.impl.EnchachePooFactory\n"
    b"pool.SQLRouteCache=encache,10000,1800\n"
    b"pool.ER_SQL2PARENTID=encache,1000,1800\n"
    b"layedpool.TableID2DataNodeCache=encache,10000,18000\n")
DEFAULT_EHCACHE = {
    "maxEntriesLocalHeap": 100000000, "maxBytesLocalDisk": "50G", "updateCheck": False,
    "defaultCache": {"maxElementsInMemory": 1000000, "eternal": False,
                     "overflowToDisk": False, "diskSpoolBufferSizeMB": 30,
                     "maxElementsOnDisk": 10000000, "diskPersistent": False,
                     "diskExpiryThreadIntervalSeconds": 120,
                     "memoryStoreEvictionPolicy": "LRU"},
}
RUNTIME_DIRS = ("line", "command", "bindata", "ruledata", "lock", "sequences/instance",
                "sequences/leader", "sequences/incr_sequence")
RELOAD_COMMAND = b"zk reload_from_zk"

_INT, _BOOL, _STR = "int", "bool", "str"
# Java field order of MyCat's entity classes, with the JSON type of each attribute.
_SCHEMA_ATTRS = (("name", _STR), ("checkSQLschema", _BOOL), ("sqlMaxLimit", _INT),
                 ("dataNode", _STR))
_TABLE_ATTRS = (("name", _STR), ("nameSuffix", _STR), ("dataNode", _STR), ("rule", _STR),
                ("ruleRequired", _BOOL), ("primaryKey", _STR), ("autoIncrement", _BOOL),
                ("needAddLimit", _BOOL), ("type", _STR), ("subTables", _STR))
_CHILD_TABLE_ATTRS = (("name", _STR), ("joinKey", _STR), ("parentKey", _STR),
                      ("primaryKey", _STR), ("autoIncrement", _BOOL))
_DATA_NODE_ATTRS = (("name", _STR), ("dataHost", _STR), ("database", _STR))
_DATA_HOST_ATTRS = (("balance", _INT), ("maxCon", _INT), ("minCon", _INT), ("name", _STR),
                    ("writeType", _INT), ("switchType", _INT), ("slaveThreshold", _INT),
                    ("dbType", _STR), ("dbDriver", _STR))
_WRITE_HOST_ATTRS = (("host", _STR), ("url", _STR), ("password", _STR), ("user", _STR),
                     ("usingDecrypt", _BOOL))
# Gson writes a subclass's own fields first: ReadHost adds weight to WriteHost's.
_READ_HOST_ATTRS = (("weight", _STR), *_WRITE_HOST_ATTRS)


@dataclass(frozen=True)
class Znode:
    """One znode of the layout: ``path`` relative to ``/mycat/<clusterId>`` ("" is the base)."""

    path: str
    data: bytes


@dataclass(frozen=True)
class Layout:
    znodes: tuple[Znode, ...]

    def paths(self) -> tuple[str, ...]:
        return tuple(z.path for z in self.znodes)

    @property
    def size(self) -> int:
        return sum(len(z.data) for z in self.znodes)


def to_json(value: Any) -> bytes:
    """Compact JSON as Gson writes it (no spaces), UTF-8."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def cluster_node(nodes: tuple[str, ...]) -> dict[str, Any]:
    return {"clusterNodes": ",".join(nodes), "clusterSize": len(nodes)}


# ----------------------------------------------------------------------------------------------
# XML -> Gson-shaped JSON


class _Notes:
    """Collects the warnings about settings the ZooKeeper format cannot carry."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.problems: list[Problem] = []

    def lost(self, file: str, element: str, reason: str) -> None:
        self.problems.append(Problem(f"{self.prefix}{file}", element,
                                     f"{reason}: MyCat's ZooKeeper format has no place for it, "
                                     "so MyCat nodes with loadZk=true will not see it",
                                     WARNING))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, tag: str) -> list[ET.Element]:
    return [c for c in element if isinstance(c.tag, str) and _local(c.tag) == tag]


def _text(element: ET.Element | None) -> str | None:
    return None if element is None else (element.text or "").strip()


def _label(element: ET.Element) -> str:
    tag = _local(element.tag)
    for key in ("name", "host"):
        if key in element.attrib:
            return f"{tag}[{key}={element.attrib[key]}]"
    return tag


def _typed(value: str, kind: str) -> Any:
    if kind == _INT:
        return int(value.strip())
    if kind == _BOOL:
        # JAXB reads xsd:boolean: "true" and "1" are true.
        return value.strip().lower() in ("true", "1")
    return value


def _attributes(element: ET.Element, known: tuple[tuple[str, str], ...], notes: _Notes,
                file: str, where: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, kind in known:
        if name in element.attrib:
            result[name] = _typed(element.attrib[name], kind)
    carried = {name for name, _ in known}
    for name in element.attrib:
        if name not in carried and not name.startswith("{"):
            notes.lost(file, where, f"attribute {name}=\"{element.attrib[name]}\"")
    return result


def _properties(element: ET.Element) -> list[dict[str, str]]:
    # Property: value is declared before name in MyCat's entity class.
    return [{"value": _text(p) or "", "name": p.attrib.get("name", "")}
            for p in _children(element, "property")]


def _table(element: ET.Element, attrs: tuple[tuple[str, str], ...], notes: _Notes,
           where: str) -> dict[str, Any]:
    """A <table> or <childTable> with its childTables nested, to any depth."""
    here = f"{where}/{_label(element)}"
    entry = _attributes(element, attrs, notes, SCHEMA_XML, here)
    nested = [_table(c, _CHILD_TABLE_ATTRS, notes, here)
              for c in _children(element, "childTable")]
    if nested:
        entry["childTable"] = nested
    return entry


def _schemas(root: ET.Element, notes: _Notes) -> list[dict[str, Any]]:
    result = []
    for schema in _children(root, "schema"):
        where = _label(schema)
        entry = _attributes(schema, _SCHEMA_ATTRS, notes, SCHEMA_XML, where)
        tables = [_table(t, _TABLE_ATTRS, notes, where) for t in _children(schema, "table")]
        if tables:
            entry["table"] = tables
        result.append(entry)
    return result


def _db_host(element: ET.Element, read: bool, notes: _Notes, where: str) -> dict[str, Any]:
    here = f"{where}/{_label(element)}"
    entry = _attributes(element, _READ_HOST_ATTRS if read else _WRITE_HOST_ATTRS, notes,
                        SCHEMA_XML, here)
    if element.attrib.get("usingDecrypt", "").strip() == "1":
        notes.lost(SCHEMA_XML, here, "usingDecrypt=\"1\" (an encrypted password) comes back "
                                     "from ZooKeeper as usingDecrypt=\"true\", which MyCat "
                                     "does not treat as encrypted")
    if not read:
        reads = [_db_host(r, True, notes, here) for r in _children(element, "readHost")]
        if reads:
            entry["readHost"] = reads
    return entry


def _data_hosts(root: ET.Element, notes: _Notes) -> list[dict[str, Any]]:
    result = []
    for host in _children(root, "dataHost"):
        where = _label(host)
        entry = _attributes(host, _DATA_HOST_ATTRS, notes, SCHEMA_XML, where)
        heartbeat = _text(next(iter(_children(host, "heartbeat")), None))
        if heartbeat is not None:
            entry["heartbeat"] = heartbeat
        init_sql = _text(next(iter(_children(host, "connectionInitSql")), None))
        if init_sql is not None:
            entry["connectionInitSql"] = init_sql
        entry["writeHost"] = [_db_host(w, False, notes, where)
                              for w in _children(host, "writeHost")]
        result.append(entry)
    return result


def _data_nodes(root: ET.Element, notes: _Notes) -> list[dict[str, Any]]:
    return [_attributes(n, _DATA_NODE_ATTRS, notes, SCHEMA_XML, _label(n))
            for n in _children(root, "dataNode")]


def _system(root: ET.Element) -> dict[str, Any]:
    system = next(iter(_children(root, "system")), None)
    return {"property": _properties(system)} if system is not None else {"property": []}


def _users(root: ET.Element, notes: _Notes) -> list[dict[str, Any]]:
    users = []
    for user in _children(root, "user"):
        where = _label(user)
        for name, value in user.attrib.items():
            if name != "name":
                notes.lost(SERVER_XML, where, f"attribute {name}=\"{value}\"")
        if _children(user, "privileges"):
            notes.lost(SERVER_XML, f"{where}/privileges", "table and schema privileges")
        users.append({"name": user.attrib.get("name", ""), "property": _properties(user)})
    for other in ("firewall", "cluster"):
        if _children(root, other):
            notes.lost(SERVER_XML, other, f"<{other}>")
    return users


def _table_rules(root: ET.Element) -> list[dict[str, Any]]:
    result = []
    for table_rule in _children(root, "tableRule"):
        rule = next(iter(_children(table_rule, "rule")), None)
        body: dict[str, Any] = {}
        if rule is not None:
            body = {"columns": _text(next(iter(_children(rule, "columns")), None)),
                    "algorithm": _text(next(iter(_children(rule, "algorithm")), None))}
        result.append({"rule": body, "name": table_rule.attrib.get("name", "")})
    return result


def _functions(root: ET.Element, files: Mapping[str, bytes], prefix: str,
               notes: _Notes) -> tuple[list[dict[str, Any]], set[str]]:
    """Functions with their properties; a ``mapFile`` travels inline, as MyCat's uploader
    does it: one more property named after the file, holding its text."""
    result, used = [], set()
    for function in _children(root, "function"):
        properties = _properties(function)
        for prop in list(properties):
            if prop["name"] != "mapFile":
                continue
            content = files.get(prefix + prop["value"])
            if content is None:
                notes.lost(RULE_XML, f"{_label(function)}/property[name=mapFile]",
                           f"map file {prop['value']} is not among the published files")
                continue
            used.add(prefix + prop["value"])
            properties.append({"value": content.decode("utf-8", errors="replace"),
                               "name": prop["value"]})
        entry: dict[str, Any] = {"name": function.attrib.get("name", ""),
                                 "clazz": function.attrib.get("class", "")}
        if properties:
            entry["property"] = properties
        result.append(entry)
    return result, used


_SEQUENCE_NAME = re.compile(r"^(?P<base>" + "|".join(SEQUENCE_FILES) +
                            r")(?:-(?P<node>[^/]+))?\.properties$")


def _sequences(files: Mapping[str, bytes], prefix: str, nodes: tuple[str, ...],
               notes: _Notes) -> tuple[list[Znode], set[str]]:
    common, cluster, used = [], [], set()
    for path in sorted(files):
        if not path.startswith(prefix):
            continue
        name = path[len(prefix):]
        match = _SEQUENCE_NAME.match(name)
        if match is None:
            continue
        used.add(path)
        if match["node"] is None:
            common.append(Znode(f"{SEQUENCES_COMMON}/{name}", files[path]))
        elif match["node"] in nodes:
            cluster.append(Znode(f"{SEQUENCES_CLUSTER}/{name}", files[path]))
        else:
            notes.lost(name, "", f"node '{match['node']}' is not a MyCat node of the spec")
    given = {z.path for z in common}
    for base in SEQUENCE_FILES:
        path = f"{SEQUENCES_COMMON}/{base}.properties"
        if path not in given:
            common.append(Znode(path, DEFAULT_SEQUENCES[base]))
    return sorted(common, key=lambda z: z.path) + cluster, used


def _cache(files: Mapping[str, bytes], prefix: str) -> tuple[list[Znode], set[str]]:
    """The cache node: a published cacheservice.properties travels as text; ehcache.xml is
    always stackha's default (a published one is reported as not carried)."""
    name = prefix + "cacheservice.properties"
    service = files.get(name)
    return ([Znode(CACHE_SERVICE, service if service is not None else DEFAULT_CACHE_SERVICE),
             Znode(EHCACHE, to_json(DEFAULT_EHCACHE))],
            {name} if service is not None else set())


def _parse(files: Mapping[str, bytes], prefix: str, name: str,
           problems: list[Problem]) -> ET.Element | None:
    import xml.etree.ElementTree as ET  # parsed only where a layout is built: 0.6 MiB

    data = files.get(prefix + name)
    if data is None:
        problems.append(Problem(f"{prefix}{name}", "", "missing: the MyCat ZooKeeper layout "
                                                       "needs it"))
        return None
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        problems.append(Problem(f"{prefix}{name}", f"line {exc.position[0]}",
                                f"not well-formed XML: {exc}"))
        return None


def build_layout(files: Mapping[str, bytes], cluster_nodes: tuple[str, ...],
                 prefix: str = "mycat/") -> tuple[Layout | None, list[Problem]]:
    """The znodes of MyCat's layout, in write order, for already validated MyCat files.

    ``cluster_nodes`` are the myids of the MyCat nodes (stackha uses the node names). The
    problems are warnings for settings the format cannot carry, or errors when a file is
    missing or not XML (then the layout is None). Run ``validate_mycat`` first: this
    function trusts the files to follow MyCat's grammar.
    """
    problems: list[Problem] = []
    for myid in cluster_nodes:
        # A myid becomes the znode name command/<myid> and part of the cluster node's data.
        if name_reason(myid):
            problems.append(Problem("stackha.yaml", "nodes", f"MyCat node {myid!r}: "
                                    f"{name_reason(myid)}: no layout is written"))
    if problems:
        return None, problems
    roots = {name: _parse(files, prefix, name, problems)
             for name in (SCHEMA_XML, SERVER_XML, RULE_XML)}
    schema, server, rule = roots[SCHEMA_XML], roots[SERVER_XML], roots[RULE_XML]
    if schema is None or server is None or rule is None:
        return None, problems
    notes = _Notes(prefix)
    functions, map_files = _functions(rule, files, prefix, notes)
    sequences, sequence_files = _sequences(files, prefix, cluster_nodes, notes)
    cache, cache_files = _cache(files, prefix)
    znodes = [
        Znode(DATA_HOST, to_json(_data_hosts(schema, notes))),
        Znode(DATA_NODE, to_json(_data_nodes(schema, notes))),
        Znode(SCHEMA, to_json(_schemas(schema, notes))),
        Znode(SERVER_DEFAULT, to_json(_system(server))),
        Znode(SERVER_USER, to_json(_users(server, notes))),
        Znode(TABLE_RULE, to_json(_table_rules(rule))),
        Znode(FUNCTION, to_json(functions)),
        *sequences,
        *cache,
        Znode(CLUSTER_NODE, to_json(cluster_node(cluster_nodes))),
    ]
    carried = {prefix + n for n in (SCHEMA_XML, SERVER_XML, RULE_XML)} | map_files \
        | sequence_files | cache_files
    for path in sorted(files):
        if path.startswith(prefix) and path not in carried:
            notes.lost(path[len(prefix):], "", "this file")
    return Layout(tuple(znodes)), problems + notes.problems
