"""Strict validation of MyCat 1.6 configuration: schema.xml, server.xml and rule.xml.

MyCat 1.6 reads these files with a validating XML parser against the grammars bundled in its
jar, then cross-checks names while loading; any violation stops it from starting. A node that
receives such a version would lose its proxy, so every rule MyCat enforces at start-up is
restated here (in our own terms) and checked before a version is published or applied.

Everything found is reported, one line per finding, instead of stopping at the first.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from xml.parsers import expat

from stackha.model.problems import ERROR, WARNING, Problem

SCHEMA_XML = "schema.xml"
SERVER_XML = "server.xml"
RULE_XML = "rule.xml"
SEQUENCE_PROPERTIES = "sequence_conf.properties"
NAMESPACE = "http://io.mycat/"
ROOTS = {SCHEMA_XML: "mycat:schema", SERVER_XML: "mycat:server", RULE_XML: "mycat:rule"}

# Expanding "dn$0-99999999" would exhaust memory long before MyCat complained.
MAX_EXPANDED_NAMES = 10_000


# ----------------------------------------------------------------------------------------------
# The model other modules may use


@dataclass(frozen=True)
class DbInstance:
    """One backend database server of a dataHost: a writeHost with its readHosts, or a readHost."""

    host: str
    url: str
    user: str
    password: str
    weight: int | None = None
    read_hosts: tuple[DbInstance, ...] = ()


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class MycatModel:
    """What the three files define, after range expansion. Read-only all the way down."""

    # schema name -> table names (childTables included) in document order
    schemas: Mapping[str, tuple[str, ...]]
    # schema name -> table name -> the dataNodes it lives on (childTables inherit their root's)
    table_data_nodes: Mapping[str, Mapping[str, tuple[str, ...]]]
    # dataNode name -> (dataHost name, database)
    data_nodes: Mapping[str, tuple[str, str]]
    # dataHost name -> its writeHosts, each carrying its readHosts
    data_hosts: Mapping[str, tuple[DbInstance, ...]]
    # dataHost name -> its attributes (balance, maxCon, dbType, ...) plus "heartbeat"
    data_host_settings: Mapping[str, Mapping[str, str]]
    # user name -> its properties (password, schemas, readOnly, defaultSchema, ...)
    users: Mapping[str, Mapping[str, str]]
    # tableRule name -> (column, function name)
    table_rules: Mapping[str, tuple[str, str]]
    # function name -> (Java class, its properties)
    functions: Mapping[str, tuple[str, Mapping[str, str]]]
    # <system> properties of server.xml
    system: Mapping[str, str]
    has_firewall: bool
    has_privileges: bool

    def user_schemas(self, user: str) -> tuple[str, ...]:
        return _split_list(self.users.get(user, {}).get("schemas", ""))


# ----------------------------------------------------------------------------------------------
# Parsing: expat without any access outside the given bytes


@dataclass(eq=False)
class _Element:
    tag: str
    attrs: dict[str, str]
    line: int
    parent: _Element | None = None
    children: list[_Element] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)
    # Attributes already reported as invalid (and removed from attrs), so later checks can
    # tell "absent" from "broken" and not report the same mistake twice.
    invalid: set[str] = field(default_factory=set)

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def label(self) -> str:
        for key in ("name", "host"):
            if key in self.attrs:
                return f"{self.tag}[{key}={self.attrs[key]}]"
        return self.tag

    def where(self) -> str:
        """``line N: dataHost[name=x]/heartbeat`` - the path up to the nearest named ancestor
        gives context; the root element never does (the file implies it)."""
        parts = [self.label()]
        ancestor = self.parent
        while ancestor is not None and ancestor.parent is not None:
            parts.append(ancestor.label())
            if ancestor.label() != ancestor.tag:
                break
            ancestor = ancestor.parent
        return f"line {self.line}: {'/'.join(reversed(parts))}"

    def iter(self, tag: str) -> Iterator[_Element]:
        for child in self.children:
            if child.tag == tag:
                yield child


@dataclass(frozen=True)
class _Doctype:
    name: str
    system_id: str | None
    public_id: str | None
    internal_subset: bool
    line: int


class _Refused(Exception):
    """Stops parsing at a construct that could read other files or expand without bound."""

    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _parse(data: bytes, report: _Report) -> tuple[_Element, _Doctype | None] | None:
    parser = expat.ParserCreate()
    # External DTDs and entities are never fetched: MyCat uses the grammar inside its own jar
    # whatever the DOCTYPE says, and a config file must not make us read files or the network.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[_Element] = []
    roots: list[_Element] = []
    doctypes: list[_Doctype] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        parent = stack[-1] if stack else None
        node = _Element(tag, dict(attrs), parser.CurrentLineNumber, parent)
        (parent.children if parent else roots).append(node)
        stack.append(node)

    def end(_tag: str) -> None:
        stack.pop()

    def characters(data: str) -> None:
        if stack:
            stack[-1].text_parts.append(data)

    def doctype(name: str, system_id: str | None, public_id: str | None,
                internal_subset: int) -> None:
        doctypes.append(_Doctype(name, system_id, public_id, bool(internal_subset),
                                 parser.CurrentLineNumber))

    def entity_declared(name: str, *_args: object) -> None:
        raise _Refused(parser.CurrentLineNumber,
                       f"entity declaration '{name}' refused: MyCat configs need none, and "
                       "entities can read other files or expand without bound")

    def entity_skipped(name: str, _is_parameter: int) -> None:
        report.add(f"line {parser.CurrentLineNumber}",
                   f"reference to undeclared entity '&{name};'")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = characters
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity_declared
    parser.SkippedEntityHandler = entity_skipped
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        report.add(f"line {exc.lineno}", f"not well-formed XML: {expat.ErrorString(exc.code)} "
                                         f"(column {exc.offset + 1})")
        return None
    except _Refused as exc:
        report.add(f"line {exc.line}", exc.reason)
        return None
    except LookupError as exc:  # the XML declaration names an encoding Python lacks
        report.add("line 1", f"not well-formed XML: {exc}")
        return None
    return roots[0], (doctypes[0] if doctypes else None)


# ----------------------------------------------------------------------------------------------
# Reporting


@dataclass
class _Report:
    file: str
    problems: list[Problem]

    def add(self, where: str, reason: str, severity: str = ERROR) -> None:
        # Names and values come from the file and may hold line breaks; findings stay one line.
        self.problems.append(Problem(self.file, _one_line(where), _one_line(reason), severity))

    def error(self, node: _Element, reason: str) -> None:
        self.add(node.where(), reason)

    def warning(self, node: _Element, reason: str) -> None:
        self.add(node.where(), reason, WARNING)


# ----------------------------------------------------------------------------------------------
# Value helpers

_LINE_BREAKS = str.maketrans({"\n": "\\n", "\r": "\\r", "\t": "\\t"})


def _one_line(text: str) -> str:
    return text.translate(_LINE_BREAKS)

_INT = re.compile(r"[+-]?[0-9]+")
# A name token: MyCat's grammar types several attributes this way, so spaces, commas and most
# punctuation make the whole file invalid there.
_NMTOKEN = re.compile(r"[\w.\-:\u00b7]+")
_RANGE = re.compile(r"([0-9]+)-([0-9]+)")


def _java_int(value: str, bits: int = 32) -> int | None:
    """The value as Java's Integer/Long.parseInt reads it, or None where that would throw."""
    if not _INT.fullmatch(value):
        return None
    number = int(value)
    limit = 1 << (bits - 1)
    return number if -limit <= number < limit else None


