"""Pure: whether a name from the spec or the store can safely become a file name."""

from __future__ import annotations

from stackha.model.grammar import name_reason


def safe_file_name(name: str) -> str | None:
    """None when ``name`` is a plain file name (a node name of the spec's grammar, so also a
    znode name and a keepalived word); otherwise why it is not."""
    reason = name_reason(name)
    return f"not a plain name ({reason.removeprefix('must be ')})" if reason else None
