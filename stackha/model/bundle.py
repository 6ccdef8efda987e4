"""A configuration version: every file with its checksum, serialised for the store.

What comes back from the store goes through ``parse_version``, which checks the format, the
paths and every checksum, and returns problems instead of raising on malformed data.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from stackha.model.grammar import name_reason
from stackha.model.problems import Problem

FORMAT = 1
SPEC_FILE = "stackha.yaml"
# Files that carry passwords are written 0600 on the nodes.
SECRET_FILES = frozenset({"mycat/server.xml", "mycat/schema.xml"})
ROLE_PREFIXES = {"nginx": "nginx/", "mycat": "mycat/"}
# Files stackha, nginx or MyCat read as text: they must be UTF-8, or a strict decode on a node
# fails. Other files (images under nginx/html, say) are published as bytes.
TEXT_SUFFIXES = (".yaml", ".yml", ".conf", ".types", ".xml", ".properties", ".txt")


def is_text_file(path: str) -> bool:
    return path == SPEC_FILE or path.endswith(TEXT_SUFFIXES)


def invalid_utf8_offset(data: bytes) -> int | None:
    """The offset of the first byte that is not valid UTF-8, or None if all of it is."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# Linux limits: NAME_MAX per component; the whole relative path is capped well below PATH_MAX
# so that target prefix + temporary names still fit.
MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024


def unsafe_path_reason(path: str) -> str | None:
    """Why a bundle path could escape its target directory or confuse a node, or None.

    Control characters are refused because node-side bookkeeping and logs are line based (a
    newline in a name once made a restarted agent read ``/etc/passwd`` as a managed file);
    over-long names would only fail later, half-way through writing a version.
    """
    if not path or path.startswith("/") or "\\" in path or "\0" in path:
        return "path must be relative, without backslashes or NUL"
    if any(ord(char) < 32 or ord(char) == 127 for char in path):
        return "path must not contain control characters (newline, tab, ...)"
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        return "path is not valid UTF-8"
    if len(encoded) > MAX_PATH_BYTES:
        return f"path is longer than {MAX_PATH_BYTES} bytes"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "path must not contain empty, '.' or '..' components"
    if any(len(part.encode("utf-8")) > MAX_COMPONENT_BYTES for part in parts):
        return f"a path component is longer than {MAX_COMPONENT_BYTES} bytes"
    if posixpath.normpath(path) != path:
        return "path is not normalised"
    return None


# Validation must run nothing a bundle ships (nginx -t dlopens load_module's file; MyCat's conf
# directory is on its classpath), and no node has a use for a shipped program: refused by
# content, whatever the name, and by the names of loadable code.
_MACH_O = "a Mach-O binary"
_CODE_MAGIC = ((b"\x7fELF", "an ELF executable or shared object"),
               (b"\xca\xfe\xba\xbe", "a Java class (or Mach-O) file"),
               (b"\xfe\xed\xfa\xce", _MACH_O), (b"\xfe\xed\xfa\xcf", _MACH_O),
               (b"\xce\xfa\xed\xfe", _MACH_O), (b"\xcf\xfa\xed\xfe", _MACH_O))
_CODE_NAME = re.compile(r".*\.(?:so(?:\.[0-9.]+)?|dll|dylib|exe|class|jar)", re.IGNORECASE)


def shipped_code_reason(path: str, content: bytes) -> str | None:
    """Why a bundle file is loadable code that must not be published, or None."""
    for magic, what in _CODE_MAGIC:
        if content.startswith(magic):
            return f"{_shown(path)} is {what}: bundles ship configuration, never code"
    if _CODE_NAME.fullmatch(path.rsplit("/", 1)[-1]):
        return f"{_shown(path)} is named like loadable code: bundles ship configuration only"
    return None


def _shown(path: str) -> str:
    """A path quoted for messages, control characters escaped: reasons are one line."""
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in path) + "'"


