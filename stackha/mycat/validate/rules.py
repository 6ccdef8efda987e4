"""rule.xml: what MyCat's rule loader checks after the grammar (tableRules and functions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from stackha.mycat.validate.grammar import (
    Element,
    Report,
    java_int,
    property_element,
    read_properties,
    split_list,
)

_JAVA_CLASS = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)+")
_FUNCTION_PACKAGE = "io.mycat.route.function."
# The partition functions in MyCat 1.6.6.1's jar, with their properties MyCat converts to a
# Java int (anything else there stops MyCat: NumberFormatException). A class outside this list
# is refused: MyCat would need it on its classpath, and stackha ships no jars.
_INT = "int"
_BUILTIN_FUNCTIONS: Mapping[str, Mapping[str, str]] = {
    "PartitionByMod": {"count": _INT},
    "PartitionByHashMod": {"count": _INT},
    "PartitionByMurmurHash": {"seed": _INT, "count": _INT, "virtualBucketTimes": _INT},
    "PartitionByJumpConsistentHash": {"totalBuckets": _INT},
    "PartitionByFileMap": {"type": _INT, "defaultNode": _INT},
    "AutoPartitionByLong": {"defaultNode": _INT},
    "PartitionByPattern": {"patternValue": _INT, "defaultNode": _INT},
    "PartitionByPrefixPattern": {"patternValue": _INT, "prefixLength": _INT},
    "PartitionByRangeMod": {"defaultNode": _INT},
    "PartitionByString": {"hashLength": _INT},
    "LatestMonthPartion": {"splitOneDay": _INT},
    "PartitionByLong": {}, "PartitionByDate": {}, "PartitionByMonth": {},
    "PartitionByHotDate": {}, "PartitionByRangeDateHash": {}, "PartitionByMonthAndHistory": {},
    "PartitionDirectBySubString": {}, "PartitionByCRC32PreSlot": {},
}
# Functions that read a file from MyCat's conf/ (or its jar) when they start.
_MAP_FILE_FUNCTIONS = frozenset({"PartitionByFileMap", "AutoPartitionByLong", "PartitionByPattern",
                                 "PartitionByPrefixPattern", "PartitionByRangeMod"})
# The map files MyCat 1.6.6.1 ships in conf/ and in its jar: a function may name them
# without the config set carrying them.
SHIPPED_MAP_FILES = frozenset({"auto-sharding-long.txt", "auto-sharding-rang-mod.txt",
                               "autopartition-long.txt", "partition-hash-int.txt",
                               "partition-range-mod.txt", "sharding-by-enum.txt"})
# PartitionByLong splits 1024 slots: the partitions' lengths must add up to exactly that.
_LONG_SLOTS = 1024
# Java SimpleDateFormat letters stackha can check, in strptime terms.
_DATE_LETTERS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}


@dataclass
class RuleFacts:
    table_rules: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Every tableRule name declared, broken or not, so a broken rule is reported once (in
    # rule.xml) rather than again as "not defined" by each table using it.
    declared: set[str] = field(default_factory=set)
    functions: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def check_rule_xml(root: Element, report: Report,
                   files: Mapping[str, bytes] | None = None, prefix: str = "mycat/") -> RuleFacts:
    facts = RuleFacts()
    for function in root.iter("function"):
        _check_function(function, facts, report, files or {}, prefix)
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
                elif len(split_list(column)) > 1:
                    report.error(columns, f"columns must name one column, got {column!r}")
            if algorithm is not None:
                # MyCat looks the name up as written: " mod3 " is not mod3.
                function_name = algorithm.text
                if not function_name.strip():
                    report.error(algorithm, "algorithm is empty")
                elif function_name not in facts.functions:
                    report.error(algorithm, f"algorithm {function_name!r} is not a defined "
                                            "function (MyCat does not trim the name)")
            if name is None or not column or not function_name:
                continue
            if name in facts.table_rules:
                report.error(table_rule, f"duplicate tableRule name '{name}'")
                continue
            facts.table_rules[name] = (column, function_name)
    return facts


def _check_function(function: Element, facts: RuleFacts, report: Report,
                    files: Mapping[str, bytes], prefix: str) -> None:
    name = function.attrs.get("name")
    # MyCat hands the class name to Class.forName as written, spaces included.
    class_name = function.attrs.get("class", "")
    properties = read_properties(function, report, "function")
    if class_name:
        short = class_name[len(_FUNCTION_PACKAGE):]
        if not _JAVA_CLASS.fullmatch(class_name):
            report.error(function, f"class {class_name!r} is not a Java class name")
        elif class_name.startswith("org.opencloudb."):
            report.error(function, f"class {class_name!r} is from MyCat 1.5; 1.6 moved the "
                                   f"partition functions to {_FUNCTION_PACKAGE}")
        elif not class_name.startswith(_FUNCTION_PACKAGE) or short not in _BUILTIN_FUNCTIONS:
            report.error(function, f"class {class_name!r} is not a partition function of "
                                   f"MyCat 1.6 (known: {_FUNCTION_PACKAGE}"
                                   f"{{{', '.join(sorted(_BUILTIN_FUNCTIONS))}}})")
        else:
            _check_function_properties(function, short, properties, files, prefix, report)
    if name is None or not name.strip():
        return
    if name in facts.functions:
        report.error(function, f"duplicate function name '{name}'")
        return
    facts.functions[name] = (class_name, properties)


def _check_function_properties(function: Element, short: str, properties: Mapping[str, str],
                               files: Mapping[str, bytes], prefix: str,
                               report: Report) -> None:
    for key, kind in _BUILTIN_FUNCTIONS[short].items():
        if kind == _INT and key in properties and java_int(properties[key]) is None:
            report.error(property_element(function, key),
                         f"{short} property '{key}' must be an integer, got {properties[key]!r}")
    if short in ("PartitionByMod", "PartitionByHashMod"):
        count = properties.get("count")
        number = java_int(count) if count is not None else None
        if number is None or number < 1:
            # MyCat loads it, then divides by the count (0 when missing) on every insert.
            report.error(property_element(function, "count"),
                         f"{short} needs property count, a positive integer, got {count!r}")
    if short == "PartitionByLong":
        _check_long_partitions(function, properties, report)
    if short in _MAP_FILE_FUNCTIONS:
        map_file = properties.get("mapFile", "")
        if map_file not in SHIPPED_MAP_FILES and (prefix + map_file) not in files:
            report.error(property_element(function, "mapFile"),
                         f"{short} reads mapFile {map_file!r}, which is neither in the config "
                         "set nor shipped with MyCat")
    if short == "PartitionByDate":
        _check_dates(function, properties, report)


def _int_list(value: str) -> list[int] | None:
    numbers = [java_int(item.strip()) for item in value.split(",")]
    return None if any(n is None for n in numbers) else [n for n in numbers if n is not None]


def _check_long_partitions(function: Element, properties: Mapping[str, str],
                           report: Report) -> None:
    counts = _int_list(properties.get("partitionCount", ""))
    lengths = _int_list(properties.get("partitionLength", ""))
    if counts is None or lengths is None or len(counts) != len(lengths):
        report.error(function, "PartitionByLong needs partitionCount and partitionLength, "
                               "comma-separated integer lists of the same length")
        return
    slots = sum(c * n for c, n in zip(counts, lengths, strict=True))
    if slots != _LONG_SLOTS:
        report.error(function, f"PartitionByLong covers {slots} slots "
                               f"(sum of partitionCount x partitionLength); MyCat needs "
                               f"exactly {_LONG_SLOTS}")


def _check_dates(function: Element, properties: Mapping[str, str], report: Report) -> None:
    pattern = properties.get("dateFormat", "")
    converted = pattern
    for letters, directive in _DATE_LETTERS.items():
        converted = converted.replace(letters, directive)
    if re.search(r"[A-Za-z]", re.sub(r"%[YmdHMS]", "", converted)):
        report.error(property_element(function, "dateFormat"),
                     f"PartitionByDate dateFormat {pattern!r}: stackha can check only "
                     f"{', '.join(_DATE_LETTERS)}")
        return
    for key in ("sBeginDate", "sEndDate"):
        if key not in properties:
            continue
        try:
            datetime.strptime(properties[key], converted)
        except ValueError:
            report.error(property_element(function, key),
                         f"PartitionByDate {key} {properties[key]!r} does not match dateFormat "
                         f"{pattern!r}")
    if java_int(properties.get("sPartionDay", "")) is None:
        report.error(property_element(function, "sPartionDay"),
                     "PartitionByDate needs sPartionDay, a whole number of days")


def partition_count(function_class: str, properties: Mapping[str, str]) -> int | None:
    """How many partitions a function routes to, for the built-ins where that is simple."""
    short = function_class.rsplit(".", 1)[-1]
    if short in ("PartitionByMod", "PartitionByHashMod", "PartitionByMurmurHash"):
        return java_int(properties.get("count", "").strip())
    if short == "PartitionByJumpConsistentHash":
        return java_int(properties.get("totalBuckets", "").strip())
    if short == "PartitionByLong":
        counts = _int_list(properties.get("partitionCount", ""))
        return sum(counts) if counts else None
    return None
