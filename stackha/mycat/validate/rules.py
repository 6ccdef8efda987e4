"""rule.xml: what MyCat's rule loader checks after the grammar (tableRules and functions)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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
_BUILTIN_FUNCTIONS = frozenset({
    "PartitionByMod", "PartitionByHashMod", "PartitionByLong", "AutoPartitionByLong",
    "PartitionByMurmurHash", "PartitionByFileMap", "PartitionByDate", "PartitionByMonth",
    "PartitionByString", "PartitionByPattern", "PartitionByPrefixPattern", "PartitionByHotDate",
    "PartitionByJumpConsistentHash", "PartitionByCRC32PreSlot", "PartitionDirectBySubString",
    "PartitionByRangeMod", "PartitionByRangeDateHash", "LatestMonthPartion",
})


@dataclass
class RuleFacts:
    table_rules: dict[str, tuple[str, str]] = field(default_factory=dict)
    # Every tableRule name declared, broken or not, so a broken rule is reported once (in
    # rule.xml) rather than again as "not defined" by each table using it.
    declared: set[str] = field(default_factory=set)
    functions: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def check_rule_xml(root: Element, report: Report) -> RuleFacts:
    facts = RuleFacts()
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
                elif len(split_list(column)) > 1:
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


def _check_function(function: Element, facts: RuleFacts, report: Report) -> None:
    name = function.attrs.get("name")
    class_name = function.attrs.get("class", "").strip()
    properties = read_properties(function, report, "function")
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
            number = java_int(count) if count is not None else None
            if number is None or number < 1:
                report.error(property_element(function, "count"),
                             f"{class_name.rsplit('.', 1)[-1]} needs property count, a positive "
                             f"integer, got {count!r}")
    if name is None or not name.strip():
        return
    if name in facts.functions:
        report.error(function, f"duplicate function name '{name}'")
        return
    facts.functions[name] = (class_name, properties)


def partition_count(function_class: str, properties: Mapping[str, str]) -> int | None:
    """How many partitions a function routes to, for the built-ins where that is simple."""
    short = function_class.rsplit(".", 1)[-1]
    if short in ("PartitionByMod", "PartitionByHashMod"):
        return java_int(properties.get("count", "").strip())
    return None
