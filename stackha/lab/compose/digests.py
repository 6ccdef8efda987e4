"""Which lab images are stale: each image carries the digest of what it was built from.

An image's digest covers its build context (and, for the base image, the stackha sources that
go into its wheel) plus the digest of the image it starts FROM, so a change anywhere rebuilds
exactly the images below it. Docker's own cache cannot tell: the wheel is rebuilt with new
timestamps every time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path

from stackha.lab.compose.render import IMAGE_DIGEST_LABEL, Image

LABEL = IMAGE_DIGEST_LABEL
PARENTS = {"image-node": "image-base", "image-mycat": "image-node"}
SKIP_DIRS = {"__pycache__", "wheels", ".stackha"}


def tree_files(root: Path, patterns: Iterable[str] = ("**/*",)) -> dict[str, bytes]:
    """Files below ``root`` by relative path, skipping caches and generated wheels."""
    found: dict[str, bytes] = {}
    for pattern in patterns:
        for path in root.glob(pattern):
            relative = path.relative_to(root)
            if path.is_file() and not SKIP_DIRS.intersection(relative.parts):
                found[relative.as_posix()] = path.read_bytes()
    return found


def digest_of(files: Mapping[str, bytes], *extra: str) -> str:
    """Pure: one sha256 over file names and contents (in name order) and extra strings."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    for value in extra:
        digest.update(b"\1" + value.encode())
    return digest.hexdigest()[:16]


def image_digests(images: Iterable[Image], contexts: Mapping[str, Mapping[str, bytes]],
                  source: Mapping[str, bytes], build_args: str = "") -> dict[str, str]:
    """Pure: the digest each image should carry; ``contexts`` by build-context name."""
    digests: dict[str, str] = {}
    for image in images:
        parent = digests.get(PARENTS.get(image.service, ""), "")
        extra = [parent, build_args if image.service == "image-mycat" else ""]
        files = dict(contexts.get(image.context, {}))
        if image.service == "image-base":
            files.update({f"src/{name}": data for name, data in source.items()})
        digests[image.service] = digest_of(files, *extra)
    return digests


def source_files(repo: Path) -> dict[str, bytes]:
    """What goes into the stackha wheel."""
    files = tree_files(repo, ("stackha/**/*.py",))
    files["pyproject.toml"] = (repo / "pyproject.toml").read_bytes()
    return files
