"""Where the lab's compose files are.

``compose/compose.yaml`` is committed: the rendering of ``configs/`` with the default
options, a golden file that a unit test keeps true and that shows what the lab runs.
``stackha up`` renders the lab it brings up into ``compose/.stackha/compose.yaml`` (ignored by
git, beside the lab's credentials) and runs compose with ``compose/`` as the project
directory. Writing the committed file instead left the checkout changed after every
``stackha up --mycat-tarball`` (the release's lines differ), and the golden test then failed
in the ``make test`` that follows ``make up``.
"""

from __future__ import annotations

from pathlib import Path

COMPOSE_FILE = "compose.yaml"
PRIVATE_DIR = ".stackha"


def running_compose_file(compose_dir: Path) -> Path:
    """The file ``stackha up`` writes and runs."""
    return compose_dir / PRIVATE_DIR / COMPOSE_FILE


def lab_compose_file(compose_dir: Path) -> Path:
    """The running lab's file; the committed one for a lab an earlier stackha brought up
    from it (same network, same services)."""
    running = running_compose_file(compose_dir)
    return running if running.exists() else compose_dir / COMPOSE_FILE
