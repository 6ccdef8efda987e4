"""Values and files that break out, from the attacker's side: spec values that would add lines
to what a node writes, node names that lead out of directories, and bundles whose validation
would run what they ship. Each is refused by the coordinator (validate / push-config, with
ZooKeeper untouched) and, planted straight into ZooKeeper, by a real agent before it writes
anything; the shipped module's constructor would leave a marker file, and none appears."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stackha.cli.main import main
from stackha.model.bundle import Bundle, ConfigVersion, serialise_version
from testkit import skip_unless_ci
from testkit.agentlab import NginxNode, fetch, node_status, wait_for
from tests.integration.test_agent import _applied, _publish_raw, _push, _set_page
from tests.integration.test_push_config import _snapshot
from tests.unit.test_grammar import INJECTED_URL

pytestmark = pytest.mark.integration

URL_LINE = 'url: "http://127.0.0.1/healthz"'


@pytest.fixture
def evil_module(tmp_path) -> tuple[Path, Path]:
    """A shared object whose constructor creates a marker file: (the .so, the marker)."""
    if shutil.which("gcc") is None:
        skip_unless_ci("gcc is needed to build the shared object")
    marker = tmp_path / "module-ran"
    source = tmp_path / "evil.c"
    source.write_text('#include <stdio.h>\n__attribute__((constructor)) static void ran(void)'
                      f' {{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n')
    library = tmp_path / "evil.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(library), str(source)], check=True)
    return library, marker


def _push_code(configs: Path) -> int:
    return main(["push-config", "--configs", str(configs)])


def _yaml_string(value: str) -> str:
    return '"' + value.encode("unicode_escape").decode().replace('"', '\\"') + '"'


def _contents(configs: Path) -> dict[str, bytes]:
    return {p.relative_to(configs).as_posix(): p.read_bytes()
            for p in configs.rglob("*") if p.is_file()}


def _plant(configs: Path, zookeeper, contents: dict[str, bytes]) -> int:
    version = ConfigVersion(0, Bundle.from_contents(contents), "now", "attacker", "hostile")
    return _publish_raw(configs, zookeeper, serialise_version(version))


def _tree(root: Path) -> dict[str, bytes]:
    """What the node serves from, less what nginx itself writes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
            if p.is_file() and p.parts[len(root.parts)] != "logs" and p.name != "nginx.pid"}


def _good_version_one(node: NginxNode, configs: Path, zookeeper) -> dict[str, bytes]:
    _set_page(configs, "good one\n")
    _push(configs)
    node.start_agent()
    wait_for(lambda: _applied(configs, zookeeper, 1), what="version 1 applied")
    assert fetch(node.url) == "good one\n"
    return _tree(node.prefix)


def _refused(node: NginxNode, configs: Path, zookeeper, number: int,
             before: dict[str, bytes]) -> str:
    status = wait_for(lambda: (s := node_status(configs, zookeeper.hosts, "nginx1"))
                      and s["rejected_version"] == number and s,
                      what=f"refusal of version {number}")
    assert status["applied_version"] == 1
    assert node.agent.poll() is None, "the agent exited"
    assert fetch(node.url) == "good one\n"
    assert _tree(node.prefix) == before, "the node's files changed"
    return status["last_error"]


def _injected_url(text: str) -> str:
    # The agent lab points the URL at its nginx's port: replace whatever URL is there.
    out = re.sub(r'url: "http://127\.0\.0\.1(:\d+)?/healthz"',
                 lambda _: f"url: {_yaml_string(INJECTED_URL)}", text, count=1)
    assert out != text
    return out


def _extra_node(text: str, name: str) -> str:
    anchor = "  - {name: nginx2,"
    assert anchor in text
    return text.replace(anchor, f"  - {{name: {_yaml_string(name)}, address: 10.77.0.13/24, "
                                "interface: eth0, roles: [nginx]}\n" + anchor)


def _edit(configs: Path, name: str, change) -> None:
    path = configs / name
    path.write_text(change(path.read_text()))


def _with_module(configs: Path, load: str) -> None:
    _edit(configs, "nginx/nginx.conf", lambda text: f"load_module {load};\n" + text)


def _hostile(configs: Path, change) -> dict[str, bytes]:
    """The bundle with its spec changed, leaving configs/ as it is (the test's own store
    access reads the spec there)."""
    contents = _contents(configs)
    contents["stackha.yaml"] = change(contents["stackha.yaml"].decode()).encode()
    return contents


# --- the coordinator ------------------------------------------------------------------------

def test_injected_url_is_refused_by_validate_and_push_config(configs, zookeeper, capsys):
    _edit(configs, "stackha.yaml", _injected_url)
    assert main(["validate", "--configs", str(configs)]) == 2
    assert _push_code(configs) == 2
    err = capsys.readouterr().err
    assert "stackha.yaml: line " in err and "health_checks.nginx.url" in err
    assert _snapshot(configs, zookeeper) == (None, [])