def path_conflicts(paths: Iterable[str]) -> list[str]:
    """Paths that are a file and also a directory of another path in the same set: no
    filesystem can hold both, so such a version can only fail half-way through."""
    wanted = set(paths)
    found: list[str] = []
    for path in sorted(wanted):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in wanted:
                found.append(f"'{prefix}' is a file and also a directory of '{path}'")
                break
    return found


def file_mode(path: str) -> int:
    return 0o600 if path in SECRET_FILES else 0o644


@dataclass(frozen=True)
class BundleFile:
    path: str
    content: bytes
    sha256: str
    mode: int

    @classmethod
    def of(cls, path: str, content: bytes) -> BundleFile:
        return cls(path, content, sha256_hex(content), file_mode(path))


@dataclass(frozen=True)
class Bundle:
    """The files of one configuration, keyed by their path relative to ``configs/``."""

    files: Mapping[str, BundleFile] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_contents(cls, contents: Mapping[str, bytes]) -> Bundle:
        return cls(MappingProxyType({p: BundleFile.of(p, contents[p]) for p in sorted(contents)}))

    def contents(self) -> dict[str, bytes]:
        """Path -> bytes: what ``from_contents`` was given."""
        return {path: file.content for path, file in self.files.items()}

    @property
    def digest(self) -> str:
        """Identifies the content: equal bundles have equal digests, whatever the metadata."""
        lines = "".join(f"{f.sha256}  {p}\n" for p, f in sorted(self.files.items()))
        return sha256_hex(lines.encode())

    def for_role(self, role: str) -> dict[str, BundleFile]:
        prefix = ROLE_PREFIXES.get(role)
        if prefix is None:
            return {}
        return {p: f for p, f in self.files.items() if p.startswith(prefix)}

    def text(self, path: str) -> str:
        """A file as text; never raises on bytes that are not UTF-8 (a version from the store
        may hold any): parse_version refuses a version whose spec is not UTF-8, and such
        bytes show as U+FFFD."""
        return self.files[path].content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class PartSignature:
    """One part's signature as the version document carries it (see stackha.trust.signing):
    untrusted text until a node has verified it against a key it pins."""

    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature


@dataclass(frozen=True)
class ConfigVersion:
    """One immutable, published version."""

    number: int
    bundle: Bundle
    created: str
    author: str
    message: str
    # Staged rollout (stackha.model.rollout): role -> the node that applies this version first.
    canaries: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # part ("spec", "nginx", "mycat") -> the coordinator's signature of that part.
    signatures: Mapping[str, PartSignature] = field(
        default_factory=lambda: MappingProxyType({}))
    # Roles whose files this reader's credential may not read (see model.versionparts): the
    # bundle holds every other file. A node must never apply a version withholding its role.
    withheld: frozenset[str] = frozenset()

    @property
    def digest(self) -> str:
        return self.bundle.digest


def _encode_content(content: bytes) -> dict[str, str]:
    try:
        return {"encoding": "utf-8", "content": content.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "content": base64.b64encode(content).decode()}


def serialise_version(version: ConfigVersion) -> bytes:
    files = {
        path: {"sha256": f.sha256, "mode": f"{f.mode:04o}", **_encode_content(f.content)}
        for path, f in sorted(version.bundle.files.items())
    }
    document: dict[str, Any] = {
        "format": FORMAT, "version": version.number, "created": version.created,
        "author": version.author, "message": version.message, "digest": version.digest,
        "files": files,
    }
    if version.canaries:
        document["rollout"] = {"canaries": dict(version.canaries)}
    if version.signatures:
        document["signatures"] = {part: {"key_id": s.key_id, "signature": s.signature}
                                  for part, s in sorted(version.signatures.items())}
    if version.withheld:
        document["withheld"] = sorted(version.withheld)
    return json.dumps(document, indent=1, sort_keys=True).encode()


