"""A version document split for storage: one manifest every agent reads, one part per role.

The coordinator serialises a version as one document (``bundle.serialise_version``); the
store keeps it as a manifest (the spec, author, message, rollout, and per role the list and
digest of its files) plus one part per role holding that role's files, so that each part can
carry its own ACL. ``merge_document`` puts back what one reader could read into the one
document ``parse_version`` understands, with the roles it could not read named as withheld.

Integrity runs manifest -> part digest -> each file's sha256 -> content, so a part that does
not belong to its manifest is refused. Signatures (a map role -> signature in the document)
travel with their role's part; any other signature stays in the manifest.
Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from stackha.model.bundle import ROLE_PREFIXES, sha256_hex
from stackha.model.problems import Problem

PARTS_KEY = "parts"
WITHHELD_KEY = "withheld"
SIGNATURES_KEY = "signatures"


def _role_of(path: str) -> str | None:
    return next((role for role, prefix in ROLE_PREFIXES.items() if path.startswith(prefix)),
                None)


def part_digest(entries: Mapping[str, Any]) -> str:
    """Over the declared sha256 of each file (as ``Bundle.digest`` is over the real ones)."""
    lines = "".join(f"{e.get('sha256') if isinstance(e, dict) else ''}  {p}\n"
                    for p, e in sorted(entries.items()))
    return sha256_hex(lines.encode())


def split_document(payload: bytes) -> tuple[bytes, dict[str, bytes]]:
    """A serialised version -> (manifest, role -> part). Roles without files get no part."""
    document = json.loads(payload.decode("utf-8"))
    files: dict[str, Any] = document.pop("files", {})
    signatures = document.pop(SIGNATURES_KEY, None)
    by_role: dict[str, dict[str, Any]] = {}
    shared: dict[str, Any] = {}
    for path, entry in files.items():
        role = _role_of(path)
        (by_role.setdefault(role, {}) if role else shared)[path] = entry
    parts: dict[str, bytes] = {}
    index: dict[str, Any] = {}
    for role, entries in sorted(by_role.items()):
        part: dict[str, Any] = {"role": role, "version": document.get("version"),
                                "files": entries}
        if isinstance(signatures, dict) and role in signatures:
            part["signature"] = signatures[role]
        parts[role] = json.dumps(part, indent=1, sort_keys=True).encode()
        index[role] = {"digest": part_digest(entries), "files": sorted(entries)}
    rest = ({k: v for k, v in signatures.items() if k not in by_role}
            if isinstance(signatures, dict) else signatures)
    if rest:
        document[SIGNATURES_KEY] = rest
    document["files"] = shared
    document[PARTS_KEY] = index
    return json.dumps(document, indent=1, sort_keys=True).encode(), parts


def part_names(manifest: bytes) -> list[str]:
    """The roles a manifest has parts for; [] when it is not a manifest (an older, whole
    document) or not readable (parse_version then says why)."""
    try:
        document = json.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return []
    index = document.get(PARTS_KEY) if isinstance(document, dict) else None
    return sorted(r for r in index if isinstance(r, str)) if isinstance(index, dict) else []


def merge_document(manifest: bytes, parts: Mapping[str, bytes | None], where: str
                   ) -> tuple[bytes | None, list[Problem]]:
    """The one document of what was readable; ``parts[role]`` None: not readable here."""
    try:
        document = json.loads(manifest.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return manifest, []  # parse_version reports it
    if not isinstance(document, dict) or not isinstance(document.get(PARTS_KEY), dict):
        return manifest, []  # a whole document from before the split
    index = document.pop(PARTS_KEY)
    files = document.get("files")
    if not isinstance(files, dict):
        return manifest, []
    if any(_role_of(str(p)) for p in files):
        return None, [Problem(where, "files", "manifest holds files of a role")]
    signatures = document.get(SIGNATURES_KEY)
    signatures = dict(signatures) if isinstance(signatures, dict) else {}
    withheld: list[str] = []
    problems: list[Problem] = []
    for role, entry in sorted(index.items()):
        raw = parts.get(role)
        if raw is None:
            withheld.append(str(role))
            continue
        try:
            part = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            problems.append(Problem(where, f"parts.{role}", f"unreadable part: {exc}"))
            continue
        entries = part.get("files") if isinstance(part, dict) else None
        if not isinstance(entries, dict) or not isinstance(entry, dict):
            problems.append(Problem(where, f"parts.{role}", "part has no file list"))
            continue
        if any(_role_of(str(p)) != role for p in entries):
            problems.append(Problem(where, f"parts.{role}", "part holds another role's file"))
            continue
        if part.get("version") != document.get("version") \
                or entry.get("digest") != part_digest(entries):
            problems.append(Problem(where, f"parts.{role}",
                                    "part does not match its manifest (tampered or mixed)"))
            continue
        files.update(entries)
        if "signature" in part:
            signatures[role] = part["signature"]
    if problems:
        return None, problems
    if signatures:
        document[SIGNATURES_KEY] = signatures
    if withheld:
        # The whole bundle's digest cannot be checked without every part: each part was
        # checked against the manifest instead; parse_version checks every file's sha256.
        document["digest"] = part_digest(files)
        document[WITHHELD_KEY] = withheld
    return json.dumps(document, sort_keys=True).encode(), []
