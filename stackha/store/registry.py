"""The agents' digest registry: which ZooKeeper identity each node is, without passwords.

One line per node, ``<node> <user>:<base64(sha1(user:password))>`` (``#`` starts a comment):
what ZooKeeper's digest scheme stores in an ACL, so the coordinator can name each node in
the tree's ACLs without ever holding a node's password. ``issue`` makes a node's credential
(a random password), writes it to a 0600 file for that node alone and records its digest;
issuing again rotates it.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from kazoo.security import make_digest_acl_credential

from stackha.store.base import StoreError

REGISTRY_ENV = "STACKHA_AGENT_REGISTRY"
_DIGEST = re.compile(r"^[^\s:]+:[A-Za-z0-9+/]{27}=$")
_NODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True)
class Registry:
    path: str
    digests: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def user_of(self, node: str) -> str | None:
        digest = self.digests.get(node)
        return digest.split(":", 1)[0] if digest else None


def parse_registry(text: str, source: str) -> Registry:
    digests: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        node, _, digest = line.partition(" ")
        digest = digest.strip()
        if not _NODE.match(node) or not _DIGEST.match(digest):
            raise StoreError(f"{source}: line {number}: want '<node> <user>:<digest>'")
        if node in digests:
            raise StoreError(f"{source}: line {number}: node {node} listed twice")
        digests[node] = digest
    return Registry(source, MappingProxyType(digests))


def registry_path(option: str | None) -> Path | None:
    value = option or os.environ.get(REGISTRY_ENV)
    return Path(value) if value else None


def read_registry(path: Path) -> Registry:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Registry(str(path))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the agent registry: {exc.strerror}") from exc
    return parse_registry(text, str(path))


def _write_atomically(path: Path, data: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, mode)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_registry(registry: Registry, path: Path) -> None:
    lines = ["# stackha agent registry: node and ZooKeeper digest (no passwords)"]
    lines += [f"{node} {digest}" for node, digest in sorted(registry.digests.items())]
    _write_atomically(path, "\n".join(lines) + "\n", 0o644)


def issue(node: str, registry_file: Path, credential_file: Path) -> str:
    """A fresh credential for ``node`` (user = node name) written to ``credential_file``
    (0600) and its digest recorded in ``registry_file``; returns the digest."""
    if not _NODE.match(node):
        raise StoreError(f"node name {node!r}: letters, digits, '.', '_' and '-' only")
    password = secrets.token_urlsafe(32)
    digest = make_digest_acl_credential(node, password)
    registry = read_registry(registry_file)
    # The credential first: a registry naming a digest nobody holds would lock the node out.
    _write_atomically(credential_file, f"{node}:{password}\n", 0o600)
    write_registry(Registry(registry.path, MappingProxyType({**registry.digests, node: digest})),
                   registry_file)
    return digest
