"""Pure: whether a name from the spec or the store can safely become a file name."""

from __future__ import annotations

import re

# A node name becomes a file name (render --all), a znode name (status/<node>) and part of
# log lines: letters, digits, dot, dash and underscore, starting with a letter or digit.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def safe_file_name(name: str) -> str | None:
    """None when ``name`` is a plain file name; otherwise why it is not."""
    if not _NAME.fullmatch(name) or name in (".", ".."):
        return "not a plain name (letters, digits, '.', '-', '_'; at most 63)"
    return None
