"""Running ``nft``: load a ruleset in one transaction, read the live table back as JSON."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

from stackha.lvs.nftrender import FAMILY, TABLE

NFT = os.environ.get("STACKHA_NFT", "nft")


class NftError(Exception):
    """nft refused a ruleset or could not run; the message is one line."""


def _run(args: list[str], text: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([NFT, *args], input=text, capture_output=True, text=True,
                              timeout=30)
    except FileNotFoundError as exc:
        raise NftError(f"{NFT} not found: install nftables") from exc
    except subprocess.TimeoutExpired as exc:
        raise NftError(f"{NFT} {' '.join(args)} did not finish within 30 s") from exc


def _first_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return next((line for line in lines if "Error" in line), lines[0] if lines else "no output")


def nft_load(text: str) -> None:
    """``nft -f -``: the whole text is one transaction, applied entirely or not at all."""
    done = _run(["-f", "-"], text)
    if done.returncode != 0:
        raise NftError(f"nft -f exited {done.returncode}: {_first_error(done.stderr)}")


def nft_list_table() -> dict[str, Any] | None:
    """The live stackha table as nft's JSON, or None when there is none."""
    done = _run(["-j", "list", "table", FAMILY, TABLE])
    if done.returncode != 0:
        if "No such file" in done.stderr:
            return None
        raise NftError(f"nft list table exited {done.returncode}: "
                       f"{_first_error(done.stderr)}")
    try:
        return json.loads(done.stdout)
    except ValueError as exc:
        raise NftError(f"nft -j printed something that is not JSON: {exc}") from exc