def _is_java_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def expand_names(spec: str) -> tuple[str, ...]:
    """Expand MyCat's name lists: ``"dn$0-2"`` -> dn0, dn1, dn2; ``"a,b$1-2"`` -> a, b1, b2.

    Raises ValueError on what MyCat could not expand (empty items, malformed or reversed
    ranges), or on absurdly large expansions.
    """
    names: list[str] = []
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            raise ValueError(f"empty item in list {spec!r}")
        if "$" not in item:
            names.append(item)
            continue
        prefix, _, bounds = item.partition("$")
        match = _RANGE.fullmatch(bounds.strip())
        if not prefix or not match:
            raise ValueError(f"range {item!r} must look like prefix$start-end, e.g. dn$0-2")
        first, last = int(match.group(1)), int(match.group(2))
        if first > last:
            raise ValueError(f"range {item!r} ends before it starts")
        if len(names) + last - first + 1 > MAX_EXPANDED_NAMES:
            raise ValueError(f"{spec!r} expands to more than {MAX_EXPANDED_NAMES} names")
        names.extend(f"{prefix}{index}" for index in range(first, last + 1))
    return tuple(names)


# ----------------------------------------------------------------------------------------------
# Grammar: the element and attribute rules MyCat's validating parser applies


@dataclass(frozen=True)
class _Attr:
    required: bool = False
    kind: str = "text"  # text | nmtoken | int | bool | choice | fixed
    choices: tuple[str, ...] = ()
    allow_empty: bool = True


@dataclass(frozen=True)
class _ElementRule:
    attrs: Mapping[str, _Attr] = field(default_factory=dict)
    # Ordered content model: (child tag, minimum, maximum or None for unbounded)
    children: tuple[tuple[str, int, int | None], ...] = ()
    text: bool = False  # character data only, no child elements


