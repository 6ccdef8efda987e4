"""Read ``configs/`` and validate all of it: the spec, the nginx files and the MyCat files.

Nothing here touches the store; the coordinator publishes only what passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from stackha.checks.nginx import check_nginx_files
from stackha.model.bundle import (
    ROLE_PREFIXES,
    SPEC_FILE,
    Bundle,
    invalid_utf8_offset,
    is_text_file,
)
from stackha.model.problems import WARNING, Problem, errors
from stackha.model.spec import MycatSpec, StackSpec, parse_spec
from stackha.mycat.validate import validate_mycat


@dataclass(frozen=True)
class ConfigSet:
    spec: StackSpec
    bundle: Bundle


def _shown(directory: Path) -> str:
    return f"{directory}/".replace("//", "/")


def collect_files(directory: Path) -> tuple[dict[str, bytes], list[Problem]]:
    """Every file a role needs, keyed by its path relative to ``directory``."""
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        return {}, [Problem(str(spec_path), "", "stack spec not found")]
    files[SPEC_FILE] = spec_path.read_bytes()
    for prefix in sorted(set(ROLE_PREFIXES.values())):
        root = directory / prefix.rstrip("/")
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.is_file():
                files[path.relative_to(directory).as_posix()] = path.read_bytes()
    for entry in sorted(directory.iterdir()):
        name = entry.name + ("/" if entry.is_dir() else "")
        if name != SPEC_FILE and name not in ROLE_PREFIXES.values() and not name.startswith("."):
            problems.append(Problem(str(entry), "", "not part of any role: not published",
                                    WARNING))
    return files, problems


def validate_files(files: dict[str, bytes], shown_prefix: str = "configs/"
                   ) -> tuple[StackSpec | None, list[Problem]]:
    """Validate bundle files (as collected, or as fetched from the store)."""
    # Agents and nginx/MyCat decode text strictly: one Latin-1 byte that passed here would
    # make every node refuse (or, before, crash on) the version.
    encoding = [Problem(f"{shown_prefix}{path}", f"byte {offset}", "not valid UTF-8")
                for path, offset in ((p, invalid_utf8_offset(c)) for p, c in sorted(files.items())
                                     if is_text_file(p))
                if offset is not None]
    spec_text = files.get(SPEC_FILE, b"").decode("utf-8", errors="replace")
    spec, problems = parse_spec(spec_text, f"{shown_prefix}{SPEC_FILE}")
    problems = encoding + problems
    roles = {role for node in spec.nodes for role in node.roles} if spec else set()
    nginx_files = {p: c for p, c in files.items() if p.startswith(ROLE_PREFIXES["nginx"])}
    mycat_files = {p: c for p, c in files.items() if p.startswith(ROLE_PREFIXES["mycat"])}
    if "nginx" in roles and "nginx/nginx.conf" not in nginx_files:
        problems.append(Problem(f"{shown_prefix}nginx/nginx.conf", "",
                                "missing, but the spec has nginx nodes"))
    elif nginx_files:
        problems += check_nginx_files(nginx_files, "nginx/", shown_prefix)
    if "mycat" in roles or mycat_files:
        # Without a readable spec the default release is the best guess; the spec's own
        # errors are reported anyway.
        version = spec.mycat.version if spec else MycatSpec.version
        _, mycat_problems = validate_mycat(mycat_files, prefix="mycat/", version=version)
        problems += [replace(p, file=f"{shown_prefix}{p.file}") for p in mycat_problems]
    return (spec if not errors(problems) else None), problems


def load_configs(directory: Path) -> tuple[ConfigSet | None, list[Problem]]:
    files, problems = collect_files(directory)
    if errors(problems):
        return None, problems
    spec, more = validate_files(files, _shown(directory))
    problems += more
    if spec is None or errors(problems):
        return None, problems
    return ConfigSet(spec, Bundle.from_contents(files)), problems
