"""Every command that reads the local spec refuses bad input with one line, never a crash."""

from __future__ import annotations

import shutil

from stackha.cli.main import main
from tests.conftest import EXAMPLE_CONFIGS


def test_a_spec_that_is_not_utf8_is_one_line_for_every_reader(tmp_path, capsys):
    configs = tmp_path / "configs"
    shutil.copytree(EXAMPLE_CONFIGS, configs)
    spec = configs / "stackha.yaml"
    data = spec.read_bytes()
    spec.write_bytes(data.replace(b"# ", "# caf\xe9 ".encode("latin-1"), 1))
    offset = spec.read_bytes().index(b"\xe9")
    for command in (["status"], ["render", "keepalived", "--node", "nginx1"],
                    ["config", "history"]):
        assert main([*command, "--configs", str(configs)]) == 2, command
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"stackha: {spec}: byte {offset}: not valid UTF-8"], command
