"""The layout holds: every import inside ``stackha/`` goes down a layer (or stays in its own
package), there is no import circle, the client libraries stay where they belong, and the
agent loads nothing of the lab."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "stackha"

# Lower number = lower layer. A module may import its own part and lower layers only;
# parts on the same layer (e.g. agent and coordinator) do not import each other.
LAYERS = {
    "stackha": 0, "stackha.logs": 0, "stackha.model": 0,
    "stackha.checks": 1, "stackha.trust": 1,
    "stackha.keepalived": 2, "stackha.lvs": 2, "stackha.mycat": 2,
    "stackha.store": 3,
    "stackha.coordinator": 4, "stackha.agent": 4,
    "stackha.lab": 5,
    "stackha.cli": 6,
}
ALIASES = {"stackha.__main__": "stackha.cli"}  # ``python -m stackha`` is the command line
# Third-party libraries and the one part of stackha allowed to import each.
CONFINED = {"kazoo": "stackha.store", "docker": "stackha.lab", "mysql_mimic": "stackha.lab",
            "matplotlib": "stackha.lab"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def part_of(module: str) -> str:
    module = ALIASES.get(module, module)
    pieces = module.split(".")
    for length in (2, 1):
        candidate = ".".join(pieces[:length])
        if candidate in LAYERS:
            return candidate
    raise AssertionError(f"{module}: in no layer of the table above; add it")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module ``path`` imports (module level and inside functions), made absolute."""
    tree = ast.parse(path.read_text(), str(path))
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module))
            # ``from stackha.cli import agent`` imports the module stackha.cli.agent
            for alias in node.names:
                candidate = f"{module}.{alias.name}"
                if (PACKAGE.parent / (candidate.replace(".", "/") + ".py")).exists():
                    found.append((node.lineno, candidate))
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_every_import_goes_down_a_layer():
    wrong = []
    for module, path in sorted(all_modules().items()):
        mine = part_of(module)
        for line, target in imports_of(path):
            if not target.startswith("stackha"):
                continue
            theirs = part_of(target)
            if theirs != mine and (LAYERS[theirs] >= LAYERS[mine]) and theirs != "stackha":
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mine} (layer "
                             f"{LAYERS[mine]}) imports {target} (layer {LAYERS[theirs]})")
    assert wrong == []


def test_no_import_circle():
    modules = all_modules()
    graph = {m: sorted({t for _, t in imports_of(p) if t in modules and t != m})
             for m, p in modules.items()}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                circles.append([*trail[trail.index(nxt):], nxt] if nxt in trail else [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_client_libraries_stay_in_their_layer():
    wrong = []
    for module, path in sorted(all_modules().items()):
        for line, target in imports_of(path):
            library = target.split(".")[0]
            owner = CONFINED.get(library)
            if owner is not None and not (module == owner or module.startswith(owner + ".")):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: imports {target} "
                             f"(only {owner} may)")
    assert wrong == []


def test_the_layer_check_sees_a_wrong_import(tmp_path):
    """The check itself can fail: an upward import written into a model module is found."""
    probe = PACKAGE / "model" / "_layer_probe.py"
    probe.write_text("from stackha.agent.core import Agent\nimport kazoo\n")
    try:
        assert any("stackha.agent.core" in line for line in _upward(probe))
    finally:
        probe.unlink()


def _upward(path: Path) -> list[str]:
    mine = part_of(module_name(path))
    return [t for _, t in imports_of(path)
            if t.startswith("stackha") and LAYERS[part_of(t)] > LAYERS[mine]]


def test_the_agent_loads_nothing_of_the_lab():
    """``python -X importtime -m stackha agent --help`` lists every module the agent's
    command line imports."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "stackha", "agent",
                          "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr[-2000:]
    loaded = {line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines()
              if line.startswith("import time:")}
    assert "stackha.agent.core" in loaded  # the listing is real
    forbidden = sorted(m for m in loaded
                       if m.split(".")[0] in ("docker", "mysql_mimic", "matplotlib")
                       or m.startswith("stackha.lab"))
    assert forbidden == []
