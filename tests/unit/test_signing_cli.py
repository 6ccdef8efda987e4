"""`stackha keygen`, and the commands that refuse to run without a key."""

from __future__ import annotations

import re
from pathlib import Path

from stackha.cli.main import main
from stackha.trust.signing import load_private, load_trusted

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = str(ROOT / "configs")


def test_keygen_writes_a_private_and_a_public_key_and_prints_the_key_id(tmp_path, capsys):
    assert main(["keygen", "--out", str(tmp_path / "coordinator")]) == 0
    out = capsys.readouterr().out
    found = re.search(r"^key id ([0-9a-f]{16})$", out, re.MULTILINE)
    assert found, out
    assert load_private(tmp_path / "coordinator.key").key_id == found.group(1)
    assert load_trusted([tmp_path / "coordinator.pub"]).ids == (found.group(1),)
    assert (tmp_path / "coordinator.key").stat().st_mode & 0o777 == 0o600
    # Never over an existing key: a typo must not destroy the one every node pins.
    assert main(["keygen", "--out", str(tmp_path / "coordinator")]) == 1
    assert "exists; not overwriting" in capsys.readouterr().err


def test_an_agent_without_a_trusted_key_refuses_to_start(capsys):
    assert main(["agent", "--node", "nginx1", "--configs", CONFIGS]) == 2
    assert "no trusted key: give --trusted-key PATH" in capsys.readouterr().err


def test_allow_unsigned_and_a_trusted_key_exclude_each_other(tmp_path, capsys):
    main(["keygen", "--out", str(tmp_path / "k")])
    assert main(["agent", "--node", "nginx1", "--configs", CONFIGS, "--allow-unsigned",
                 "--trusted-key", str(tmp_path / "k.pub")]) == 2
    assert "exclude each other" in capsys.readouterr().err


def test_an_unreadable_trusted_key_is_a_clear_error(tmp_path, capsys):
    assert main(["agent", "--node", "nginx1", "--configs", CONFIGS,
                 "--trusted-key", str(tmp_path / "missing.pub")]) == 2
    assert "missing.pub: cannot read public key" in capsys.readouterr().err


def test_push_config_without_a_signing_key_publishes_nothing(monkeypatch, capsys):
    monkeypatch.delenv("STACKHA_SIGNING_KEY", raising=False)
    # No ZooKeeper is reachable here: the refusal comes before any connection.
    assert main(["push-config", "--configs", CONFIGS, "--zk", "127.0.0.1:1"]) == 2
    assert "no signing key: give --signing-key PATH or $STACKHA_SIGNING_KEY" \
        in capsys.readouterr().err


def test_a_signing_key_others_can_read_is_refused(tmp_path, monkeypatch, capsys):
    main(["keygen", "--out", str(tmp_path / "k")])
    (tmp_path / "k.key").chmod(0o640)
    monkeypatch.setenv("STACKHA_SIGNING_KEY", str(tmp_path / "k.key"))
    assert main(["push-config", "--configs", CONFIGS, "--zk", "127.0.0.1:1"]) == 2
    assert "accessible by others (mode 0640)" in capsys.readouterr().err
