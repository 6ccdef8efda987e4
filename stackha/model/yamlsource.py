"""Load YAML while remembering where every field came from, so errors can name a line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from stackha.model.problems import Problem

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class YamlDocument:
    """A YAML document's plain value plus a map from field path to 1-based line number."""

    file: str
    value: Any
    lines: dict[str, int] = field(default_factory=dict)

    def line_of(self, path: str) -> int | None:
        # A missing field is reported at its nearest existing parent.
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.lines.get("", 1)

    def problem(self, path: str, reason: str, severity: str = "error") -> Problem:
        line = self.line_of(path)
        where = f"line {line}: {path}" if path else f"line {line}"
        return Problem(self.file, where, reason, severity)


def child_path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else str(key)


def _record_lines(node: yaml.Node, path: str, lines: dict[str, int], doc_file: str,
                  problems: list[Problem]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            sub = child_path(path, key)
            if key in seen:
                problems.append(Problem(doc_file, f"line {key_node.start_mark.line + 1}: {sub}",
                                        "duplicate key"))
            seen.add(key)
            _record_lines(value_node, sub, lines, doc_file, problems)
            lines[sub] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, child_path(path, index), lines, doc_file, problems)


def load_yaml(text: str, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse ``text``; a syntax error comes back as a Problem with its line, never raised."""
    problems: list[Problem] = []
    try:
        # One pass, with libyaml when PyYAML has it: the agent parses the spec on every
        # version, and pure-Python parsing twice costs ~29 ms of CPU for 100 nodes.
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            value = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        reason = " ".join(str(exc.problem or exc).split())
        return None, [Problem(file, f"line {line}", f"YAML syntax error: {reason}")]
    except yaml.YAMLError as exc:
        return None, [Problem(file, "", f"YAML error: {' '.join(str(exc).split())}")]
    lines: dict[str, int] = {}
    if root is not None:
        _record_lines(root, "", lines, file, problems)
    return YamlDocument(file, value, lines), problems
