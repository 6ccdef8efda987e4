"""The console script's entry: `stackha check` must not pay for importing the full CLI."""

import sys


def main() -> None:
    if sys.argv[1:2] == ["check"]:
        from stackha.cli.check import main as check_main

        sys.exit(check_main(sys.argv[2:]))
    from stackha.cli.main import run

    run()
