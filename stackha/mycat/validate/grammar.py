"""The checks MyCat's validating XML parser makes, shared by the three files' checks.

Parsing (well-formedness, with nothing read outside the given bytes), the findings report,
MyCat's value types (Java integers and booleans, name lists with ``$start-end`` ranges,
``<property>`` lists) and the grammar: which elements and attributes each file may hold, in
which order and how often, and what type each attribute has. ``check_document`` applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from xml.parsers import expat

from stackha.model.problems import ERROR, WARNING, Problem

SCHEMA_XML = "schema.xml"
SERVER_XML = "server.xml"
RULE_XML = "rule.xml"
NAMESPACE = "http://io.mycat/"
ROOTS = {SCHEMA_XML: "mycat:schema", SERVER_XML: "mycat:server", RULE_XML: "mycat:rule"}

# Expanding "dn$0-99999999" would exhaust memory long before MyCat complained.
MAX_EXPANDED_NAMES = 10_000


# ----------------------------------------------------------------------------------------------
# Parsing: expat without any access outside the given bytes


@dataclass(eq=False)
class Element:
    tag: str
    attrs: dict[str, str]
    line: int
    parent: Element | None = None
    children: list[Element] = field(default_factory=list)
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

    def iter(self, tag: str) -> Iterator[Element]:
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


def parse(data: bytes, report: Report) -> tuple[Element, _Doctype | None] | None:
    parser = expat.ParserCreate()
    # External DTDs and entities are never fetched: MyCat uses the grammar inside its own jar
    # whatever the DOCTYPE says, and a config file must not make us read files or the network.
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    stack: list[Element] = []
    roots: list[Element] = []
    doctypes: list[_Doctype] = []

    def start(tag: str, attrs: dict[str, str]) -> None:
        parent = stack[-1] if stack else None
        node = Element(tag, dict(attrs), parser.CurrentLineNumber, parent)
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
class Report:
    file: str
    problems: list[Problem]

    def add(self, where: str, reason: str, severity: str = ERROR) -> None:
        # Names and values come from the file and may hold line breaks; findings stay one line.
        self.problems.append(Problem(self.file, _one_line(where), _one_line(reason), severity))

    def error(self, node: Element, reason: str) -> None:
        self.add(node.where(), reason)

    def warning(self, node: Element, reason: str) -> None:
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


def java_int(value: str, bits: int = 32) -> int | None:
    """The value as Java's Integer/Long.parseInt reads it, or None where that would throw."""
    if not _INT.fullmatch(value):
        return None
    number = int(value)
    limit = 1 << (bits - 1)
    return number if -limit <= number < limit else None


def is_java_bool(value: str) -> bool:
    return value.lower() in ("true", "false")


def report_duplicates(elements: Iterable[Element], attribute: str, what: str,
                      report: Report, where: str = "") -> None:
    """An error on each of ``elements`` whose ``attribute`` an earlier one already has
    (``duplicate WHAT 'value'`` and ``where``, e.g. `` in this dataHost``)."""
    seen: set[str] = set()
    for element in elements:
        value = element.attrs.get(attribute)
        if value is None:
            continue
        if value in seen:
            report.error(element, f"duplicate {what} '{value}'{where}")
        seen.add(value)


def split_list(value: str) -> tuple[str, ...]:
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
    # Declared NMTOKEN in MyCat's DTD: the parser trims the value and it must be one name
    # token, whatever MyCat then reads it as (a boolean, a choice).
    token: bool = False


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
_BOOLEAN = _Attr(kind="bool", allow_empty=False, token=True)
_REQUIRED_BOOLEAN = _Attr(required=True, kind="bool", allow_empty=False, token=True)
_TABLE_TYPE = _Attr(kind="choice", choices=("global", "normal"), allow_empty=False, token=True)
_DECRYPT = _Attr(kind="choice", choices=("0", "1"))
_NAMESPACE = _Attr(kind="fixed", choices=(NAMESPACE,))
_PROPERTY = _ElementRule({"name": _REQUIRED_TOKEN}, text=True)
_MANY = None

# MyCat 1.6.6.1's schema.dtd declares weight on readHost only.
_WRITE_HOST_ATTRS = {
    "host": _REQUIRED_TOKEN, "url": _REQUIRED, "user": _REQUIRED,
    "password": _Attr(required=True), "usingDecrypt": _DECRYPT,
}
_READ_HOST_ATTRS = {**_WRITE_HOST_ATTRS, "weight": _INTEGER}

