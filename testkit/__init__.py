"""Test and benchmark harnesses (not shipped): a local ZooKeeper, network namespaces with
keepalived and LVS, real agents against real nginx. Used by tests/ and bench/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIGS = ROOT / "configs"
# Next to the checkout, where CI has it: the MyCat release (shared/mycat/) among others.
SHARED = ROOT.parent / "shared"
# The digest credentials the harnesses' ZooKeeper trees are made with: the coordinator's,
# and one per node (what `stackha credentials issue` makes, but fixed for the tests).
COORDINATOR = "coordinator:coordinator-secret"
# Every node name the harnesses' specs use.
TEST_NODES = ("nginx1", "nginx2", "director1", "director2", "mycat1", "mycat2", "mycat3")


def agent_credential(node: str) -> str:
    return f"{node}:{node}-agent-secret"


AGENT = agent_credential("nginx1")


def write_registry(path: Path, nodes: tuple[str, ...] = TEST_NODES) -> Path:
    """The agent registry for ``nodes`` with their test credentials."""
    from kazoo.security import make_digest_acl_credential

    lines = [f"{n} {make_digest_acl_credential(*agent_credential(n).split(':', 1))}"
             for n in nodes]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_credential(path: Path, node: str) -> Path:
    """A node's credential file (0600), for ``stackha agent --credential-file``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(agent_credential(node) + "\n")
    path.chmod(0o600)
    return path

# What nginx serves before an agent's first version: it must run for `nginx -s reload`.
BOOTSTRAP_CONF = """
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "bootstrap\\n"; }}
    }}
}}
"""


def skip_unless_ci(reason: str, ci_has_it: bool = True) -> None:
    """Skip a test whose real part is missing here, but fail under CI (``CI=true``) when CI
    is known to have it (install-deps installs gcc and Java; the MyCat release is there when
    ``../shared/`` is, see ``ci_has_mycat``): a skip there would be a check that silently
    never ran."""
    import os

    import pytest

    if os.environ.get("CI") == "true" and ci_has_it:
        pytest.fail(f"CI must run this test: {reason}")
    pytest.skip(reason)


def ci_has_mycat() -> bool:
    """Whether CI here has the MyCat release (``../shared/mycat/``, as `make test` uses it)."""
    return (SHARED / "mycat").is_dir()
