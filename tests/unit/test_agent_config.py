"""agent.yaml: the agent's options in a file, checked with file:line errors, flags winning."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stackha.cli.agent import agent_args, register
from stackha.cli.agentconfig import detach_defaults, parse_file, read_agent_options
from stackha.cli.main import main
from tests.conftest import EXAMPLE_CONFIGS


def _agent_parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="stackha")
    register(root.add_subparsers(dest="command"))
    sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["agent"]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _problems(text: str) -> list[str]:
    _, problems = parse_file(text, "agent.yaml", _agent_parser())
    return [str(p) for p in problems]


def test_every_option_of_the_parser_is_a_key_converted_by_its_own_type(tmp_path):
    path = _write(tmp_path, "node: nginx1\nnginx-dir: /srv/nginx\nnginx_reload: nginx -s reload\n"
                            "heartbeat: 1\nlvs: true\nlvs-engine: ipvs\nmetrics_port: 9145\n"
                            f"configs: {EXAMPLE_CONFIGS}\n")
    args = agent_args(["--config", str(path)])
    assert args.node == "nginx1"
    assert args.nginx_dir == Path("/srv/nginx")  # argparse's type=Path
    assert args.nginx_reload == "nginx -s reload"
    assert args.heartbeat == 1.0 and isinstance(args.heartbeat, float)
    assert args.lvs is True and args.lvs_engine == "ipvs" and args.metrics_port == 9145
    assert args.rollout_wait == 60.0  # untouched options keep their defaults


def test_flags_override_the_file_and_the_file_overrides_defaults(tmp_path):
    path = _write(tmp_path, "node: nginx1\nheartbeat: 1\nhealth-timeout: 3\n")
    args = agent_args(["--config", str(path), "--heartbeat", "7", "--node", "nginx2"])
    assert (args.node, args.heartbeat, args.health_timeout) == ("nginx2", 7.0, 3.0)


def test_unknown_key_names_its_line_and_a_likely_spelling():
    assert _problems("node: nginx1\n\nheartbeet: 1\n") == [
        "agent.yaml: line 3: heartbeet: unknown option (did you mean heartbeat?)"]


@pytest.mark.parametrize(("line", "reason"), [
    ("heartbeat: fast", "heartbeat: invalid float value 'fast'"),
    ("metrics-port: 1.5", "metrics-port: invalid int value '1.5'"),
    ("lvs: yes please", "lvs: expected true or false, got 'yes please'"),
    ("nginx-reload: 5", "nginx-reload: expected text, got int 5 (quote it)"),
    ("lvs-engine: lvs", "lvs-engine: 'lvs' is not one of nftables, ipvs"),
    ("nginx-dir: [a, b]", "nginx-dir: expected a path, got a list"),
    ("heartbeat:", "heartbeat: expected a number, got empty"),
])
def test_a_wrong_type_or_value_is_one_line_with_file_line_and_key(line, reason):
    assert _problems(f"node: nginx1\n{line}\n") == [f"agent.yaml: line 2: {reason}"]


def test_every_problem_is_reported_at_once():
    assert len(_problems("heartbeat: x\nbogus: 1\nlvs: 3\n")) == 3


def test_a_password_inline_is_refused_with_the_file_option_to_use():
    [problem] = _problems("node: n\nmycat-manager-password: hunter2\n")
    assert problem.startswith("agent.yaml: line 2: mycat-manager-password: no secret goes in")
    assert "hunter2" not in problem
    assert _problems("mycat-manager-password-file: /etc/stackha/mycat.pw\n") == []


def test_command_only_options_and_duplicate_spellings_are_refused():
    assert _problems("check-config: true\n") == [
        "agent.yaml: line 1: check-config: a command-line option only, not for the file"]
    assert _problems("nginx-dir: /a\nnginx_dir: /b\n") == [
        "agent.yaml: line 2: nginx_dir: the same option as nginx-dir"]


def test_an_option_another_module_adds_works_in_the_file_without_code():
    # e.g. a repeatable --trusted-key, TLS paths, a credential file added by another change
    parser = argparse.ArgumentParser()
    parser.add_argument("--trusted-key", action="append", type=Path)
    parser.add_argument("--tls-ca-file", type=Path)
    parser.add_argument("--retries", type=int, default=3)
    defaults = detach_defaults(parser)
    values, problems = parse_file("trusted-key: [/k/a.pub, /k/b.pub]\ntls_ca_file: /ca.pem\n",
                                  "agent.yaml", parser)
    assert problems == []
    assert values == {"trusted_key": [Path("/k/a.pub"), Path("/k/b.pub")],
                      "tls_ca_file": Path("/ca.pem")}
    _, problems = parse_file("retries: many\n", "agent.yaml", parser)
    assert [str(p) for p in problems] == ["agent.yaml: line 1: retries: invalid int value "
                                          "'many'"]
    # A repeatable option on the command line replaces the file's list, as any flag wins.
    given = parser.parse_args(["--trusted-key", "/k/c.pub"])
    merged = read_agent_options(parser, defaults, given).values
    assert merged["trusted_key"] == [Path("/k/c.pub")] and merged["retries"] == 3


def test_yaml_limits_and_syntax_errors_keep_their_lines():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(8))
    [problem] = _problems(bomb)
    assert "alias" in problem and problem.startswith("agent.yaml: line ")
    [problem] = _problems("node: [unclosed\n")
    assert problem.startswith("agent.yaml: line ") and "YAML syntax error" in problem
    assert _problems("- a list\n") == [
        "agent.yaml: line 1: expected a mapping of option: value"]


def test_a_file_others_may_write_is_refused(tmp_path, capsys):
    path = _write(tmp_path, "node: nginx1\n")
    path.chmod(0o666)
    code = main(["agent", "--config", str(path), "--configs", str(EXAMPLE_CONFIGS),
                 "--check-config"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{path}: mode 0666: writable by others" in err


def test_check_config_exits_0_or_2_and_starts_nothing(tmp_path, capsys):
    good = _write(tmp_path, f"node: nginx1\nconfigs: {EXAMPLE_CONFIGS}\nheartbeat: 1\n"
                            "allow-unsigned: true\n")
    assert main(["agent", "--config", str(good), "--check-config", "--lvs"]) == 0
    out = capsys.readouterr().out
    assert "agent configuration ok: node nginx1; from the file: allow-unsigned, configs, " \
           "heartbeat, node; from flags: lvs" in out
    # What the agent itself refuses at start is refused here too (no trusted key).
    unsigned = _write(tmp_path, f"node: nginx1\nconfigs: {EXAMPLE_CONFIGS}\n")
    assert main(["agent", "--config", str(unsigned), "--check-config"]) == 2
    assert "no trusted key" in capsys.readouterr().err
    bad = _write(tmp_path, f"node: nginx1\nconfigs: {EXAMPLE_CONFIGS}\nheartbeat: soon\n")
    assert main(["agent", "--config", str(bad), "--check-config"]) == 2
    assert f"{bad}: line 3: heartbeat: invalid float value 'soon'" in capsys.readouterr().err
    # No node anywhere: said, not a traceback.
    empty = _write(tmp_path, f"configs: {EXAMPLE_CONFIGS}\n")
    assert main(["agent", "--config", str(empty), "--check-config"]) == 2
    assert "node: required" in capsys.readouterr().err


def test_an_explicit_config_that_does_not_exist_is_an_error(tmp_path, capsys):
    assert main(["agent", "--config", str(tmp_path / "nope.yaml"), "--node", "n",
                 "--check-config"]) == 2
    assert "nope.yaml: cannot read: No such file or directory" in capsys.readouterr().err


def test_one_agent_per_state_directory(tmp_path):
    import os

    from stackha.cli.agent import hold_agent_lock
    from stackha.cli.output import CommandError

    fd = hold_agent_lock(tmp_path / "state")
    try:
        with pytest.raises(CommandError, match=rf"an agent \(pid {os.getpid()}\) runs on"):
            hold_agent_lock(tmp_path / "state")
    finally:
        os.close(fd)
    os.close(hold_agent_lock(tmp_path / "state"))  # free again once the holder is gone
