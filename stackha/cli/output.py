"""How every command speaks: exit codes, the one error type, and one way to print.

Output for people goes to stdout; problems to stderr, one line each; a command that cannot do
its job raises ``CommandError`` and ``main`` prints ``stackha: <reason>`` with its exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from stackha.model.problems import Problem

EXIT_OK, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class CommandError(Exception):
    """A one-line reason the command could not do its job."""

    def __init__(self, message: str, code: int = EXIT_FAIL):
        super().__init__(message)
        self.code = code


def emit(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def write(text: str) -> None:
    """Text that carries its own line ends (a diff, a table, a rendered file)."""
    sys.stdout.write(text)


def report(problems: Iterable[Problem]) -> None:
    for problem in problems:
        sys.stderr.write(f"{problem}\n")


def say_error(message: str) -> None:
    sys.stderr.write(f"stackha: {message}\n")
