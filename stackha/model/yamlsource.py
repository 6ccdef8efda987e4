"""Load YAML while remembering where every field came from, so errors can name a line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from stackha.model.problems import Problem

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Bounds on what one document may cost. The example spec is 2.5 KB, about 150 nodes and no
# alias; a 100-node cluster's spec stays under 100 KB and 10,000 nodes. A 493-byte alias bomb
# composes in microseconds (aliases are shared nodes) but expands to ~10^9 nodes when walked,
# which took the agent to 1.6 GiB; the caps refuse it before anything walks the expansion.
MAX_DOCUMENT_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_EXPANDED_NODES = 100_000
# libyaml itself refuses flow nesting past 1000 levels; block nesting is bounded here, far
# above the spec's 6 levels and below Python's recursion limit (the constructor recurses).
MAX_DEPTH = 100


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


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def graph_problem(root: yaml.Node, file: str) -> Problem | None:
    """Why the composed node graph is too costly to construct or walk, or None.

    An alias is a second reference to a node already composed, so the graph is walked once
    (linear in what the text holds) while the size of its expansion is summed per node."""
    expanded: dict[int, int] = {}
    on_path: set[int] = set()
    aliases = 0
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]

    def refuse(node: yaml.Node, reason: str) -> Problem:
        return Problem(file, f"line {node.start_mark.line + 1}", reason)

    while stack:
        node, depth, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(c)] for c in _children(node))
            if expanded[key] > MAX_EXPANDED_NODES:
                return refuse(node, f"YAML aliases expand this document past "
                                    f"{MAX_EXPANDED_NODES} nodes (alias bomb?): refused")
            continue
        if key in expanded:
            aliases += 1
            if aliases > MAX_ALIASES:
                return refuse(node, f"more than {MAX_ALIASES} YAML aliases: refused")
            continue
        if key in on_path:
            return refuse(node, "recursive YAML alias (an anchor used inside itself): refused")
        if depth > MAX_DEPTH:
            return refuse(node, f"nested deeper than {MAX_DEPTH} levels: refused")
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node))
    return None


def load_yaml(text: str, file: str) -> tuple[YamlDocument | None, list[Problem]]:
    """Parse ``text``; a syntax error or an over-large document comes back as a Problem with
    its line, never raised."""
    problems: list[Problem] = []
    size = len(text) if len(text) > MAX_DOCUMENT_BYTES else len(
        text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        return None, [Problem(file, "line 1", f"document is {size} bytes, over the "
                                              f"{MAX_DOCUMENT_BYTES} byte limit: refused")]
    try:
        # One pass, with libyaml when PyYAML has it: the agent parses the spec on every
        # version, and pure-Python parsing twice costs ~29 ms of CPU for 100 nodes.
        loader = _LOADER(text)
        try:
            root = loader.get_single_node()
            refused = graph_problem(root, file) if root is not None else None
            if refused is not None:
                return None, [refused]
            value = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except RecursionError:
        return None, [Problem(file, "line 1", "YAML nested too deeply: refused")]
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
