"""server.xml: what MyCat's server loader checks after the grammar (system properties, users,
privileges, firewall and cluster), against schema.xml's schemas."""

from __future__ import annotations

import ipaddress
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
    report_duplicates,
    split_list,
)
from stackha.mycat.validate.schema import SchemaFacts, check_encrypted

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
# Every property MyCat 1.6.6.1's SystemConfig has a setter for. Any other name is silently
# ignored by MyCat, so a typo ("serverport") quietly keeps the default.
_SYSTEM_PROPERTIES = frozenset({
    "defaultSqlParser", "useOffHeapForMerge", "memoryPageSize", "spillsFileBufferSize",
    "useStreamOutput", "systemReserveMemorySize", "useZKSwitch", "xARecoveryLogBaseDir",
    "xARecoveryLogBaseName", "useGlobleTableCheck", "glableTableCheckPeriod", "sqlInterceptor",
    "sequnceHandlerType", "packetHeaderSize", "catletClassCheckSeconds", "maxPacketSize",
    "frontWriteQueueSize", "bindIp", "defaultMaxLimit", "useSqlStat", "useCompression",
    "charset", "fakeMySQLVersion", "serverPort", "managerPort", "processors",
    "processorExecutor", "managerExecutor", "timerExecutor", "idleTimeout",
    "processorCheckPeriod", "dataNodeIdleCheckPeriod", "dataNodeHeartbeatPeriod",
    "clusterHeartbeatUser", "sqlExecuteTimeout", "clusterHeartbeatPass",
    "clusterHeartbeatPeriod", "clusterHeartbeatTimeout", "clusterHeartbeatRetry",
    "txIsolation", "parserCommentVersion", "sqlRecordCount", "bufferPoolChunkSize",
    "maxResultSet", "bigResultSizeSqlCount", "bufferUsagePercent", "flowControlRejectStrategy",
    "clearBigSqLResultSetMapMs", "bufferPoolPageSize", "bufferPoolPageNumber",
    "frontSocketSoRcvbuf", "frontSocketSoSndbuf", "backSocketSoRcvbuf", "backSocketSoSndbuf",
    "frontSocketNoDelay", "backSocketNoDelay", "maxStringLiteralLength", "mutiNodeLimitType",
    "mutiNodePatchSize", "processorBufferLocalPercent", "sqlInterceptorType",
    "sqlInterceptorFile", "usingAIO", "mycatNodeId", "checkTableConsistency",
    "checkTableConsistencyPeriod", "processorBufferPoolType", "handleDistributedTransactions",
    "useHandshakeV10", "nonePasswordLogin", "subqueryRelationshipCheck", "strictTxIsolation",
    "sequnceMySqlRetryCount", "sequnceMySqlWaitTime",
})
# 0 local file, 1 database, 2 local time, 3 ZooKeeper distributed, 4 ZooKeeper increment.
_SEQUENCE_HANDLERS = range(5)
SEQUENCE_TIME_PROPERTIES = "sequence_time_conf.properties"
SEQUENCE_FILES = (SEQUENCE_PROPERTIES, "sequence_db_conf.properties",
                  "sequence_distributed_conf.properties", SEQUENCE_TIME_PROPERTIES)
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
        report_duplicates(cluster.iter("node"), "name", "cluster node name", report)
    return facts


