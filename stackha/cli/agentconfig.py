"""``/etc/stackha/agent.yaml``: the agent's command-line options, kept in a file.

The mapping is the argument parser itself, so an option added to ``stackha agent`` works in the
file with no code here: a key is an option's long name without the dashes (``nginx-dir``;
``nginx_dir`` is the same key), its value is converted by the option's own argparse type and
checked against its choices; a flag (``--lvs``) takes true/false, a repeatable option a list.
Flags on the command line override the file; the file overrides the defaults.

Every mistake is one line naming file, line, key and reason (``Problem``, as for the spec);
nothing is started on a file that does not check. The file names commands the agent runs as
root (``nginx-reload``), so it is refused when anyone but its owner may write it. It holds no
secret: no option takes a password inline (they take ``*-password-file`` paths), and a key
that looks like one is refused with that advice rather than "unknown".
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stackha.model.problems import Problem
from stackha.model.yamlsource import MAX_DOCUMENT_BYTES, YamlDocument, load_yaml

DEFAULT_AGENT_CONFIG = Path("/etc/stackha/agent.yaml")
# Options about reading the file or what to do instead of running: meaningless inside it.
COMMAND_ONLY = frozenset({"config", "check_config", "stop_services", "help"})
_SECRET_WORDS = ("password", "secret", "token", "passwd")


@dataclass(frozen=True)
class AgentOptions:
    """The merged options and where each explicitly set one came from."""

    values: Mapping[str, Any]
    from_file: tuple[str, ...] = ()
    from_flags: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = field(default_factory=tuple)

    def namespace(self) -> argparse.Namespace:
        return argparse.Namespace(**self.values)


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The parser's options by dest (positional arguments have no place in the file)."""
    return {a.dest: a for a in parser._actions  # argparse keeps no public list of its actions
            if a.option_strings and a.dest not in COMMAND_ONLY
            and not isinstance(a, argparse._HelpAction | argparse._VersionAction)}


def detach_defaults(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Take the defaults out of the parser and return them, so that a parsed namespace holds
    only the options given on the command line (what overrides the file)."""
    defaults = {}
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            defaults[action.dest] = action.default
            action.default = argparse.SUPPRESS
    return defaults


def _key_to_dest(key: str) -> str:
    return key.replace("-", "_")


def _is_flag(action: argparse.Action) -> bool:
    return action.nargs == 0 and isinstance(action.const, bool)


def _is_list(action: argparse.Action) -> bool:
    return isinstance(action, argparse._AppendAction | argparse._ExtendAction) \
        or action.nargs in ("*", "+") or (isinstance(action.nargs, int) and action.nargs > 1)


def _convert_one(action: argparse.Action, value: Any) -> Any:
    """One scalar through the option's type and choices; raises ValueError with the reason."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        kind = "a list" if isinstance(value, list) else "a mapping" if isinstance(value, dict) \
            else "true/false" if isinstance(value, bool) else "empty" if value is None \
            else type(value).__name__
        raise ValueError(f"expected {_expected(action)}, got {kind}")
    text = str(value)
    converter = action.type
    if converter is None:
        if not isinstance(value, str):
            raise ValueError(f"expected {_expected(action)}, got {type(value).__name__} "
                             f"{value!r} (quote it)")
        converted: Any = text
    else:
        try:
            converted = converter(text)  # type: ignore[operator]
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            name = getattr(converter, "__name__", "value")
            detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else ""
            raise ValueError(detail or f"invalid {name} value {text!r}") from exc
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{converted!r} is not one of "
                         f"{', '.join(map(str, action.choices))}")
    return converted


def _expected(action: argparse.Action) -> str:
    if _is_flag(action):
        return "true or false"
    kind = getattr(action.type, "__name__", "text") if action.type else "text"
    kind = {"Path": "a path", "float": "a number", "int": "an integer", "str": "text"}.get(
        kind, kind)
    return f"a list of {kind}" if _is_list(action) else kind


def convert(action: argparse.Action, value: Any) -> Any:
    """A value from the file as argparse would have stored it from the command line."""
    if _is_flag(action):
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value if action.const else not value
    if isinstance(action, argparse._CountAction):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"expected a count (0 or more), got {value!r}")
        return value
    if _is_list(action):
        items = value if isinstance(value, list) else [value]
        if action.nargs == "+" and not items:
            raise ValueError("expected at least one value")
        return [_convert_one(action, item) for item in items]
    return _convert_one(action, value)