@pytest.mark.parametrize("name", ["..", "ng/x", "a\nb"])
def test_hostile_node_names_are_refused_by_push_config(configs, zookeeper, capsys, name):
    _edit(configs, "stackha.yaml", lambda text: _extra_node(text, name))
    assert _push_code(configs) == 2
    assert "nodes[1].name: must be 1-63" in capsys.readouterr().err
    assert _snapshot(configs, zookeeper) == (None, [])


def test_shipped_module_never_runs_in_validate(configs, evil_module, capsys):
    library, marker = evil_module
    (configs / "nginx/modules").mkdir()
    shutil.copy(library, configs / "nginx/modules/evil.so")
    _with_module(configs, "modules/evil.so")
    assert main(["validate", "--configs", str(configs)]) == 2
    err = capsys.readouterr().err
    assert "nginx/modules/evil.so" in err and "ELF" in err
    assert not marker.exists(), "nginx -t ran the shipped module"


def test_load_module_is_refused_before_nginx_t(configs, evil_module, capsys):
    # Not shipped, only named: the directive alone is refused, so nginx -t never loads it.
    library, marker = evil_module
    _with_module(configs, str(library))
    assert main(["validate", "--configs", str(configs)]) == 2
    err = capsys.readouterr().err
    assert "nginx.conf: line 1: refused before nginx -t: 'load_module'" in err
    assert not marker.exists(), "nginx -t ran the module"


def test_an_elf_anywhere_in_the_bundle_is_refused(configs, zookeeper, capsys):
    shutil.copy("/bin/true", configs / "nginx/html/favicon.ico")
    assert _push_code(configs) == 2
    assert "nginx/html/favicon.ico" in capsys.readouterr().err
    assert _snapshot(configs, zookeeper) == (None, [])


# --- the agent, with hostile versions written straight into ZooKeeper -----------------------

def test_agent_refuses_the_injected_url_before_writing(node, configs, zookeeper):
    before = _good_version_one(node, configs, zookeeper)
    _set_page(configs, "must never be served\n")
    number = _plant(configs, zookeeper, _hostile(configs, _injected_url))
    reason = _refused(node, configs, zookeeper, number, before)
    assert f"version {number} rejected at verify" in reason
    assert "health_checks.nginx.url" in reason and "\n" not in reason


@pytest.mark.parametrize("name", ["..", "ng/x", "a\nb"])
def test_agent_refuses_hostile_node_names(node, configs, zookeeper, name):
    before = _good_version_one(node, configs, zookeeper)
    _set_page(configs, "must never be served\n")
    number = _plant(configs, zookeeper, _hostile(configs, lambda t: _extra_node(t, name)))
    reason = _refused(node, configs, zookeeper, number, before)
    assert "nodes[1].name" in reason and "\n" not in reason


def test_agent_never_runs_a_shipped_module(node, configs, zookeeper, evil_module):
    library, marker = evil_module
    before = _good_version_one(node, configs, zookeeper)
    _set_page(configs, "must never be served\n")
    _with_module(configs, "modules/evil.so")
    contents = _contents(configs) | {"nginx/modules/evil.so": library.read_bytes()}
    number = _plant(configs, zookeeper, contents)
    reason = _refused(node, configs, zookeeper, number, before)
    assert "rejected at verify" in reason and "ELF" in reason
    assert not marker.exists(), "the agent's nginx -t ran the shipped module"


def test_agent_refuses_load_module_before_nginx_t(node, configs, zookeeper, evil_module):
    library, marker = evil_module
    before = _good_version_one(node, configs, zookeeper)
    _set_page(configs, "must never be served\n")
    _with_module(configs, str(library))
    number = _plant(configs, zookeeper, _contents(configs))
    reason = _refused(node, configs, zookeeper, number, before)
    assert "rejected at validate" in reason and "load_module" in reason
    assert not marker.exists(), "the agent's nginx -t ran the module"


def test_rollback_does_not_republish_a_hostile_version(configs, zookeeper, capsys):
    # Planted (or published before the grammar existed): rolling back to it must not make
    # the coordinator publish it under its own name.
    assert _push_code(configs) == 0
    contents = _hostile(configs, lambda text: _extra_node(text, "ng/x"))
    contents["nginx/html/tool"] = Path("/bin/true").read_bytes()
    bad = _plant(configs, zookeeper, contents)
    assert _push_code(configs) == 0
    before = _snapshot(configs, zookeeper)
    capsys.readouterr()
    assert main(["config", "rollback", str(bad), "--configs", str(configs)]) == 2
    err = capsys.readouterr().err
    assert "nodes[1].name" in err and "nginx/html/tool" in err and "ELF" in err
    assert _snapshot(configs, zookeeper) == before