def _decode_file(path: str, raw: Any, where: str) -> tuple[BundleFile | None, str | None]:
    if not isinstance(raw, dict):
        return None, "file entry is not an object"
    reason = unsafe_path_reason(path)
    if reason:
        return None, f"refused path {_shown(path)}: {reason}"
    encoding, content = raw.get("encoding"), raw.get("content")
    if not isinstance(content, str):
        return None, f"'{path}' has no content"
    try:
        data = base64.b64decode(content, validate=True) if encoding == "base64" \
            else content.encode("utf-8") if encoding == "utf-8" else None
    except ValueError:
        data = None
    if data is None:
        return None, f"'{path}' has an unreadable content encoding"
    if sha256_hex(data) != raw.get("sha256"):
        return None, f"'{path}' does not match its sha256 (tampered or corrupt)"
    return BundleFile.of(path, data), None


def parse_version(data: bytes, where: str) -> tuple[ConfigVersion | None, list[Problem]]:
    """Read a version from the store; any defect makes it unusable, reported not raised."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return None, [Problem(where, "", f"not a stackha version document: {exc}")]
    except RecursionError:
        return None, [Problem(where, "", "not a stackha version document: nested too deeply")]
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        return None, [Problem(where, "format", f"unsupported format (want {FORMAT})")]
    problems: list[Problem] = []
    files: dict[str, bytes] = {}
    raw_files = document.get("files")
    if not isinstance(raw_files, dict):
        return None, [Problem(where, "files", "missing file list")]
    for path, raw in raw_files.items():
        decoded, reason = _decode_file(str(path), raw, where)
        if reason:
            problems.append(Problem(where, f"files.{_shown(path)[1:-1]}", reason))
        elif decoded is not None:
            files[decoded.path] = decoded.content
    offset = invalid_utf8_offset(files[SPEC_FILE]) if SPEC_FILE in files else None
    if offset is not None:
        problems.append(Problem(where, f"files.{SPEC_FILE}",
                                f"byte {offset}: not valid UTF-8"))
    number = document.get("version")
    if not isinstance(number, int) or isinstance(number, bool) or number < 1:
        problems.append(Problem(where, "version", "missing or invalid version number"))
    problems.extend(Problem(where, "files", f"refused: {conflict}")
                    for conflict in path_conflicts(files))
    if problems:
        return None, problems
    bundle = Bundle.from_contents(files)
    if document.get("digest") != bundle.digest:
        return None, [Problem(where, "digest", "bundle digest does not match its files")]
    return ConfigVersion(
        number=number, bundle=bundle, created=str(document.get("created", "")),
        author=str(document.get("author", "")), message=str(document.get("message", "")),
        canaries=_canaries(document.get("rollout")),
        signatures=_signatures(document.get("signatures")),
        withheld=_withheld(document.get("withheld")),
    ), []


def _withheld(raw: Any) -> frozenset[str]:
    return frozenset(r for r in raw if isinstance(r, str)) if isinstance(raw, list) \
        else frozenset()


def _canaries(rollout: Any) -> Mapping[str, str]:
    """The rollout's canaries; anything malformed means none (every node applies at once),
    which is what a version from before staged rollouts means too."""
    raw = rollout.get("canaries") if isinstance(rollout, dict) else None
    if not isinstance(raw, dict):
        return MappingProxyType({})
    # A canary's name becomes the znode status/<canary> that other nodes read: only names of
    # the spec's grammar count.
    return MappingProxyType({role: node for role, node in raw.items()
                             if isinstance(role, str) and isinstance(node, str)
                             and name_reason(node) is None})


def _signatures(raw: Any) -> Mapping[str, PartSignature]:
    """The parts' signatures. Nothing here is trusted or refused: a malformed entry becomes
    an empty signature (which verifies against no key), so the node's refusal names the part
    instead of the document failing to parse."""
    if not isinstance(raw, dict):
        return MappingProxyType({})
    found = {}
    for part, entry in raw.items():
        if not isinstance(part, str):
            continue
        entry = entry if isinstance(entry, dict) else {}
        key, signature = entry.get("key_id"), entry.get("signature")
        found[part] = PartSignature(key if isinstance(key, str) else "",
                                    signature if isinstance(signature, str) else "")
    return MappingProxyType(found)
