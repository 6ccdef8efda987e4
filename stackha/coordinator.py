"""The coordinator: publish validated configuration as versions, read history, roll back."""

from __future__ import annotations

import difflib
import getpass
import logging
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .agent.status import parse_status
from .bundle import SPEC_FILE, Bundle, ConfigVersion, parse_version, serialise_version
from .problems import Problem
from .rollout import choose_canaries
from .spec import StackSpec, parse_spec
from .store.base import ConcurrentChange, ConfigStore, StoreError
from .store.mycatzk import MycatLayoutWrite, layout_write_for

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
MASK = "******"
_XML_PASSWORD_PROPERTY = re.compile(r'(<property\s+name="password"\s*>)([^<]*)(</property>)')
_XML_PASSWORD_ATTRIBUTE = re.compile(r'(\bpassword\s*=\s*")([^"]*)(")')
_KEY_VALUE_PASSWORD = re.compile(
    r"(?im)^(\s*[\w.-]*(?:password|passwd|secret)[\w.-]*\s*[=:]\s*)(\S.*)$")


def mask_secrets(text: str) -> str:
    """Hide passwords in MyCat XML, property files and YAML before anything is shown."""
    text = _XML_PASSWORD_PROPERTY.sub(rf"\g<1>{MASK}\g<3>", text)
    text = _XML_PASSWORD_ATTRIBUTE.sub(rf"\g<1>{MASK}\g<3>", text)
    return _KEY_VALUE_PASSWORD.sub(rf"\g<1>{MASK}", text)


def default_author() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def bundle_diff(old: Bundle | None, new: Bundle, old_label: str, new_label: str,
                show_secrets: bool = False) -> str:
    """A unified diff of two bundles, passwords masked unless asked."""
    old_files = dict(old.files) if old else {}
    chunks: list[str] = []
    for path in sorted(set(old_files) | set(new.files)):
        before = old_files[path].content if path in old_files else b""
        after = new.files[path].content if path in new.files else b""
        if before == after:
            continue
        texts = [b.decode("utf-8", errors="replace") for b in (before, after)]
        if not show_secrets:
            texts = [mask_secrets(t) for t in texts]
        chunks.extend(difflib.unified_diff(
            texts[0].splitlines(keepends=True), texts[1].splitlines(keepends=True),
            fromfile=f"{old_label}/{path}" if path in old_files else "/dev/null",
            tofile=f"{new_label}/{path}" if path in new.files else "/dev/null"))
    return "".join(line if line.endswith("\n") else line + "\n" for line in chunks)


@dataclass(frozen=True)
class PushResult:
    outcome: str  # "published", "unchanged" or "dry-run"
    number: int | None
    previous: int | None
    diff: str
    canaries: Mapping[str, str] = field(default_factory=dict)


def _spec_in(bundle: Bundle) -> StackSpec | None:
    if SPEC_FILE not in bundle.files:
        return None
    spec, _ = parse_spec(bundle.text(SPEC_FILE), SPEC_FILE)
    return spec


def _mycat_layout_of(bundle: Bundle, spec: StackSpec | None) -> MycatLayoutWrite | None:
    """MyCat's ZooKeeper layout as an older version had it (rollback restores it too)."""
    if spec is None:
        return None
    write, _ = layout_write_for(spec, {p: f.content for p, f in bundle.files.items()})
    return write


class VersionUnreadable(StoreError):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class Coordinator:
    def __init__(self, store: ConfigStore, staged: bool = True):
        self.store = store
        # Staged: each version names canaries (stackha.rollout); otherwise all nodes at once.
        self.staged = staged

    def canaries_for(self, spec: StackSpec | None) -> dict[str, str]:
        if not self.staged or spec is None:
            return {}
        try:
            raw = self.store.statuses()
        except StoreError as exc:  # without canaries every node applies at once: still valid
            log.warning("event=canary_choice_failed reason=%r", str(exc))
            return {}
        statuses = {node: status for node, data in raw.items()
                    if (status := parse_status(node, data)) is not None}
        return choose_canaries(spec, statuses)

    def version(self, number: int) -> ConfigVersion:
        data = self.store.read_version(number)
        if data is None:
            raise StoreError(f"version {number} does not exist")
        version, problems = parse_version(data, f"version {number}")
        if version is None:
            raise VersionUnreadable(problems)
        return version

    def current(self) -> ConfigVersion | None:
        number = self.store.current_number()
        return self.version(number) if number else None

    def push(self, bundle: Bundle, message: str, author: str | None = None,
             dry_run: bool = False, mycat: MycatLayoutWrite | None = None,
             spec: StackSpec | None = None) -> PushResult:
        """Publish ``bundle``; ``mycat`` (MyCat's own ZooKeeper layout) goes in the same
        transaction. ``spec``: the bundle's, when the caller has parsed it already."""
        author = author or default_author()
        canaries = {} if dry_run else self.canaries_for(spec or _spec_in(bundle))

        def document(number: int) -> bytes:
            return serialise_version(ConfigVersion(number, bundle, now_utc(), author, message,
                                                   canaries))

        for _attempt in range(PUSH_ATTEMPTS):
            current = self.current()
            previous = current.number if current else None
            if current is not None and current.digest == bundle.digest:
                return PushResult("unchanged", previous, previous, "")
            diff = bundle_diff(current.bundle if current else None, bundle,
                               f"v{previous}" if previous else "empty", "new")
            if dry_run:
                return PushResult("dry-run", None, previous, diff)
            try:
                number = (self.store.publish(document, previous, mycat) if mycat is not None
                          else self.store.publish(document, previous))
            except ConcurrentChange as exc:
                log.info("event=push_retry reason=%s", str(exc).replace(" ", "_"))
                continue
            return PushResult("published", number, previous, diff, canaries)
        raise ConcurrentChange(f"gave up after {PUSH_ATTEMPTS} attempts: other coordinators "
                               "keep publishing")

    def history(self) -> list[ConfigVersion | list[Problem]]:
        entries: list[ConfigVersion | list[Problem]] = []
        for number in self.store.version_numbers():
            try:
                entries.append(self.version(number))
            except VersionUnreadable as exc:
                entries.append(exc.problems)
        return entries

    def rollback(self, number: int, author: str | None = None) -> PushResult:
        old = self.version(number)
        spec = _spec_in(old.bundle)
        return self.push(old.bundle, f"rollback to version {number}", author,
                         mycat=_mycat_layout_of(old.bundle, spec), spec=spec)
