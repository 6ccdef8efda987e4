"""The console script's entry: `stackha check` must not pay for importing the full CLI."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        from .checkcmd import main as check_main

        sys.exit(check_main(sys.argv[2:]))
    from .cli import run

    run()