_SCHEMA_GRAMMAR: Mapping[str, _ElementRule] = {
    "mycat:schema": _ElementRule(
        {"xmlns:mycat": _NAMESPACE},
        (("schema", 0, _MANY), ("dataNode", 0, _MANY), ("dataHost", 0, _MANY))),
    "schema": _ElementRule(
        {"name": _REQUIRED_TOKEN, "checkSQLschema": _BOOLEAN, "sqlMaxLimit": _INTEGER,
         "dataNode": _TEXT},
        (("table", 0, _MANY),)),
    "table": _ElementRule(
        {"name": _REQUIRED, "dataNode": _REQUIRED, "rule": _TOKEN, "ruleRequired": _BOOLEAN,
         "primaryKey": _TOKEN, "autoIncrement": _BOOLEAN, "needAddLimit": _BOOLEAN,
         "type": _TABLE_TYPE, "subTables": _TEXT,
         "nameSuffix": _TEXT},
        (("childTable", 0, _MANY),)),
    "childTable": _ElementRule(
        {"name": _REQUIRED_TOKEN, "joinKey": _REQUIRED_TOKEN, "parentKey": _REQUIRED_TOKEN,
         "primaryKey": _TOKEN, "autoIncrement": _BOOLEAN},
        (("childTable", 0, _MANY),)),
    "dataNode": _ElementRule({"name": _REQUIRED, "dataHost": _REQUIRED, "database": _REQUIRED}),
    "dataHost": _ElementRule(
        {"name": _REQUIRED_TOKEN, "balance": _REQUIRED_INTEGER, "maxCon": _REQUIRED_INTEGER,
         "minCon": _REQUIRED_INTEGER, "dbType": _REQUIRED, "dbDriver": _REQUIRED,
         "writeType": _INTEGER, "switchType": _INTEGER, "slaveThreshold": _INTEGER,
         "tempReadHostAvailable": _INTEGER, "maxRetryCount": _INTEGER, "filters": _TEXT,
         "logTime": _INTEGER, "slaveIDs": _TEXT},
        (("heartbeat", 1, 1), ("connectionInitSql", 0, 1), ("writeHost", 1, _MANY))),
    "heartbeat": _ElementRule(text=True),
    "connectionInitSql": _ElementRule(text=True),
    "writeHost": _ElementRule(_WRITE_HOST_ATTRS, (("readHost", 0, _MANY),)),
    "readHost": _ElementRule(_READ_HOST_ATTRS),
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

# The MyCat releases stackha knows; the grammar above is 1.6.6.1's (its jar's DTDs).
MYCAT_VERSIONS = ("1.6.6.1", "1.6.7")
DEFAULT_MYCAT_VERSION = "1.6.6.1"
# Attributes 1.6.7's schema.dtd adds; 1.6.6.1's validating parser refuses the whole file.
_ADDED_IN_1_6_7: Mapping[str, Mapping[str, _Attr]] = {
    "dataHost": {"notSwitch": _TEXT, "balanceType": _TEXT},
    "childTable": {"needAddLimit": _BOOLEAN},
}


def grammar_for(file_name: str, version: str) -> Mapping[str, _ElementRule]:
    grammar = GRAMMARS[file_name]
    if version == DEFAULT_MYCAT_VERSION or file_name != SCHEMA_XML:
        return grammar
    extended = dict(grammar)
    for tag, extra in _ADDED_IN_1_6_7.items():
        rule = grammar[tag]
        extended[tag] = _ElementRule({**rule.attrs, **extra}, rule.children, rule.text)
    return extended

# Elements people carry over from older MyCat releases, with what 1.6 wants instead.
_RETIRED = {
    "quarantine": "<quarantine> was replaced by <firewall> in MyCat 1.6",
}


def check_document(root: Element, doctype: _Doctype | None, file_name: str,
                   report: Report, version: str = DEFAULT_MYCAT_VERSION) -> bool:
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
    _check_element(root, grammar_for(file_name, version), report)
    return True


def _check_element(node: Element, grammar: Mapping[str, _ElementRule],
                   report: Report) -> None:
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


def _check_content(node: Element, rule: _ElementRule, report: Report) -> list[Element]:
    """Check the children against the ordered content model; returns the known children."""
    order = [tag for tag, _, _ in rule.children]
    counts = dict.fromkeys(order, 0)
    position = 0
    known: list[Element] = []
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


def _check_attributes(node: Element, attrs: Mapping[str, _Attr], report: Report) -> None:
    for name in node.attrs:
        if name not in attrs:
            report.error(node, f"unknown attribute '{name}' on <{node.tag}>")
    for name, spec in attrs.items():
        if name not in node.attrs:
            if spec.required:
                report.error(node, f"missing required attribute '{name}' on <{node.tag}>")
            continue
        value = node.attrs[name]
        if spec.kind == "nmtoken" or spec.token:
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
    if (spec.kind == "nmtoken" or spec.token) and not _NMTOKEN.fullmatch(value):
        return f"must be a single name token (letters, digits, '.', '-', '_'), got {value!r}"
    if spec.kind == "int" and java_int(value) is None:
        return f"must be an integer, got {value!r}"
    if spec.kind == "bool" and not is_java_bool(value):
        return f"must be true or false, got {value!r}"
    if spec.kind == "choice" and value.lower() not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}, got {value!r}"
    if spec.kind == "fixed" and value != spec.choices[0]:
        return f"must be {spec.choices[0]!r} for MyCat 1.6, got {value!r}"
    return None


# ----------------------------------------------------------------------------------------------
# <property> lists, as MyCat reads them into a map


def read_properties(element: Element, report: Report, what: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for prop in element.iter("property"):
        name = prop.attrs.get("name")
        if name is None:
            continue
        if name in values:
            report.warning(prop, f"{what} property '{name}' is set twice; the last one wins")
        values[name] = prop.text.strip()
    return values


def property_element(element: Element, name: str) -> Element:
    """The (last) <property> that set ``name``, to point at it; the parent if none did."""
    return next((p for p in reversed(element.children)
                 if p.tag == "property" and p.attrs.get("name") == name), element)
