"""The wheelhouse the base image installs from: stackha and its dependencies, built on the host.

The image build reaches no Python index, so the host's pip (with this machine's index and
mirror settings) builds every wheel into the base image's build context. stackha itself is
built from a copy of its sources, leaving no build/ directory in the work tree.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from stackha.lab.compose.backend import LabError

log = logging.getLogger(__name__)


def build_wheelhouse(repo: Path, target: Path, python: str = sys.executable) -> list[str]:
    """Fill ``target`` with wheels for stackha and everything it needs; returns their names."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="stackha-wheel-") as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        shutil.copy2(repo / "pyproject.toml", source / "pyproject.toml")
        shutil.copytree(repo / "stackha", source / "stackha",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        # The images run agents and mycat-standin: the core plus the stand-in's extra.
        command = [python, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(target),
                   f"{source}[standin]"]
        done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        detail = [line for line in done.stderr.splitlines() if "is ignored" not in line]
        raise LabError("building the wheelhouse failed: pip wheel exited "
                       f"{done.returncode}: {' '.join(detail[-3:]) or 'no output'}")
    names = sorted(p.name for p in target.glob("*.whl"))
    log.info("event=wheelhouse_built wheels=%d target=%s", len(names), target)
    return names
