"""server.xml: what MyCat's server loader checks after the grammar (system properties, users,
privileges, firewall and cluster), against schema.xml's schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from stackha.mycat.validate.grammar import (
    Element,
    Report,
    is_java_bool,
    java_int,
    property_element,
    read_properties,
    split_list,
)
from stackha.mycat.validate.schema import SchemaFacts

SEQUENCE_PROPERTIES = "sequence_conf.properties"
USER_PROPERTIES = frozenset({"password", "usingDecrypt", "schemas", "readOnly", "benchmark",
                             "defaultSchema", "defaultAccount"})
# <system> properties MyCat converts to numbers; anything else there fails the conversion.
_INTEGER_SYSTEM_PROPERTIES = frozenset({
    "serverPort", "managerPort", "processors", "processorExecutor", "processorBufferChunk",
    "frontWriteQueueSize", "idleTimeout", "sqlExecuteTimeout", "txIsolation",
    "sequnceHandlerType", "useSqlStat", "useGlobleTableCheck", "handleDistributedTransactions",
    "useOffHeapForMerge", "useCompression", "maxPacketSize", "defaultMaxLimit",
    "packetHeaderSize",
})
_DML = re.compile(r"[01]{4}")


@dataclass
class ServerFacts:
    system: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    has_firewall: bool = False
    has_privileges: bool = False


def check_server_xml(root: Element, schemas: SchemaFacts | None, files: Mapping[str, bytes],
                     prefix: str, report: Report) -> ServerFacts:
    facts = ServerFacts()
    for system in root.iter("system"):
        facts.system.update(_check_system(system, files, prefix, report))
    for user in root.iter("user"):
        _check_user(user, schemas, facts, report)
    for firewall in root.iter("firewall"):
        facts.has_firewall = True
        _check_firewall(firewall, facts, report)
    for cluster in root.iter("cluster"):
        names: set[str] = set()
        for node in cluster.iter("node"):
            name = node.attrs.get("name")
            if name is not None and name in names:
                report.error(node, f"duplicate cluster node name '{name}'")
            if name is not None:
                names.add(name)
    return facts


def _check_system(system: Element, files: Mapping[str, bytes], prefix: str,
                  report: Report) -> dict[str, str]:
    values = read_properties(system, report, "system")
    for name, value in values.items():
        if name in _INTEGER_SYSTEM_PROPERTIES and java_int(value, 64) is None:
            report.error(property_element(system, name),
                         f"system property '{name}' must be an integer, got {value!r}")
    ports = {}
    for name in ("serverPort", "managerPort"):
        number = java_int(values.get(name, ""))
        if number is None:
            continue
        if not 0 < number < 65536:
            report.error(property_element(system, name), f"{name} {number} is not a TCP port")
        ports[name] = number
    if len(ports) == 2 and ports["serverPort"] == ports["managerPort"]:
        report.error(property_element(system, "managerPort"),
                     "managerPort equals serverPort: MyCat cannot bind both")
    if values.get("sequnceHandlerType", "").strip() == "0" and (
            prefix + SEQUENCE_PROPERTIES) not in files:
        report.warning(property_element(system, "sequnceHandlerType"),
                       f"sequnceHandlerType 0 reads {SEQUENCE_PROPERTIES}, which is missing")
    return values


def _check_user(user: Element, schemas: SchemaFacts | None, facts: ServerFacts,
                report: Report) -> None:
    name = user.attrs.get("name")
    values = read_properties(user, report, "user")
    for prop in user.iter("property"):
        prop_name = prop.attrs.get("name")
        if prop_name is not None and prop_name not in USER_PROPERTIES:
            report.error(prop, f"unknown user property '{prop_name}'; known: "
                               f"{', '.join(sorted(USER_PROPERTIES))}")
    if "password" not in values:
        report.error(user, "user has no password property")
    for key, check, wanted in (("readOnly", is_java_bool, "true or false"),
                               ("benchmark", lambda v: java_int(v) is not None, "an integer"),
                               ("usingDecrypt", lambda v: v in ("0", "1"), "0 or 1")):
        if key in values and not check(values[key]):
            report.error(property_element(user, key),
                         f"user property '{key}' must be {wanted}, got {values[key]!r}")
    user_schemas = split_list(values.get("schemas", ""))
    if "schemas" not in values:
        report.warning(user, "user has no schemas property: it can use no schema")
    if schemas is not None:
        for schema in user_schemas:
            if schema not in schemas.schemas:
                report.error(property_element(user, "schemas"),
                             f"schema '{schema}' is not defined in schema.xml")
    default = values.get("defaultSchema")
    if default is not None and default not in user_schemas:
        report.error(property_element(user, "defaultSchema"),
                     f"defaultSchema '{default}' is not one of the user's schemas")
    for privileges in user.iter("privileges"):
        facts.has_privileges = True
        _check_privileges(privileges, user_schemas, report)
    if name is None:
        return
    if name in facts.users:
        report.error(user, f"duplicate user name '{name}'")
        return
    facts.users[name] = values


def _check_privileges(privileges: Element, user_schemas: tuple[str, ...],
                      report: Report) -> None:
    for schema in privileges.iter("schema"):
        for element in (schema, *schema.iter("table")):
            dml = element.attrs.get("dml")
            if dml is not None and not _DML.fullmatch(dml):
                report.error(element, f"dml must be four 0/1 flags (insert, update, select, "
                                      f"delete), got {dml!r}")
        name = schema.attrs.get("name")
        if name is not None and name not in user_schemas:
            report.warning(schema, f"privileges for schema '{name}', which the user cannot use")


def _check_firewall(firewall: Element, facts: ServerFacts, report: Report) -> None:
    hosts: dict[str, int] = {}
    for whitehost in firewall.iter("whitehost"):
        for host in whitehost.iter("host"):
            address = host.attrs.get("host", "").strip()
            if address in hosts:
                report.error(host, f"duplicate whitehost host '{address}' "
                                   f"(first at line {hosts[address]})")
            hosts.setdefault(address, host.line)
            for user in split_list(host.attrs.get("user", "")):
                if user not in facts.users:
                    report.error(host, f"user '{user}' is not defined")
                elif not split_list(facts.users[user].get("schemas", "")):
                    report.error(host, f"user '{user}' has no schemas, which MyCat refuses "
                                       "in a whitehost")

