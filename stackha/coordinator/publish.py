"""The coordinator: publish validated configuration as versions, read history, roll back.

Every publication (``push-config``, ``config rollback``, ``stackha up``) goes through
``Coordinator.push``: canaries chosen once, one guarded transaction, retried on a race.
``publish_configs`` is the whole of ``push-config``: validate ``configs/``, then push.
"""

from __future__ import annotations

import difflib
import getpass
import logging
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from stackha.coordinator.configset import ConfigSet, load_configs
from stackha.model.bundle import (
    SPEC_FILE,
    Bundle,
    ConfigVersion,
    serialise_version,
    shipped_code_reason,
)
from stackha.model.problems import Problem, errors
from stackha.model.rollout import choose_canaries
from stackha.model.spec import StackSpec, parse_spec
from stackha.mycat.manager import system_changes
from stackha.store.base import ConcurrentChange, ConfigStore, StoreError, VersionUnreadable
from stackha.store.mycatzk import MycatLayoutWrite, layout_write_for
from stackha.trust.signing import PARTS, SigningKey, TrustedKeys, sign_parts, verify_parts

log = logging.getLogger(__name__)

PUSH_ATTEMPTS = 5
MASK = "******"
# Both quote styles XML allows, spaces around '=' included.
_XML_PASSWORD_PROPERTY = re.compile(
    r"""(<property\s+name\s*=\s*(["'])password\2\s*>)([^<]*)(</property>)""")
_XML_PASSWORD_ATTRIBUTE = re.compile(r"""(\bpassword\s*=\s*(["']))(.*?)(\2)""")
_KEY_VALUE_PASSWORD = re.compile(
    r"(?im)^(\s*[\w.-]*(?:password|passwd|secret)[\w.-]*\s*[=:]\s*)(\S.*)$")


def mask_secrets(text: str) -> str:
    """Hide passwords in MyCat XML, property files and YAML before anything is shown."""
    text = _XML_PASSWORD_PROPERTY.sub(rf"\g<1>{MASK}\g<4>", text)
    text = _XML_PASSWORD_ATTRIBUTE.sub(rf"\g<1>{MASK}\g<4>", text)
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
    # What was found broken in the store and published over, one line each.
    damage: tuple[str, ...] = ()
    # server.xml <system> properties this version changes: MyCat takes them at its next start.
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepairResult:
    damage: tuple[str, ...]   # one line each: bad current, unreadable versions, dangling current
    before: int | None        # what current held (None: nothing or unreadable)
    after: int | None         # what it holds now
    changed: bool


def _republish_problems(bundle: Bundle) -> list[Problem]:
    problems = [Problem(path, "", reason) for path, f in sorted(bundle.files.items())
                if (reason := shipped_code_reason(path, f.content))]
    if SPEC_FILE in bundle.files:
        problems += parse_spec(bundle.text(SPEC_FILE), SPEC_FILE)[1]
    return problems


def _spec_in(bundle: Bundle) -> StackSpec | None:
    if SPEC_FILE not in bundle.files:
        return None
    spec, _ = parse_spec(bundle.text(SPEC_FILE), SPEC_FILE)
    return spec


def _mycat_layout_of(bundle: Bundle, spec: StackSpec | None) -> MycatLayoutWrite | None:
    """MyCat's ZooKeeper layout as an older version had it (rollback restores it too)."""
    if spec is None:
        return None
    write, _ = layout_write_for(spec, bundle.contents())
    return write


@dataclass(frozen=True)
class Signer:
    """What the coordinator signs versions with: its key (read from its own disk, never from
    the store) and the cluster every signature is bound to."""

    key: SigningKey
    cluster: str
    # Besides the signing key's own: keys whose old versions a rollback may re-publish.
    also_trusted: TrustedKeys = field(default_factory=lambda: TrustedKeys.of([]))

    @property
    def trusted(self) -> TrustedKeys:
        return TrustedKeys.of([self.key.public, *self.also_trusted.keys.values()])


class UntrustedVersion(StoreError):
    """A rollback target that no trusted key signed: re-signing it would launder it."""