_TEXT = _Attr()
_REQUIRED = _Attr(required=True, allow_empty=False)
_REQUIRED_TOKEN = _Attr(required=True, kind="nmtoken", allow_empty=False)
_TOKEN = _Attr(kind="nmtoken")
_INTEGER = _Attr(kind="int")
_REQUIRED_INTEGER = _Attr(required=True, kind="int", allow_empty=False)
# MyCat's grammar types these as name tokens, which cannot be empty.
_BOOLEAN = _Attr(kind="bool", allow_empty=False)
_REQUIRED_BOOLEAN = _Attr(required=True, kind="bool", allow_empty=False)
_TABLE_TYPE = _Attr(kind="choice", choices=("global", "normal"), allow_empty=False)
_DECRYPT = _Attr(kind="choice", choices=("0", "1"))
_NAMESPACE = _Attr(kind="fixed", choices=(NAMESPACE,))
_PROPERTY = _ElementRule({"name": _REQUIRED_TOKEN}, text=True)
_MANY = None

_DB_INSTANCE_ATTRS = {
    "host": _REQUIRED_TOKEN, "url": _REQUIRED, "user": _REQUIRED,
    "password": _Attr(required=True), "usingDecrypt": _DECRYPT, "weight": _INTEGER,
}

_SCHEMA_GRAMMAR: Mapping[str, _ElementRule] = {
    "mycat:schema": _ElementRule(
        {"xmlns:mycat": _NAMESPACE},
        (("schema", 0, _MANY), ("dataNode", 0, _MANY), ("dataHost", 0, _MANY))),
    "schema": _ElementRule(
        {"name": _REQUIRED_TOKEN, "checkSQLschema": _BOOLEAN, "sqlMaxLimit": _INTEGER,
         "dataNode": _TEXT, "randomDataNode": _TEXT},
        (("table", 0, _MANY),)),
    "table": _ElementRule(
        {"name": _REQUIRED, "dataNode": _REQUIRED, "rule": _TOKEN, "ruleRequired": _BOOLEAN,
         "primaryKey": _TOKEN, "autoIncrement": _BOOLEAN, "needAddLimit": _BOOLEAN,
         "type": _TABLE_TYPE, "subTables": _TEXT,
         "nameSuffix": _TEXT},
        (("childTable", 0, _MANY),)),
    "childTable": _ElementRule(
        {"name": _REQUIRED_TOKEN, "joinKey": _REQUIRED_TOKEN, "parentKey": _REQUIRED_TOKEN,
         "primaryKey": _TOKEN, "autoIncrement": _BOOLEAN, "needAddLimit": _BOOLEAN},
        (("childTable", 0, _MANY),)),
    "dataNode": _ElementRule({"name": _REQUIRED, "dataHost": _REQUIRED, "database": _REQUIRED}),
    "dataHost": _ElementRule(
        {"name": _REQUIRED_TOKEN, "balance": _REQUIRED_INTEGER, "maxCon": _REQUIRED_INTEGER,
         "minCon": _REQUIRED_INTEGER, "dbType": _REQUIRED, "dbDriver": _REQUIRED,
         "writeType": _INTEGER, "switchType": _INTEGER, "slaveThreshold": _INTEGER,
         "tempReadHostAvailable": _INTEGER, "notSwitch": _TEXT},
        (("heartbeat", 1, 1), ("connectionInitSql", 0, 1), ("writeHost", 1, _MANY))),
    "heartbeat": _ElementRule(text=True),
    "connectionInitSql": _ElementRule(text=True),
    "writeHost": _ElementRule(_DB_INSTANCE_ATTRS, (("readHost", 0, _MANY),)),
    "readHost": _ElementRule(_DB_INSTANCE_ATTRS),
}

_SERVER_GRAMMAR: Mapping[str, _ElementRule] = {
    "mycat:server": _ElementRule(
        {"xmlns:mycat": _NAMESPACE},
        (("system", 0, 1), ("firewall", 0, 1), ("user", 1, _MANY), ("cluster", 0, 1))),
    "system": _ElementRule(children=(("property", 0, _MANY),)),
    "property": _PROPERTY,
    "firewall": _ElementRule(children=(("whitehost", 0, _MANY), ("blacklist", 0, _MANY))),
    "whitehost": _ElementRule(children=(("host", 0, _MANY),)),
    "host": _ElementRule({"host": _REQUIRED, "user": _REQUIRED},
                          (("property", 0, _MANY),)),
    "blacklist": _ElementRule({"check": _REQUIRED_BOOLEAN},
                               (("property", 0, _MANY),)),
    "user": _ElementRule({"name": _REQUIRED_TOKEN, "defaultAccount": _TOKEN},
                          (("property", 1, _MANY), ("privileges", 0, _MANY))),
    "privileges": _ElementRule({"check": _REQUIRED_BOOLEAN},
                                (("schema", 0, _MANY),)),
    "schema": _ElementRule({"name": _REQUIRED, "dml": _REQUIRED}, (("table", 0, _MANY),)),
    "table": _ElementRule({"name": _REQUIRED, "dml": _REQUIRED}),
    "cluster": _ElementRule(children=(("node", 1, _MANY), ("group", 0, _MANY))),
    "node": _ElementRule({"name": _REQUIRED_TOKEN}, (("property", 1, _MANY),)),
    "group": _ElementRule({"name": _REQUIRED_TOKEN}, (("property", 1, 1),)),
}

