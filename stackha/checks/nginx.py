"""Run the real ``nginx -t`` on a set of nginx files in a throwaway prefix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from stackha.checks.nginxconf import code_loading_problems
from stackha.model.bundle import shipped_code_reason
from stackha.model.problems import Problem

# nginx prints "[emerg] PID#TID: reason in /path/file:LINE" (the reason may lack a location).
_LOCATION = re.compile(r"\[(emerg|alert|crit|error|warn)\] (?:\d+#\d+: )?(.*?)"
                       r"(?: in (\S+?):(\d+))?$")


def nginx_binary() -> str:
    return os.environ.get("STACKHA_NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


def _write_tree(root: Path, files: Mapping[str, bytes], strip: str) -> None:
    for path, content in files.items():
        target = root / path[len(strip):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)


def refuse_code(conf_dir: Path, display: Mapping[str, str] | None = None,
                conf_name: str = "nginx.conf") -> list[Problem]:
    """What must stop ``nginx -t`` from running on ``conf_dir`` at all: a shipped program or
    shared object anywhere in the tree, and any directive that loads code or any include
    leading out of the tree (see nginxconf)."""
    display = dict(display or {})
    root = conf_dir.resolve()

    def shown(relative: str) -> str:
        return display.get(str(root / relative), display.get(str(conf_dir / relative),
                                                             relative))

    problems = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        relative = path.relative_to(root).as_posix()
        with path.open("rb") as handle:
            head = handle.read(8)
        reason = shipped_code_reason(relative, head)
        if reason:
            problems.append(Problem(shown(relative), "", f"refused before nginx -t: {reason}"))
    for relative, line, reason in code_loading_problems(root, conf_name):
        problems.append(Problem(shown(relative), f"line {line}" if line else "",
                                f"refused before nginx -t: {reason}"))
    return problems


def check_nginx_dir(conf_dir: Path, display: Mapping[str, str] | None = None,
                    conf_name: str = "nginx.conf") -> list[Problem]:
    """``nginx -t`` on ``conf_dir/conf_name`` with ``conf_dir`` as prefix.

    ``display`` maps absolute paths nginx may print back to the names the user knows.
    """
    display = dict(display or {})
    refused = refuse_code(conf_dir, display, conf_name)
    if refused:
        return refused  # nginx -t would load it: it never runs on such a tree
    (conf_dir / "logs").mkdir(exist_ok=True)
    command = [nginx_binary(), "-t", "-q", "-e", "stderr", "-p", f"{conf_dir}/",
               "-c", str(conf_dir / conf_name)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        return [Problem(conf_name, "", f"nginx binary not found ({command[0]}); install nginx "
                                       "or set STACKHA_NGINX")]
    except subprocess.TimeoutExpired:
        return [Problem(conf_name, "", "nginx -t did not finish within 30 s")]
    if done.returncode == 0:
        return []
    problems = []
    for line in done.stderr.splitlines():
        match = _LOCATION.search(line.strip())
        if not match or match.group(1) == "warn":
            continue
        reason, file, line_no = match.group(2), match.group(3), match.group(4)
        shown = display.get(file or "", file or display.get(str(conf_dir / conf_name), conf_name))
        for absolute, name in display.items():
            reason = reason.replace(absolute, name)
        problems.append(Problem(shown, f"line {line_no}" if line_no else "",
                                f"nginx -t: {reason}"))
    if not problems:
        tail = done.stderr.strip().splitlines()[-1:] or ["no output"]
        problems.append(Problem(display.get(str(conf_dir / conf_name), conf_name), "",
                                f"nginx -t failed: {tail[0]}"))
    return problems


def check_nginx_files(files: Mapping[str, bytes], strip: str = "nginx/",
                      shown_prefix: str = "configs/") -> list[Problem]:
    """``nginx -t`` on bundle files such as ``nginx/nginx.conf``; names errors as the user's."""
    with tempfile.TemporaryDirectory(prefix="stackha-nginx-") as tmp:
        root = Path(tmp).resolve()
        _write_tree(root, files, strip)
        display = {str(root / p[len(strip):]): f"{shown_prefix}{p}" for p in files}
        return check_nginx_dir(root, display)