class Coordinator:
    def __init__(self, store: ConfigStore, staged: bool = True, signer: Signer | None = None):
        self.store = store
        # Staged: each version names canaries (stackha.model.rollout); otherwise all nodes at once.
        self.staged = staged
        # None: versions go out unsigned (only agents run with --allow-unsigned apply them).
        self.signer = signer

    def canaries_for(self, spec: StackSpec | None) -> dict[str, str]:
        if not self.staged or spec is None:
            return {}
        try:
            statuses = self.store.statuses()
        except StoreError as exc:  # without canaries every node applies at once: still valid
            log.warning("event=canary_choice_failed reason=%r", str(exc))
            return {}
        return choose_canaries(spec, statuses)

    def version(self, number: int) -> ConfigVersion:
        version = self.store.read_version(number)
        if version is None:
            raise StoreError(f"version {number} does not exist")
        return version

    def current(self) -> ConfigVersion | None:
        number = self.store.current_number()
        return self.version(number) if number else None

    def _current_for_push(self) -> tuple[int | None, ConfigVersion | None, list[str]]:
        """Current's number (what publish is guarded on), its version when readable, and what
        is damaged: a damaged current is published over, not a reason to refuse forever."""
        pointer = self.store.current_pointer()
        damage = [pointer.damage] if pointer.damage else []
        if pointer.number is None:
            return None, None, damage
        try:
            version = self.store.read_version(pointer.number)
        except VersionUnreadable as exc:
            damage.append(f"{self.store.version_location(pointer.number)}: current version "
                          f"{pointer.number} is unreadable: {exc}")
            return pointer.number, None, damage
        if version is None:
            damage.append(f"{pointer.location}: points to version {pointer.number}, which "
                          "does not exist")
        return pointer.number, version, damage

    def push(self, bundle: Bundle, message: str, author: str | None = None,
             dry_run: bool = False, mycat: MycatLayoutWrite | None = None,
             spec: StackSpec | None = None) -> PushResult:
        """Publish ``bundle``; ``mycat`` (MyCat's own ZooKeeper layout) goes in the same
        transaction. ``spec``: the bundle's, when the caller has parsed it already."""
        author = author or default_author()
        canaries = {} if dry_run else self.canaries_for(spec or _spec_in(bundle))

        signer = self.signer

        def document(number: int) -> bytes:
            # Signed here, once the number is known: each signature binds it.
            signatures = sign_parts(signer.key, signer.cluster, number, bundle) \
                if signer is not None else {}
            return serialise_version(ConfigVersion(number, bundle, now_utc(), author, message,
                                                   canaries, signatures))

        for _attempt in range(PUSH_ATTEMPTS):
            previous, current, damage = self._current_for_push()
            for line in damage:
                log.warning("event=store_damage found=%r", line)
            if current is not None and current.digest == bundle.digest:
                return PushResult("unchanged", previous, previous, "", damage=tuple(damage))
            diff = bundle_diff(current.bundle if current else None, bundle,
                               f"v{previous}" if current else "empty", "new")
            restart = system_changes(current.bundle.contents(), bundle.contents()) \
                if current else ()
            if dry_run:
                return PushResult("dry-run", None, previous, diff, damage=tuple(damage),
                                  restart_needed=restart)
            try:
                number = (self.store.publish(document, previous, mycat) if mycat is not None
                          else self.store.publish(document, previous))
            except ConcurrentChange as exc:
                log.info("event=push_retry reason=%s", str(exc).replace(" ", "_"))
                continue
            return PushResult("published", number, previous, diff, canaries, tuple(damage),
                              restart)
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

    def repair(self, dry_run: bool = False) -> RepairResult:
        """Report damage; point a bad, dangling or unreadable current at the newest readable
        version (none: 0, as before the first push). A readable current is left alone."""
        pointer = self.store.current_pointer()
        damage = [pointer.damage] if pointer.damage else []
        readable: list[int] = []
        unreadable: set[int] = set()
        for number in self.store.version_numbers():
            try:
                version = self.store.read_version(number)
            except VersionUnreadable as exc:
                unreadable.add(number)
                damage.append(f"{self.store.version_location(number)}: version {number} is "
                              f"unreadable: {exc}")
                continue
            if version is not None:
                readable.append(number)
        if pointer.number is not None and pointer.number in unreadable:
            damage.append(f"{pointer.location}: points to unreadable version {pointer.number}")
        elif pointer.number is not None and pointer.number not in readable:
            damage.append(f"{pointer.location}: points to version {pointer.number}, which "
                          "does not exist")
        good = pointer.number in readable or (pointer.number is None and not pointer.damage)
        target = max(readable) if readable else None
        if good or pointer.revision is None or dry_run:
            return RepairResult(tuple(damage), pointer.number, pointer.number, False)
        self.store.set_current(target or 0, pointer)
        log.warning("event=current_repaired before=%s after=%s", pointer.number or "-",
                    target or "-")
        return RepairResult(tuple(damage), pointer.number, target, True)

    def rollback(self, number: int, author: str | None = None) -> PushResult:
        old = self.version(number)
        if self.signer is not None:
            # Someone with the store's credential may have written version N: signing it
            # again as a new version would make the nodes apply what they refused.
            reason = verify_parts(self.signer.trusted, self.signer.cluster, number, PARTS,
                                  old.bundle, old.signatures)
            if reason is not None:
                raise UntrustedVersion(f"version {number} is not signed by a trusted key "
                                       f"({reason}); nothing published (--trusted-key adds "
                                       "an older key)")
        # A version in the store may predate today's grammar or have been planted: it is
        # republished only if its spec parses and it ships no code (nginx -t is not rerun).
        problems = [p for p in _republish_problems(old.bundle) if p.is_error]
        if problems:
            raise ConfigRejected(f"version {number} cannot be republished", problems)
        spec = _spec_in(old.bundle)
        return self.push(old.bundle, f"rollback to version {number}", author,
                         mycat=_mycat_layout_of(old.bundle, spec), spec=spec)