_RULE_GRAMMAR: Mapping[str, _ElementRule] = {
    "mycat:rule": _ElementRule(
        {"xmlns:mycat": _NAMESPACE}, (("tableRule", 0, _MANY), ("function", 0, _MANY))),
    "tableRule": _ElementRule({"name": _REQUIRED}, (("rule", 1, 1),)),
    "rule": _ElementRule(children=(("columns", 1, 1), ("algorithm", 1, 1))),
    "columns": _ElementRule(text=True),
    "algorithm": _ElementRule(text=True),
    "function": _ElementRule({"name": _REQUIRED, "class": _REQUIRED},
                              (("property", 0, _MANY),)),
    "property": _PROPERTY,
}

GRAMMARS = {SCHEMA_XML: _SCHEMA_GRAMMAR, SERVER_XML: _SERVER_GRAMMAR, RULE_XML: _RULE_GRAMMAR}

# Elements people carry over from older MyCat releases, with what 1.6 wants instead.
_RETIRED = {
    "quarantine": "<quarantine> was replaced by <firewall> in MyCat 1.6",
}


def _check_document(root: _Element, doctype: _Doctype | None, file_name: str,
                    report: _Report) -> bool:
    """The grammar checks. Returns False when the root is wrong, so nothing else is checked."""
    expected = ROOTS[file_name]
    if root.tag != expected:
        report.error(root, f"root element must be <{expected}> (with the literal 'mycat:' "
                           f"prefix), found <{root.tag}>")
        return False
    dtd = file_name.replace(".xml", ".dtd")
    if doctype is None:
        report.add(f"line {root.line}", f"missing <!DOCTYPE {expected} SYSTEM \"{dtd}\">: "
                                        "MyCat's validating parser rejects a file without one")
    else:
        if doctype.name != expected:
            report.add(f"line {doctype.line}", f"DOCTYPE names <{doctype.name}> but the root "
                                               f"element is <{expected}>")
        if doctype.system_id is None and doctype.public_id is None:
            report.add(f"line {doctype.line}", f"DOCTYPE has no SYSTEM \"{dtd}\" reference, so "
                                               "MyCat would find no grammar to validate against")
        if doctype.internal_subset:
            report.add(f"line {doctype.line}", "internal DTD subset refused: it would amend "
                                               "MyCat's grammar")
    _check_element(root, GRAMMARS[file_name], report)
    return True


def _check_element(node: _Element, grammar: Mapping[str, _ElementRule],
                   report: _Report) -> None:
    rule = grammar[node.tag]
    _check_attributes(node, rule.attrs, report)
    if rule.text:
        for child in node.children:
            report.error(child, f"element <{child.tag}> is not allowed inside <{node.tag}>, "
                                "which holds text only")
        return
    text = node.text.strip()
    if text:
        shown = text if len(text) <= 30 else text[:27] + "..."
        report.error(node, f"text {shown!r} is not allowed directly inside <{node.tag}>")
    for child in _check_content(node, rule, report):
        _check_element(child, grammar, report)


def _check_content(node: _Element, rule: _ElementRule, report: _Report) -> list[_Element]:
    """Check the children against the ordered content model; returns the known children."""
    order = [tag for tag, _, _ in rule.children]
    counts = dict.fromkeys(order, 0)
    position = 0
    known: list[_Element] = []
    for child in node.children:
        if child.tag not in counts:
            retired = _RETIRED.get(child.tag)
            if retired:
                report.error(child, f"unknown element <{child.tag}>: {retired}")
            elif order:
                report.error(child, f"unknown element <{child.tag}> inside <{node.tag}>; "
                                    f"allowed: {', '.join(order)}")
            else:
                report.error(child, f"unknown element <{child.tag}>: <{node.tag}> must be empty")
            continue
        known.append(child)
        index = order.index(child.tag)
        if index < position:
            # Reported against the element that arrived late; the position stays where it is
            # so a single misplaced element yields a single problem.
            report.error(child, f"<{child.tag}> must come before <{order[position]}> "
                                f"inside <{node.tag}>")
        else:
            position = index
        counts[child.tag] += 1
        maximum = rule.children[index][2]
        if maximum is not None and counts[child.tag] > maximum:
            many = "only one" if maximum == 1 else f"at most {maximum}"
            report.error(child, f"{many} <{child.tag}> allowed inside <{node.tag}>")
    for tag, minimum, maximum in rule.children:
        if counts[tag] < minimum:
            need = f"missing <{tag}>" if maximum == 1 else f"needs at least one <{tag}>"
            report.error(node, f"{need} inside <{node.tag}>")
    return known