def _check_system(system: Element, files: Mapping[str, bytes], prefix: str,
                  report: Report) -> dict[str, str]:
    values = read_properties(system, report, "system")
    for name in values:
        if name not in _SYSTEM_PROPERTIES:
            report.error(property_element(system, name),
                         f"unknown system property '{name}': MyCat 1.6 ignores it")
    bind_ip = values.get("bindIp")
    if bind_ip is not None:
        try:
            ipaddress.ip_address(bind_ip)
        except ValueError:
            report.error(property_element(system, "bindIp"),
                         f"bindIp {bind_ip!r} is not an IP address: MyCat cannot listen on it")
    handler = java_int(values.get("sequnceHandlerType", "0"))
    if handler is not None and handler not in _SEQUENCE_HANDLERS:
        report.error(property_element(system, "sequnceHandlerType"),
                     f"sequnceHandlerType {handler} is none of MyCat's (0-4): no sequence "
                     "would ever be handed out")
    if handler == 2:
        _check_time_sequence(system, files, prefix, report)
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
    if java_int(values.get("useGlobleTableCheck", "1")) != 0:
        # Measured on the real 1.6.6.1 (tests/integration/test_mycat_real.py): with the check
        # on, each DDL on a global table queues a task that sleeps ten minutes on the business
        # executor (4 threads on 2 CPUs), which `reload @@config` also runs on.
        report.warning(property_element(system, "useGlobleTableCheck"),
                       "useGlobleTableCheck is on (MyCat's default): every DDL on a global "
                       "table holds one of MyCat's business threads for ten minutes, and "
                       "reload @@config waits behind them; set it to 0")
    if values.get("sequnceHandlerType", "").strip() == "0" and (
            prefix + SEQUENCE_PROPERTIES) not in files:
        report.warning(property_element(system, "sequnceHandlerType"),
                       f"sequnceHandlerType 0 reads {SEQUENCE_PROPERTIES}, which is missing")
    return values


def _check_time_sequence(system: Element, files: Mapping[str, bytes], prefix: str,
                         report: Report) -> None:
    """sequnceHandlerType 2 reads WORKID and DATAACENTERID when MyCat starts (the copy in
    MyCat's jar when the set has none) and stops if they are not numbers."""
    data = files.get(prefix + SEQUENCE_TIME_PROPERTIES)
    if data is None:
        return
    values = _properties(data)
    for key in ("WORKID", "DATAACENTERID"):
        number = java_int(values.get(key, ""), 64)
        if number is None or not 0 <= number <= 31:
            report.error(property_element(system, "sequnceHandlerType"),
                         f"{SEQUENCE_TIME_PROPERTIES}: {key} must be a number 0-31, got "
                         f"{values.get(key)!r}")


def _properties(data: bytes) -> dict[str, str]:
    """A Java properties file, as far as MyCat's sequence files use it (key=value lines)."""
    values: dict[str, str] = {}
    for line in data.decode("latin-1").splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        key, _, value = line.replace(":", "=", 1).partition("=") if "=" not in line \
            else line.partition("=")
        values[key.strip()] = value.strip()
    return values


def check_sequences(files: Mapping[str, bytes], prefix: str, report: Report) -> None:
    """sequence_conf.properties: MyCat reads it only when a sequence is first used, so a bad
    value loads fine and fails the first insert that needs an id."""
    data = files.get(prefix + SEQUENCE_PROPERTIES)
    if data is None:
        return
    values = _properties(data)
    names = {key.rsplit(".", 1)[0] for key in values
             if key.rsplit(".", 1)[-1] in ("MINID", "MAXID", "CURID")}
    for name in sorted(names):
        numbers = {}
        for part in ("MINID", "MAXID", "CURID"):
            value = values.get(f"{name}.{part}")
            number = java_int(value, 64) if value is not None else None
            if number is None:
                report.add(name, f"{name}.{part} must be an integer, got {value!r}")
            numbers[part] = number
        low, high = numbers["MINID"], numbers["MAXID"]
        if low is not None and high is not None and low > high:
            report.add(name, f"{name}.MAXID {high} is below {name}.MINID {low}")


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
    elif values.get("usingDecrypt") == "1":
        check_encrypted(property_element(user, "password"), values["password"], report)
    for key, check, wanted in (("readOnly", is_java_bool, "true or false"),
                               ("benchmark", lambda v: java_int(v) is not None, "an integer"),
                               ("usingDecrypt", lambda v: v in ("0", "1"), "0 or 1")):
        if key in values and not check(values[key]):
            report.error(property_element(user, key),
                         f"user property '{key}' must be {wanted}, got {values[key]!r}")
    user_schemas = split_list(values.get("schemas", ""))
    if not user_schemas:
        report.error(user, "user has no schemas: MyCat refuses a user without one")
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