def mycat_layout(configset: ConfigSet, configs: Path
                 ) -> tuple[MycatLayoutWrite | None, list[Problem]]:
    """MyCat's own ZooKeeper layout when the spec enables it, with what it cannot carry."""
    files = configset.bundle.contents()
    write, problems = layout_write_for(configset.spec, files)
    return write, [replace(p, file=f"{configs}/{p.file}") for p in problems]


class ConfigRejected(Exception):
    """``configs/`` did not validate: nothing was published. ``problems`` says why."""

    def __init__(self, reason: str, problems: list[Problem]):
        super().__init__(reason)
        self.problems = problems


def publish_configs(configs: Path, zk_override: str | None, message: str, *,
                    dry_run: bool = False, staged: bool = True,
                    on_problems: Callable[[list[Problem]], None] | None = None,
                    signing_key: SigningKey | None = None) -> PushResult:
    """Validate ``configs`` and publish it: what ``push-config`` and ``stackha up`` run.

    ``signing_key``: every version is signed with it (None: published unsigned).

    ``on_problems`` is told the warnings (and errors) as soon as they are known; invalid
    configuration raises ConfigRejected before the store is opened.
    """
    from stackha.store.connect import open_store

    configset, problems = load_configs(configs)
    if configset is None:
        raise ConfigRejected(f"{configs}: {len(errors(problems))} error(s), nothing published",
                             problems)
    mycat, layout_problems = mycat_layout(configset, configs)
    if errors(layout_problems):
        raise ConfigRejected(f"{configs}: MyCat's ZooKeeper layout cannot be built, nothing "
                             "published", problems + layout_problems)
    if on_problems is not None:
        on_problems(problems + layout_problems)
    store = open_store(configset.spec, zk_override, "coordinator")
    try:
        if not dry_run:
            store.ensure_layout()  # refuses a tree that is not the coordinator's alone
        signer = Signer(signing_key, configset.spec.cluster) if signing_key else None
        return Coordinator(store, staged=staged, signer=signer).push(
            configset.bundle, message, dry_run=dry_run, mycat=mycat, spec=configset.spec)
    finally:
        store.close()