def _check_attributes(node: _Element, attrs: Mapping[str, _Attr], report: _Report) -> None:
    for name in node.attrs:
        if name not in attrs:
            report.error(node, f"unknown attribute '{name}' on <{node.tag}>")
    for name, spec in attrs.items():
        if name not in node.attrs:
            if spec.required:
                report.error(node, f"missing required attribute '{name}' on <{node.tag}>")
            continue
        value = node.attrs[name]
        if spec.kind == "nmtoken":
            # The parser collapses surrounding whitespace of token attributes before MyCat
            # reads them, so keep the value it would see.
            value = node.attrs[name] = " ".join(value.split())
        reason = _attribute_problem(value, spec)
        if reason:
            report.error(node, f"attribute '{name}' {reason}")
            node.invalid.add(name)
            del node.attrs[name]  # later checks must not build on a value MyCat cannot load


def _attribute_problem(value: str, spec: _Attr) -> str | None:
    if not value.strip() and spec.kind != "fixed":
        # An empty optional value means "use the default" to MyCat, except for name tokens.
        if spec.kind == "nmtoken" or not spec.allow_empty:
            return "must not be empty"
        return None
    if spec.kind == "nmtoken" and not _NMTOKEN.fullmatch(value):
        return f"must be a single name token (letters, digits, '.', '-', '_'), got {value!r}"
    if spec.kind == "int" and _java_int(value) is None:
        return f"must be an integer, got {value!r}"
    if spec.kind == "bool" and not _is_java_bool(value):
        return f"must be true or false, got {value!r}"
    if spec.kind == "choice" and value.lower() not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.kind == "fixed" and value != spec.choices[0]:
        return f"must be {spec.choices[0]!r} for MyCat 1.6, got {value!r}"
    return None


# ----------------------------------------------------------------------------------------------
# schema.xml: what MyCat's schema loader checks after the grammar


@dataclass
class _Table:
    name: str
    nodes: tuple[str, ...]
    element: _Element


@dataclass
class _SchemaFacts:
    schemas: dict[str, list[_Table]] = field(default_factory=dict)
    data_nodes: dict[str, tuple[str, str]] = field(default_factory=dict)
    data_hosts: dict[str, tuple[DbInstance, ...]] = field(default_factory=dict)
    data_host_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    # dataNode names written down, including those of a broken <dataNode>: tables naming
    # them are not reported again as referring to an undefined node.
    declared_nodes: set[str] = field(default_factory=set)


