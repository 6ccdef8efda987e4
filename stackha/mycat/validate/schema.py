"""schema.xml: what MyCat's schema loader checks after the grammar (dataHosts, dataNodes,
schemas and their tables, against rule.xml's tableRules)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from stackha.mycat.validate.grammar import (
    Element,
    Report,
    expand_names,
    java_int,
    report_duplicates,
)
from stackha.mycat.validate.model import DbInstance
from stackha.mycat.validate.rules import RuleFacts, partition_count

_DATA_HOST_CHOICES = {"balance": (0, 1, 2, 3), "writeType": (0, 1, 2),
                      "switchType": (-1, 1, 2, 3)}
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def check_encrypted(element: Element, password: str, report: Report) -> None:
    """usingDecrypt=1: MyCat decrypts the password at start and stops if it cannot. A value
    that is not even base64 cannot decrypt (stackha cannot check the key itself)."""
    if not password or len(password) % 4 or not _BASE64.fullmatch(password):
        report.error(element, "usingDecrypt is 1 but the password is not an encrypted (base64) "
                              "value: MyCat stops when it cannot decrypt it")


@dataclass
class _Table:
    name: str
    nodes: tuple[str, ...]
    element: Element


@dataclass
class SchemaFacts:
    schemas: dict[str, list[_Table]] = field(default_factory=dict)
    data_nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    data_hosts: dict[str, tuple[DbInstance, ...]] = field(default_factory=dict)
    data_host_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    # dataNode names written down, including those of a broken <dataNode>: tables naming
    # them are not reported again as referring to an undefined node.
    declared_nodes: set[str] = field(default_factory=set)


def _expand(node: Element, attribute: str, report: Report) -> tuple[str, ...] | None:
    value = node.attrs.get(attribute)
    if value is None or not value.strip():
        return None
    try:
        return expand_names(value)
    except ValueError as exc:
        report.error(node, f"attribute '{attribute}': {exc}")
        return None


def check_schema_xml(root: Element, rules: RuleFacts | None,
                     report: Report) -> SchemaFacts:
    facts = SchemaFacts()
    # Same order as MyCat: hosts, then nodes that name hosts, then schemas that name nodes.
    for element in root.iter("dataHost"):
        _check_data_host(element, facts, report)
    first_seen: dict[str, int] = {}
    for element in root.iter("dataNode"):
        _check_data_node(element, facts, first_seen, report)
    for element in root.iter("schema"):
        _check_schema(element, facts, rules, report)
    return facts


def _db_instance(element: Element, driver: str | None, report: Report,
                 read_hosts: tuple[DbInstance, ...] = ()) -> DbInstance:
    url = element.attrs.get("url", "")
    if url and driver == "native":
        # MyCat splits at the first colon and reads the rest as a Java int.
        host, colon, port = url.partition(":")
        number = java_int(port.strip())
        if not colon or not host.strip() or number is None:
            report.error(element, f"url {url!r} must be host:port for dbDriver native")
        elif not 0 < number < 65536:
            report.error(element, f"url {url!r}: port {number} is not a TCP port")
    elif url and driver == "jdbc" and not url.startswith("jdbc:"):
        report.error(element, f"url {url!r} must be a jdbc: URL for dbDriver jdbc")
    if element.attrs.get("usingDecrypt") == "1":
        check_encrypted(element, element.attrs.get("password", ""), report)
    weight = element.attrs.get("weight")
    return DbInstance(element.attrs.get("host", ""), url, element.attrs.get("user", ""),
                      element.attrs.get("password", ""),
                      java_int(weight) if weight is not None else None, read_hosts)


def _check_data_host(element: Element, facts: SchemaFacts, report: Report) -> None:
    name = element.attrs.get("name")
    driver = element.attrs.get("dbDriver")
    db_type = element.attrs.get("dbType", "")
    if driver is not None and driver not in ("native", "jdbc"):
        report.error(element, f"dbDriver must be native or jdbc, got {driver!r}")
        driver = None
    # MyCat compares "mysql" exactly, "postgresql" ignoring case.
    if driver == "native" and db_type != "mysql" and db_type.lower() != "postgresql":
        report.error(element, f"dbDriver native only speaks to mysql or postgresql, "
                              f"not dbType {db_type!r}; use dbDriver jdbc")
    max_con, min_con = element.attrs.get("maxCon"), element.attrs.get("minCon")
    if max_con is not None and min_con is not None and int(min_con) > int(max_con):
        report.warning(element, f"minCon {min_con} is larger than maxCon {max_con}")
    for key, allowed in _DATA_HOST_CHOICES.items():
        value = element.attrs.get(key)
        if value is not None and java_int(value) not in allowed:
            # MyCat loads any integer here and quietly falls back to its default behaviour.
            report.error(element, f"{key} {value} means nothing to MyCat 1.6; use one of "
                                  f"{', '.join(map(str, allowed))}")
    report_duplicates(element.iter("writeHost"), "host", "writeHost host", report,
                      " in this dataHost")
    for heartbeat in element.iter("heartbeat"):
        if not heartbeat.text.strip() and not heartbeat.children:
            report.warning(heartbeat, "heartbeat is empty: every backend would be marked down")
    write_hosts = tuple(
        _db_instance(write, driver, report,
                     tuple(_db_instance(read, driver, report) for read in write.iter("readHost")))
        for write in element.iter("writeHost"))
    if name is None:
        return
    if name in facts.data_hosts:
        report.error(element, f"duplicate dataHost name '{name}'")
        return
    facts.data_hosts[name] = write_hosts
    settings = dict(element.attrs)
    settings["heartbeat"] = next((h.text.strip() for h in element.iter("heartbeat")), "")
    facts.data_host_settings[name] = settings


def _check_data_node(element: Element, facts: SchemaFacts, first_seen: dict[str, int],
                     report: Report) -> None:
    names = _expand(element, "name", report)
    hosts = _expand(element, "dataHost", report)
    databases = _expand(element, "database", report)
    if names is not None:
        facts.declared_nodes.update(names)
    if names is None or hosts is None or databases is None:
        return
    if len(names) != len(hosts) * len(databases):
        report.error(element, f"name expands to {len(names)} dataNode(s) but dataHost x database "
                              f"give {len(hosts)} x {len(databases)} = "
                              f"{len(hosts) * len(databases)}: the counts must match")
        return
    for host in dict.fromkeys(hosts):
        if host not in facts.data_hosts:
            report.error(element, f"dataHost '{host}' is not defined")
    # Each dataHost holds every database, in that order: name k is host k // D, database k % D.
    for index, name in enumerate(names):
        if name in facts.data_nodes:
            report.error(element, f"duplicate dataNode name '{name}' "
                                  f"(first defined at line {first_seen[name]})")
            continue
        first_seen[name] = element.line
        facts.data_nodes[name] = (hosts[index // len(databases)],
                                  databases[index % len(databases)])


def _check_schema(element: Element, facts: SchemaFacts, rules: RuleFacts | None,
                  report: Report) -> None:
    name = element.attrs.get("name")
    # Not trimmed by MyCat: "dn1 " names no dataNode.
    default_node = element.attrs.get("dataNode", "")
    if default_node:
        if "," in default_node or "$" in default_node:
            report.error(element, f"dataNode {default_node!r} must name a single dataNode")
        elif default_node not in facts.declared_nodes:
            report.error(element, f"dataNode '{default_node}' is not defined")
    tables: list[_Table] = []
    seen: dict[str, _Table] = {}
    for table in element.iter("table"):
        _check_table(table, facts, rules, tables, seen, report)
    if not default_node and not any(element.iter("table")):
        report.error(element, "a schema without tables needs a dataNode attribute")
    if name is None:
        return
    if name in facts.schemas:
        report.error(element, f"duplicate schema name '{name}'")
        return
    facts.schemas[name] = tables


def _register_table(name: str, nodes: tuple[str, ...], element: Element, tables: list[_Table],
                    seen: dict[str, _Table], report: Report) -> None:
    # MyCat upper-cases table names, so Orders and orders collide.
    key = name.upper()
    if key in seen:
        report.error(element, f"duplicate table name '{name}' in this schema "
                              f"(first defined at line {seen[key].element.line})")
        return
    table = _Table(name, nodes, element)
    seen[key] = table
    tables.append(table)


def _check_table(element: Element, facts: SchemaFacts, rules: RuleFacts | None,
                 tables: list[_Table], seen: dict[str, _Table], report: Report) -> None:
    raw_names = element.attrs.get("name", "")
    names = [item.strip() for item in raw_names.split(",")] if raw_names.strip() else []
    if any(not item for item in names):
        report.warning(element, f"attribute 'name' has an empty item in {raw_names!r}")
        names = [item for item in names if item]
    nodes = _expand(element, "dataNode", report) or ()
    for node in dict.fromkeys(nodes):
        if node not in facts.declared_nodes:
            report.error(element, f"dataNode '{node}' is not defined")
    rule = element.attrs.get("rule")
    is_global = element.attrs.get("type", "").lower() == "global"
    if element.attrs.get("ruleRequired", "").lower() == "true" and rule is None:
        report.error(element, "ruleRequired is true but no rule is given")
    if rule is not None and rules is not None:
        if rule not in rules.declared:
            report.error(element, f"rule '{rule}' is not a tableRule defined in rule.xml")
        elif rule in rules.table_rules and nodes and not is_global:
            _check_partition_count(element, rule, rules, len(nodes), report)
    unsure = bool(element.invalid & {"type", "rule"})
    if len(nodes) > 1 and rule is None and not is_global and not unsure:
        report.warning(element, f"sharded over {len(nodes)} dataNodes without a rule and not "
                                "type=\"global\": MyCat cannot route inserts")
    for name in names:
        _register_table(name, nodes, element, tables, seen, report)
    if len(names) > 1 and list(element.iter("childTable")):
        report.warning(element, "childTables of a table with several names are ignored by MyCat")
        return
    for child in element.iter("childTable"):
        _check_child_table(child, nodes, tables, seen, report)


def _check_child_table(element: Element, nodes: tuple[str, ...], tables: list[_Table],
                       seen: dict[str, _Table], report: Report) -> None:
    name = element.attrs.get("name")
    if name:
        _register_table(name, nodes, element, tables, seen, report)
    for child in element.iter("childTable"):
        _check_child_table(child, nodes, tables, seen, report)


def _check_partition_count(element: Element, rule: str, rules: RuleFacts, node_count: int,
                           report: Report) -> None:
    function = rules.functions.get(rules.table_rules[rule][1])
    if function is None:
        return
    partitions = partition_count(*function)
    if partitions is None:
        return
    if partitions > node_count:
        report.error(element, f"rule '{rule}' routes to {partitions} partitions but the table "
                              f"has only {node_count} dataNode(s)")
    elif partitions < node_count:
        report.warning(element, f"rule '{rule}' routes to {partitions} partitions, so "
                                f"{node_count - partitions} of {node_count} dataNodes stay unused")
