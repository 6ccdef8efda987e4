"""Read digest credentials from where the spec says, never from the command line."""

from __future__ import annotations

import os
from pathlib import Path

from stackha.model.environment import mark_secret
from stackha.model.spec import Credential
from stackha.store.base import StoreError
from stackha.store.zookeeper import Identity


def read_identity(credential: Credential | None, what: str) -> Identity | None:
    if credential is None:
        return None
    if credential.env:
        mark_secret(credential.env)  # programs the agent starts must not inherit it
        value = os.environ.get(credential.env)
        if not value:
            raise StoreError(f"{what}: environment variable {credential.env} is not set")
        return Identity.parse(value, f"{what} (${credential.env})")
    path = Path(credential.file or "")
    try:
        value = path.read_text()
    except OSError as exc:
        raise StoreError(f"{what}: cannot read credential file {path}: {exc.strerror}") from exc
    return Identity.parse(value, f"{what} ({path})")
