"""Pure lexing of nginx configuration, and the check that nothing in it loads code.

``nginx -t`` is not a dry run: it loads every ``load_module`` (running the shared object's
constructors as root), starts embedded Perl, Lua or njs, and opens an OpenSSL engine. So
before it runs on a bundle, ``code_loading_problems`` walks the configuration the way nginx
reads it (following ``include``) and refuses:

- directives that load or run code while the configuration is read: ``load_module``,
  ``ssl_engine``, ``perl*``, anything with ``lua`` in its name, njs's ``js_import``,
  ``js_include``, ``js_path`` and ``js_preload_object``, and ``env`` for ``LD_*``,
  ``OPENSSL_*``, ``PERL*`` and ``LUA*``;
- an ``include`` that points outside the staged prefix, except into the system's own nginx
  directories (``SYSTEM_DIRS``: files there were installed by root, and Debian's
  ``modules-enabled`` loads only root-installed modules);
- files the lexer cannot read the way nginx would (unbalanced quotes or braces), since what
  nginx then sees cannot be told.

Shipped shared objects and executables are refused separately, by content
(``stackha.model.bundle.shipped_code_reason``). Paths that nginx writes or reads as data
(logs, pid, certificates, roots) are not restricted here: they run nothing.

The lexer follows nginx's ngx_conf_read_token: whitespace separates words, ``;`` ends a
directive, ``{`` and ``}`` open and close blocks, ``#`` at the start of a word comments out the
rest of the line, single and double quotes make one word (a quoted directive name counts),
a backslash makes the next character literal, only whitespace, ``;`` and ``{`` end a word
(``}`` inside one is part of it) and ``${`` inside a word is a variable, not a block.
Written here rather than taken from a library: the Python parser with that name
(crossplane) has had no release since 2022, and the part needed is this small.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = ("/etc/nginx", "/usr/share/nginx")
MAX_INCLUDE_DEPTH = 16
_CODE_DIRECTIVE = re.compile(r"load_module|ssl_engine|perl\w*|\w*lua\w*|"
                             r"js_(?:import|include|path|preload_object)")
_CODE_ENV = re.compile(r"(?:LD_|OPENSSL_|PERL|LUA)\w*", re.IGNORECASE)
_SPACE = " \t\r\n"


class NginxSyntaxError(ValueError):
    def __init__(self, line: int, reason: str):
        super().__init__(reason)
        self.line = line


@dataclass(frozen=True)
class Directive:
    name: str
    args: tuple[str, ...]
    line: int


def _unescape(word: str) -> str:
    # nginx keeps the backslash except before a quote or another backslash (and turns \t \r
    # \n into those characters).
    out, i = [], 0
    while i < len(word):
        if word[i] == "\\" and i + 1 < len(word):
            nxt = word[i + 1]
            if nxt in "\"'\\":
                out.append(nxt)
                i += 2
                continue
            if nxt in "trn":
                out.append({"t": "\t", "r": "\r", "n": "\n"}[nxt])
                i += 2
                continue
        out.append(word[i])
        i += 1
    return "".join(out)


def tokens(text: str) -> Iterator[tuple[str, int]]:
    """(word, line) pairs; ``;``, ``{`` and ``}`` come out as words of their own."""
    i, line, n = 0, 1, len(text)
    while i < n:
        ch = text[i]
        if ch in _SPACE:
            line += ch == "\n"
            i += 1
        elif ch == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif ch in ";{}":
            yield ch, line
            i += 1
        elif ch in "\"'":
            start, i = line, i + 1
            word = []
            while i < n and text[i] != ch:
                if text[i] == "\\" and i + 1 < n:
                    word.append(text[i:i + 2])
                    line += text[i + 1] == "\n"
                    i += 2
                    continue
                line += text[i] == "\n"
                word.append(text[i])
                i += 1
            if i >= n:
                raise NginxSyntaxError(start, f"unterminated {ch} quote")
            i += 1
            if i < n and text[i] not in _SPACE + ";{)":
                raise NginxSyntaxError(line, f"unexpected {text[i]!r} after a quoted word")
            yield _unescape("".join(word)), start
        else:
            # Inside a word only whitespace, ';' and '{' end it (as in nginx, a '}' there is
            # part of the word), and '{' right after '$' opens a variable name.
            start = i
            while i < n and (text[i] not in _SPACE + ";{" or
                             (text[i] == "{" and text[i - 1] == "$" and i - 1 >= start)):
                if text[i] == "\\" and i + 1 < n:
                    line += text[i + 1] == "\n"
                    i += 2
                    continue
                i += 1
            yield _unescape(text[start:i]), line


def directives(text: str) -> list[Directive]:
    """Every directive in ``text``, at any depth, in order; NginxSyntaxError if unbalanced."""
    found: list[Directive] = []
    words: list[tuple[str, int]] = []
    depth = 0
    for word, line in tokens(text):
        if word in (";", "{"):
            if not words:
                raise NginxSyntaxError(line, f"unexpected '{word}'")
            found.append(Directive(words[0][0], tuple(w for w, _ in words[1:]), words[0][1]))
            words = []
            depth += word == "{"
        elif word == "}":
            if words or depth == 0:
                raise NginxSyntaxError(line, "unexpected '}'")
            depth -= 1
        else:
            words.append((word, line))
    if words:
        raise NginxSyntaxError(words[0][1], "unexpected end of file, expecting ';' or '}'")
    if depth:
        raise NginxSyntaxError(text.count("\n") + 1, "unexpected end of file, expecting '}'")
    return found


def _code_reason(directive: Directive) -> str | None:
    name = directive.name.lower()
    if _CODE_DIRECTIVE.fullmatch(name):
        return f"'{directive.name}' loads or runs code while nginx reads its configuration"
    if name == "env" and directive.args and _CODE_ENV.match(directive.args[0]):
        return f"env {directive.args[0].split('=')[0]} could make nginx load code"
    return None


def _system(path: str) -> bool:
    return any(path == d or path.startswith(d + "/") for d in SYSTEM_DIRS)


def code_loading_problems(root: Path, conf_name: str = "nginx.conf") -> list[tuple[str, int,
                                                                                   str]]:
    """(file relative to ``root``, line, reason) for everything that would make ``nginx -t``
    on ``root/conf_name`` (with ``root`` as prefix) load code or read outside ``root``."""
    root = root.resolve()
    problems: list[tuple[str, int, str]] = []
    seen: set[Path] = set()

    def visit(path: Path, shown: str, depth: int) -> None:
        if path in seen:
            return
        seen.add(path)
        try:
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append((shown, 0, f"cannot be read as configuration: {exc}"))
            return
        try:
            found = directives(text)
        except NginxSyntaxError as exc:
            problems.append((shown, exc.line, f"not readable as nginx configuration: {exc}"))
            return
        for directive in found:
            reason = _code_reason(directive)
            if reason:
                problems.append((shown, directive.line, reason))
            elif directive.name == "include" and directive.args:
                include(directive.args[0], shown, directive.line, depth)

    def include(pattern: str, shown: str, line: int, depth: int) -> None:
        full = os.path.normpath(pattern if pattern.startswith("/")
                                else os.path.join(root, pattern))
        if _system(full) and not (full + "/").startswith(f"{root}/"):
            return  # root's own nginx files: installed by the system, not by the bundle
        if not (full + "/").startswith(f"{root}/"):
            problems.append((shown, line, f"include {pattern}: outside the configuration "
                                          f"directory and not under {', '.join(SYSTEM_DIRS)}"))
            return
        if depth >= MAX_INCLUDE_DEPTH:
            problems.append((shown, line, f"include {pattern}: nested too deeply"))
            return
        for match in sorted(glob.glob(glob.escape(str(root)) + full[len(str(root)):])):
            target = Path(match).resolve()
            if not (str(target) + "/").startswith(f"{root}/"):
                problems.append((shown, line, f"include {pattern}: leads outside the "
                                              "configuration directory"))
            elif target.is_file():
                visit(target, target.relative_to(root).as_posix(), depth + 1)

    visit(root / conf_name, conf_name, 0)
    return problems
