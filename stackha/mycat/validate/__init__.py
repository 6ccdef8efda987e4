"""Strict validation of MyCat 1.6 configuration: schema.xml, server.xml and rule.xml.

MyCat 1.6 reads these files with a validating XML parser against the grammars bundled in its
jar, then cross-checks names while loading; any violation stops it from starting. A node that
receives such a version would lose its proxy, so every rule MyCat enforces at start-up is
restated here (in our own terms) and checked before a version is published or applied.

Everything found is reported, one line per finding, instead of stopping at the first.

The package, bottom up: ``grammar`` (parsing, the findings report, value types and the element
and attribute grammar of all three files), ``model`` (what the files define, for callers),
``rules``, ``schema`` and ``server`` (each file's loader checks, in the order they depend on
each other) and, here, the entry points.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from stackha.model.problems import Problem
from stackha.mycat.validate.grammar import (
    DEFAULT_MYCAT_VERSION,
    MAX_EXPANDED_NAMES,
    MYCAT_VERSIONS,
    RULE_XML,
    SCHEMA_XML,
    SERVER_XML,
    Element,
    Report,
    check_document,
    expand_names,
    parse,
)
from stackha.mycat.validate.model import DbInstance, MycatModel
from stackha.mycat.validate.rules import RuleFacts, check_rule_xml
from stackha.mycat.validate.schema import SchemaFacts, check_schema_xml
from stackha.mycat.validate.server import (
    SEQUENCE_PROPERTIES,
    ServerFacts,
    check_sequences,
    check_server_xml,
)

__all__ = [
    "DEFAULT_MYCAT_VERSION",
    "MAX_EXPANDED_NAMES",
    "MYCAT_VERSIONS",
    "DbInstance",
    "MycatModel",
    "expand_names",
    "validate_mycat",
    "validate_mycat_dir",
]


def validate_mycat(files: Mapping[str, bytes], prefix: str = "mycat/",
                   version: str = DEFAULT_MYCAT_VERSION
                   ) -> tuple[MycatModel | None, list[Problem]]:
    """Validate MyCat's three XML files from a bundle-like mapping of path -> bytes.

    Other files under ``prefix`` are ignored. Every problem found is returned; the model is
    None when a file is missing or cannot be parsed, otherwise it describes what was read
    (even if there are errors - callers decide with ``problems.errors``). ``version`` is
    the MyCat release the files are for (the spec's mycat.version).
    """
    if version not in MYCAT_VERSIONS:
        raise ValueError(f"unknown MyCat version {version!r}; known: {', '.join(MYCAT_VERSIONS)}")
    problems: list[Problem] = []
    parsed: dict[str, Element] = {}
    reports: dict[str, Report] = {}
    for file_name in (SCHEMA_XML, SERVER_XML, RULE_XML):
        path = prefix + file_name
        report = reports[file_name] = Report(path, problems)
        data = files.get(path)
        if data is None:
            report.add("", "missing: MyCat 1.6 does not start without it")
            continue
        result = parse(data, report)
        if result is not None and check_document(*result, file_name, report, version):
            parsed[file_name] = result[0]
    rules = (check_rule_xml(parsed[RULE_XML], reports[RULE_XML], files, prefix)
             if RULE_XML in parsed else None)
    schemas = (check_schema_xml(parsed[SCHEMA_XML], rules, reports[SCHEMA_XML])
               if SCHEMA_XML in parsed else None)
    server = (check_server_xml(parsed[SERVER_XML], schemas, files, prefix, reports[SERVER_XML])
              if SERVER_XML in parsed else None)
    check_sequences(files, prefix, Report(prefix + SEQUENCE_PROPERTIES, problems))
    problems.sort(key=_reading_order)
    if rules is None or schemas is None or server is None:
        return None, problems
    return _model(schemas, server, rules), problems


def _reading_order(problem: Problem) -> tuple[str, int]:
    """Problems were found check by check; present them file by file, top to bottom."""
    match = re.match(r"line (\d+)", problem.where)
    return problem.file, int(match.group(1)) if match else 0


def validate_mycat_dir(directory: Path, prefix: str = "mycat/",
                       version: str = DEFAULT_MYCAT_VERSION
                       ) -> tuple[MycatModel | None, list[Problem]]:
    """Validate the MyCat files of one conf directory; problems name them ``prefix + name``."""
    # Every file: map files and sequence files are read by the checks that need them.
    files = {prefix + path.name: path.read_bytes()
             for path in sorted(directory.iterdir()) if path.is_file()}
    return validate_mycat(files, prefix, version)


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


def _model(schemas: SchemaFacts, server: ServerFacts, rules: RuleFacts) -> MycatModel:
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