@dataclass
class _RuleFacts:
    table_rules: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Every tableRule name declared, broken or not, so a broken rule is reported once (in
    # rule.xml) rather than again as "not defined" by each table using it.
    declared: set[str] = field(default_factory=set)
    functions: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def _expand(node: _Element, attribute: str, report: _Report) -> tuple[str, ...] | None:
    value = node.attrs.get(attribute)
    if value is None or not value.strip():
        return None
    try:
        return expand_names(value)
    except ValueError as exc:
        report.error(node, f"attribute '{attribute}': {exc}")
        return None


def _check_schema_xml(root: _Element, rules: _RuleFacts | None,
                      report: _Report) -> _SchemaFacts:
    facts = _SchemaFacts()
    # Same order as MyCat: hosts, then nodes that name hosts, then schemas that name nodes.
    for element in root.iter("dataHost"):
        _check_data_host(element, facts, report)
    first_seen: dict[str, int] = {}
    for element in root.iter("dataNode"):
        _check_data_node(element, facts, first_seen, report)
    for element in root.iter("schema"):
        _check_schema(element, facts, rules, report)
    return facts


def _db_instance(element: _Element, driver: str | None, report: _Report,
                 read_hosts: tuple[DbInstance, ...] = ()) -> DbInstance:
    url = element.attrs.get("url", "")
    if url and driver == "native":
        host, colon, port = url.rpartition(":")
        number = _java_int(port.strip())
        if not colon or not host.strip() or number is None or not 0 < number < 65536:
            report.error(element, f"url {url!r} must be host:port for dbDriver native")
    elif url and driver == "jdbc" and not url.startswith("jdbc:"):
        report.error(element, f"url {url!r} must be a jdbc: URL for dbDriver jdbc")
    weight = element.attrs.get("weight")
    return DbInstance(element.attrs.get("host", ""), url, element.attrs.get("user", ""),
                      element.attrs.get("password", ""),
                      _java_int(weight) if weight is not None else None, read_hosts)


def _check_data_host(element: _Element, facts: _SchemaFacts, report: _Report) -> None:
    name = element.attrs.get("name")
    driver = element.attrs.get("dbDriver")
    db_type = element.attrs.get("dbType", "")
    if driver is not None and driver not in ("native", "jdbc"):
        report.error(element, f"dbDriver must be native or jdbc, got {driver!r}")
        driver = None
    if driver == "native" and db_type.lower() not in ("mysql", "postgresql"):
        report.error(element, f"dbDriver native only speaks to mysql or postgresql, "
                              f"not dbType {db_type!r}; use dbDriver jdbc")
    max_con, min_con = element.attrs.get("maxCon"), element.attrs.get("minCon")
    if max_con is not None and min_con is not None and int(min_con) > int(max_con):
        report.warning(element, f"minCon {min_con} is larger than maxCon {max_con}")
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


def _check_data_node(element: _Element, facts: _SchemaFacts, first_seen: dict[str, int],
                     report: _Report) -> None:
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


def _check_schema(element: _Element, facts: _SchemaFacts, rules: _RuleFacts | None,
                  report: _Report) -> None:
    name = element.attrs.get("name")
    default_node = element.attrs.get("dataNode", "").strip()
    if default_node:
        if "," in default_node or "$" in default_node:
            report.error(element, f"dataNode {default_node!r} must name a single dataNode")
        elif default_node not in facts.declared_nodes:
            report.error(element, f"dataNode '{default_node}' is not defined")
    for node in _expand(element, "randomDataNode", report) or ():
        if node not in facts.declared_nodes:
            report.error(element, f"randomDataNode '{node}' is not defined")
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


def _register_table(name: str, nodes: tuple[str, ...], element: _Element, tables: list[_Table],
                    seen: dict[str, _Table], report: _Report) -> None:
    # MyCat upper-cases table names, so Orders and orders collide.
    key = name.upper()
    if key in seen:
        report.error(element, f"duplicate table name '{name}' in this schema "
                              f"(first defined at line {seen[key].element.line})")
        return
    table = _Table(name, nodes, element)
    seen[key] = table
    tables.append(table)


def _check_table(element: _Element, facts: _SchemaFacts, rules: _RuleFacts | None,
                 tables: list[_Table], seen: dict[str, _Table], report: _Report) -> None:
    raw_names = element.attrs.get("name", "")
    names = [item.strip() for item in raw_names.split(",")] if raw_names.strip() else []
    if any(not item for item in names):
        report.error(element, f"attribute 'name' has an empty item in {raw_names!r}")
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


def _check_child_table(element: _Element, nodes: tuple[str, ...], tables: list[_Table],
                       seen: dict[str, _Table], report: _Report) -> None:
    name = element.attrs.get("name")
    if name:
        _register_table(name, nodes, element, tables, seen, report)
    for child in element.iter("childTable"):
        _check_child_table(child, nodes, tables, seen, report)


def _partition_count(function_class: str, properties: Mapping[str, str]) -> int | None:
    """How many partitions a function routes to, for the built-ins where that is simple."""
    short = function_class.rsplit(".", 1)[-1]
    if short in ("PartitionByMod", "PartitionByHashMod"):
        return _java_int(properties.get("count", "").strip())
    return None


def _check_partition_count(element: _Element, rule: str, rules: _RuleFacts, node_count: int,
                           report: _Report) -> None:
    function = rules.functions.get(rules.table_rules[rule][1])
    if function is None:
        return
    partitions = _partition_count(*function)
    if partitions is None:
        return
    if partitions > node_count:
        report.error(element, f"rule '{rule}' routes to {partitions} partitions but the table "
                              f"has only {node_count} dataNode(s)")
    elif partitions < node_count:
        report.warning(element, f"rule '{rule}' routes to {partitions} partitions, so "
                                f"{node_count - partitions} of {node_count} dataNodes stay unused")


# ----------------------------------------------------------------------------------------------
# server.xml

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
class _ServerFacts:
    system: dict[str, str] = field(default_factory=dict)
    users: dict[str, dict[str, str]] = field(default_factory=dict)
    has_firewall: bool = False
    has_privileges: bool = False


def _properties(element: _Element, report: _Report, what: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for prop in element.iter("property"):
        name = prop.attrs.get("name")
        if name is None:
            continue
        if name in values:
            report.warning(prop, f"{what} property '{name}' is set twice; the last one wins")
        values[name] = prop.text.strip()
    return values


def _property_element(element: _Element, name: str) -> _Element:
    """The (last) <property> that set ``name``, to point at it; the parent if none did."""
    return next((p for p in reversed(element.children)
                 if p.tag == "property" and p.attrs.get("name") == name), element)


def _check_server_xml(root: _Element, schemas: _SchemaFacts | None, files: Mapping[str, bytes],
                      prefix: str, report: _Report) -> _ServerFacts:
    facts = _ServerFacts()
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


def _check_system(system: _Element, files: Mapping[str, bytes], prefix: str,
                  report: _Report) -> dict[str, str]:
    values = _properties(system, report, "system")
    for name, value in values.items():
        if name in _INTEGER_SYSTEM_PROPERTIES and _java_int(value, 64) is None:
            report.error(_property_element(system, name),
                         f"system property '{name}' must be an integer, got {value!r}")
    ports = {}
    for name in ("serverPort", "managerPort"):
        number = _java_int(values.get(name, ""))
        if number is None:
            continue
        if not 0 < number < 65536:
            report.error(_property_element(system, name), f"{name} {number} is not a TCP port")
        ports[name] = number
    if len(ports) == 2 and ports["serverPort"] == ports["managerPort"]:
        report.error(_property_element(system, "managerPort"),
                     "managerPort equals serverPort: MyCat cannot bind both")
    if values.get("sequnceHandlerType", "").strip() == "0" and (
            prefix + SEQUENCE_PROPERTIES) not in files:
        report.warning(_property_element(system, "sequnceHandlerType"),
                       f"sequnceHandlerType 0 reads {SEQUENCE_PROPERTIES}, which is missing")
    return values


def _check_user(user: _Element, schemas: _SchemaFacts | None, facts: _ServerFacts,
                report: _Report) -> None:
    name = user.attrs.get("name")
    values = _properties(user, report, "user")
    for prop in user.iter("property"):
        prop_name = prop.attrs.get("name")
        if prop_name is not None and prop_name not in USER_PROPERTIES:
            report.error(prop, f"unknown user property '{prop_name}'; known: "
                               f"{', '.join(sorted(USER_PROPERTIES))}")
    if "password" not in values:
        report.error(user, "user has no password property")
    for key, check, wanted in (("readOnly", _is_java_bool, "true or false"),
                               ("benchmark", lambda v: _java_int(v) is not None, "an integer"),
                               ("usingDecrypt", lambda v: v in ("0", "1"), "0 or 1")):
        if key in values and not check(values[key]):
            report.error(_property_element(user, key),
                         f"user property '{key}' must be {wanted}, got {values[key]!r}")
    user_schemas = _split_list(values.get("schemas", ""))
    if "schemas" not in values:
        report.warning(user, "user has no schemas property: it can use no schema")
    if schemas is not None:
        for schema in user_schemas:
            if schema not in schemas.schemas:
                report.error(_property_element(user, "schemas"),
                             f"schema '{schema}' is not defined in schema.xml")
    default = values.get("defaultSchema")
    if default is not None and default not in user_schemas:
        report.error(_property_element(user, "defaultSchema"),
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


def _check_privileges(privileges: _Element, user_schemas: tuple[str, ...],
                      report: _Report) -> None:
    for schema in privileges.iter("schema"):
        for element in (schema, *schema.iter("table")):
            dml = element.attrs.get("dml")
            if dml is not None and not _DML.fullmatch(dml):
                report.error(element, f"dml must be four 0/1 flags (insert, update, select, "
                                      f"delete), got {dml!r}")
        name = schema.attrs.get("name")
        if name is not None and name not in user_schemas:
            report.warning(schema, f"privileges for schema '{name}', which the user cannot use")


def _check_firewall(firewall: _Element, facts: _ServerFacts, report: _Report) -> None:
    hosts: dict[str, int] = {}
    for whitehost in firewall.iter("whitehost"):
        for host in whitehost.iter("host"):
            address = host.attrs.get("host", "").strip()
            if address in hosts:
                report.error(host, f"duplicate whitehost host '{address}' "
                                   f"(first at line {hosts[address]})")
            hosts.setdefault(address, host.line)
            for user in _split_list(host.attrs.get("user", "")):
                if user not in facts.users:
                    report.error(host, f"user '{user}' is not defined")
                elif not _split_list(facts.users[user].get("schemas", "")):
                    report.error(host, f"user '{user}' has no schemas, which MyCat refuses "
                                       "in a whitehost")


# ----------------------------------------------------------------------------------------------
# rule.xml

_JAVA_CLASS = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+")
_FUNCTION_PACKAGE = "io.mycat.route.function."
_BUILTIN_FUNCTIONS = frozenset({
    "PartitionByMod", "PartitionByHashMod", "PartitionByLong", "AutoPartitionByLong",
    "PartitionByMurmurHash", "PartitionByFileMap", "PartitionByDate", "PartitionByMonth",
    "PartitionByString", "PartitionByPattern", "PartitionByPrefixPattern", "PartitionByHotDate",
    "PartitionByJumpConsistentHash", "PartitionByCRC32PreSlot", "PartitionDirectBySubString",
    "PartitionByRangeMod", "PartitionByRangeDateHash", "LatestMonthPartion",
})


def _check_rule_xml(root: _Element, report: _Report) -> _RuleFacts:
    facts = _RuleFacts()
    for function in root.iter("function"):
        _check_function(function, facts, report)
    for table_rule in root.iter("tableRule"):
        name = table_rule.attrs.get("name")
        if name is not None:
            facts.declared.add(name)
        for rule in table_rule.iter("rule"):
            columns = next((c for c in rule.iter("columns")), None)
            algorithm = next((a for a in rule.iter("algorithm")), None)
            column = function_name = None
            if columns is not None:
                column = columns.text.strip()
                if not column:
                    report.error(columns, "columns is empty")
                elif len(_split_list(column)) > 1:
                    report.error(columns, f"columns must name one column, got {column!r}")
            if algorithm is not None:
                function_name = algorithm.text.strip()
                if not function_name:
                    report.error(algorithm, "algorithm is empty")
                elif function_name not in facts.functions:
                    report.error(algorithm, f"algorithm '{function_name}' is not a defined "
                                            "function")
            if name is None or not column or not function_name:
                continue
            if name in facts.table_rules:
                report.error(table_rule, f"duplicate tableRule name '{name}'")
                continue
            facts.table_rules[name] = (column, function_name)
    return facts


def _check_function(function: _Element, facts: _RuleFacts, report: _Report) -> None:
    name = function.attrs.get("name")
    class_name = function.attrs.get("class", "").strip()
    properties = _properties(function, report, "function")
    if class_name:
        if not _JAVA_CLASS.fullmatch(class_name):
            report.error(function, f"class {class_name!r} is not a Java class name")
        elif class_name.startswith("org.opencloudb."):
            report.error(function, f"class {class_name!r} is from MyCat 1.5; 1.6 moved the "
                                   f"partition functions to {_FUNCTION_PACKAGE}")
        elif (class_name.startswith(_FUNCTION_PACKAGE)
              and class_name[len(_FUNCTION_PACKAGE):] not in _BUILTIN_FUNCTIONS):
            report.warning(function, f"class {class_name!r} is not a partition function "
                                     "built into MyCat 1.6")
        if class_name.rsplit(".", 1)[-1] in ("PartitionByMod", "PartitionByHashMod"):
            count = properties.get("count")
            number = _java_int(count) if count is not None else None
            if number is None or number < 1:
                report.error(_property_element(function, "count"),
                             f"{class_name.rsplit('.', 1)[-1]} needs property count, a positive "
                             f"integer, got {count!r}")
    if name is None or not name.strip():
        return
    if name in facts.functions:
        report.error(function, f"duplicate function name '{name}'")
        return
    facts.functions[name] = (class_name, properties)


# ----------------------------------------------------------------------------------------------
# Entry points


def validate_mycat(files: Mapping[str, bytes], prefix: str = "mycat/"
                   ) -> tuple[MycatModel | None, list[Problem]]:
    """Validate MyCat's three XML files from a bundle-like mapping of path -> bytes.

    Other files under ``prefix`` are ignored. Every problem found is returned; the model is
    None when a file is missing or cannot be parsed, otherwise it describes what was read
    (even if there are errors - callers decide with ``problems.errors``).
    """
    problems: list[Problem] = []
    parsed: dict[str, _Element] = {}
    reports: dict[str, _Report] = {}
    for file_name in (SCHEMA_XML, SERVER_XML, RULE_XML):
        path = prefix + file_name
        report = reports[file_name] = _Report(path, problems)
        data = files.get(path)
        if data is None:
            report.add("", "missing: MyCat 1.6 does not start without it")
            continue
        result = _parse(data, report)
        if result is not None and _check_document(*result, file_name, report):
            parsed[file_name] = result[0]
    rules = (_check_rule_xml(parsed[RULE_XML], reports[RULE_XML])
             if RULE_XML in parsed else None)
    schemas = (_check_schema_xml(parsed[SCHEMA_XML], rules, reports[SCHEMA_XML])
               if SCHEMA_XML in parsed else None)
    server = (_check_server_xml(parsed[SERVER_XML], schemas, files, prefix, reports[SERVER_XML])
              if SERVER_XML in parsed else None)
    problems.sort(key=_reading_order)
    if rules is None or schemas is None or server is None:
        return None, problems
    return _model(schemas, server, rules), problems


def _reading_order(problem: Problem) -> tuple[str, int]:
    """Problems were found check by check; present them file by file, top to bottom."""
    match = re.match(r"line (\d+)", problem.where)
    return problem.file, int(match.group(1)) if match else 0


def validate_mycat_dir(directory: Path, prefix: str = "mycat/"
                       ) -> tuple[MycatModel | None, list[Problem]]:
    """Validate the MyCat files of one conf directory; problems name them ``prefix + name``."""
    names = (SCHEMA_XML, SERVER_XML, RULE_XML, SEQUENCE_PROPERTIES)
    files = {prefix + name: (directory / name).read_bytes()
             for name in names if (directory / name).is_file()}
    return validate_mycat(files, prefix)


def _model(schemas: _SchemaFacts, server: _ServerFacts, rules: _RuleFacts) -> MycatModel:
    return MycatModel(
        schemas=_frozen({name: tuple(t.name for t in tables)
                         for name, tables in schemas.schemas.items()}),
        table_data_nodes=_frozen({name: _frozen({t.name: t.nodes for t in tables})
                                  for name, tables in schemas.schemas.items()}),
        data_nodes=_frozen(schemas.data_nodes),
        data_hosts=_frozen(schemas.data_hosts),
        data_host_settings=_frozen({name: _frozen(settings)
                                    for name, settings in schemas.data_host_settings.items()}),
        users=_frozen({name: _frozen(values) for name, values in server.users.items()}),
        table_rules=_frozen(rules.table_rules),
        functions=_frozen({name: (cls, _frozen(props))
                           for name, (cls, props) in rules.functions.items()}),
        system=_frozen(server.system),
        has_firewall=server.has_firewall,
        has_privileges=server.has_privileges,
    )
