"""The CLI imports only the command's own group (stackha.cli.main.COMMANDS), and what the
long-running agent holds: none of the coordinator's, the lab's, the drill's or the
cryptography package's code."""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import pytest

from stackha.cli.main import COMMANDS, GROUPS, build_parser, groups_for


def _registered(group: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    importlib.import_module(f"stackha.cli.{group}").register(sub)
    return set(sub.choices)


def test_the_command_table_names_every_command_of_every_group_and_nothing_else():
    found = {command: group for group in GROUPS for command in _registered(group)}
    assert found == COMMANDS


@pytest.mark.parametrize(("argv", "groups"), [
    (["agent", "--node", "n1"], ("agent",)),
    (["-v", "push-config", "-m", "x"], ("config",)),
    (["--help"], GROUPS),
    ([], GROUPS),
    (["no-such-command"], GROUPS),
])
def test_a_command_registers_its_group_and_help_or_a_typo_registers_all(argv, groups):
    assert groups_for(argv) == groups


def test_help_still_lists_every_command():
    text = build_parser().format_help()
    assert all(command in text for command in COMMANDS)


# What the agent must never hold: each is MiB of resident memory it does not use (bench idle).
NOT_IN_THE_AGENT = ("cryptography", "bcrypt", "docker", "matplotlib", "mysql_mimic",
                    "prometheus_client", "pymysql", "http.server", "stackha.coordinator",
                    "stackha.lab", "stackha.cli.config", "stackha.cli.drill",
                    "stackha.cli.lab", "stackha.cli.status")


# What an nginx node's running agent (its endpoints on) must not hold either: the email
# package and html behind http.server (2.2 MiB), MyCat's XML parser (0.6 MiB), difflib.
NOT_ON_AN_NGINX_NODE = (*NOT_IN_THE_AGENT, "email", "html", "http.client", "xml", "difflib")


def _loaded_by(*imports: str) -> set[str]:
    # The agent's own entry path (cli.main with `agent`), stopped just before it would run.
    probe = ("import json, sys\n"
             "from stackha.cli import main\n"
             "main.build_parser(main.groups_for(['agent', '--node', 'n1']))\n"
             + "".join(f"import {name}\n" for name in imports)
             + "print(json.dumps(sorted(sys.modules)))\n")
    return set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True,
                                         capture_output=True, text=True).stdout))


def _held(loaded: set[str], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(name for name in loaded
                  if any(name == bad or name.startswith(bad + ".") for bad in forbidden))


def test_the_agent_command_imports_none_of_what_it_does_not_run():
    loaded = _loaded_by("stackha.cli.agent")
    assert "stackha.agent.core" in loaded  # the probe did load the agent
    assert _held(loaded, NOT_IN_THE_AGENT) == []


def test_an_nginx_node_with_its_endpoints_holds_no_http_server_nor_xml():
    loaded = _loaded_by("stackha.cli.agent", "stackha.agent.endpoints")
    assert "stackha.agent.endpoints" in loaded
    assert _held(loaded, NOT_ON_AN_NGINX_NODE) == []


def test_the_agent_loads_and_parses_its_options_without_docstrings():
    # The unit and the lab run it with PYTHONOPTIMIZE=2: nothing on its path may need a
    # docstring (or an assert) to work.
    probe = ("from stackha.cli import main\n"
             "parser = main.build_parser(main.groups_for(['agent', '--node', 'n1']))\n"
             "import stackha.cli.agent, stackha.agent.endpoints, stackha.lvs.director\n"
             "args = parser.parse_args(['agent', '--node', 'n1'])\n"
             "print(args.command, main.__doc__)\n")
    done = subprocess.run([sys.executable, "-OO", "-c", probe], check=True,
                          capture_output=True, text=True)
    assert done.stdout.split() == ["agent", "None"]  # ran, and did run without docstrings


def test_a_directors_and_a_mycat_nodes_logins_hold_no_pymysql():
    # pymysql (with configparser and decimal) was 0.9-1.4 MiB of a director's or MyCat
    # node's agent: the checks and the manager client speak stackha.checks.mysqlwire.
    probe = ("import json, socket, sys\n"
             "from stackha.cli import main\n"
             "main.build_parser(main.groups_for(['agent', '--node', 'n1']))\n"
             "import stackha.cli.agent, stackha.lvs.director\n"
             "from stackha.checks.probes import check_mysql\n"
             "from stackha.mycat.manager import ManagerClient, ManagerError\n"
             "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]\n"
             "s.close()\n"
             "assert check_mysql('127.0.0.1', port, 'app', 'pw', timeout=0.5)\n"
             "try:\n"
             "    ManagerClient('127.0.0.1', port, 'app', 'pw', timeout=0.5).version()\n"
             "except ManagerError:\n"
             "    pass\n"
             "print(json.dumps(sorted(sys.modules)))\n")
    loaded = set(json.loads(subprocess.run([sys.executable, "-c", probe], check=True,
                                           capture_output=True, text=True).stdout))
    assert "stackha.checks.mysqlwire" in loaded
    assert _held(loaded, ("pymysql", "configparser", "decimal")) == []
