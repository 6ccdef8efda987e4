"""One log event per line: ``time level logger message`` with ``key=value`` fields."""

from __future__ import annotations

import logging
import os
import sys


def setup_logging(verbose: bool = False) -> None:
    level = logging.DEBUG if verbose else getattr(
        logging, os.environ.get("STACKHA_LOG_LEVEL", "INFO").upper(), logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(
        "ts=%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kazoo narrates every reconnect attempt at INFO; our own events say what matters.
    logging.getLogger("kazoo").setLevel(logging.WARNING)