def _secret_looking(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in _SECRET_WORDS) and not lowered.endswith("file")


def file_problems(path: Path) -> list[Problem]:
    """The file itself: readable, not writable by anyone but its owner."""
    try:
        info = path.stat()
    except OSError as exc:
        return [Problem(str(path), "", f"cannot read: {exc.strerror}")]
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return [Problem(str(path), "", f"mode {stat.S_IMODE(info.st_mode):04o}: writable by "
                        "others, and it names commands the agent runs (chmod go-w)")]
    if os.geteuid() == 0 and info.st_uid != 0:
        return [Problem(str(path), "", f"owned by uid {info.st_uid}, not root, and it names "
                        "commands the agent runs as root (chown root)")]
    return []


def parse_file(text: str, file: str, parser: argparse.ArgumentParser
               ) -> tuple[dict[str, Any], list[Problem]]:
    """The file's options as argparse values, by dest; every problem, each on one line."""
    document, problems = load_yaml(text, file)
    if document is None:
        return {}, problems
    if document.value is None:
        return {}, problems
    if not isinstance(document.value, dict):
        return {}, [*problems, document.problem("", "expected a mapping of option: value")]
    actions = options_of(parser)
    values: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, raw in document.value.items():
        key = str(key)
        dest = _key_to_dest(key)
        action = actions.get(dest)
        if action is None:
            problems.append(_unknown(document, key, dest, actions))
            continue
        if dest in seen:
            problems.append(document.problem(key, f"the same option as {seen[dest]}"))
            continue
        seen[dest] = key
        try:
            values[dest] = convert(action, raw)
        except ValueError as exc:
            problems.append(document.problem(key, str(exc)))
    return values, problems


def _unknown(document: YamlDocument, key: str, dest: str,
             actions: Mapping[str, argparse.Action]) -> Problem:
    if dest in COMMAND_ONLY:
        return document.problem(key, "a command-line option only, not for the file")
    if _secret_looking(key):
        return document.problem(key, "no secret goes in agent.yaml: name a file that holds "
                                     "it (the *-password-file options)")
    import difflib  # only for a typo: 0.24 MiB the running agent does not hold

    close = [d.replace("_", "-") for d in difflib.get_close_matches(dest, list(actions), 3)]
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return document.problem(key, f"unknown option{hint}")


def merge(defaults: Mapping[str, Any], from_file: Mapping[str, Any],
          given: argparse.Namespace, problems: Iterable[Problem] = ()) -> AgentOptions:
    """Defaults, then the file, then the command line: the later wins, option by option (a
    repeatable option given on the command line replaces the file's list)."""
    flags = {k: v for k, v in vars(given).items() if k in defaults}
    values = {**vars(given), **defaults, **from_file, **flags}
    return AgentOptions(values=values, from_file=tuple(sorted(from_file)),
                        from_flags=tuple(sorted(k for k in flags if k not in COMMAND_ONLY)),
                        problems=tuple(problems))


def read_agent_options(parser: argparse.ArgumentParser, defaults: Mapping[str, Any],
                       given: argparse.Namespace) -> AgentOptions:
    """The agent's options from ``--config`` (default /etc/stackha/agent.yaml, which may be
    absent) and the command line."""
    explicit = getattr(given, "config", None)
    path = Path(explicit) if explicit is not None else DEFAULT_AGENT_CONFIG
    if explicit is None and not path.exists():
        return merge(defaults, {}, given)
    problems = file_problems(path)
    if problems:
        return merge(defaults, {}, given, problems)
    try:
        with path.open("rb") as stream:  # the loader refuses what is over its limit
            text = stream.read(MAX_DOCUMENT_BYTES + 1).decode("utf-8")
    except OSError as exc:
        return merge(defaults, {}, given, [Problem(str(path), "", f"cannot read: "
                                                                  f"{exc.strerror}")])
    except UnicodeDecodeError as exc:
        return merge(defaults, {}, given, [Problem(str(path), "", f"byte {exc.start}: not "
                                                                  "valid UTF-8")])
    values, problems = parse_file(text, str(path), parser)
    return merge(defaults, values, given, problems)
