"""The compose lab, brought up once for the e2e tests (`make e2e`, or STACKHA_E2E=1).

If the lab is already up (every agent ready at the current version) it is used as it is and
left running; otherwise `stackha up` starts it and the last test takes it down again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stackha.lab.compose.labtls import lab_tls_env
from stackha.lab.compose.secrets import load_lab_credentials
from testkit import ci_has_mycat, skip_unless_ci

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "compose"
UP_TIMEOUT = 900

pytestmark = pytest.mark.e2e


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("STACKHA_E2E") == "1":
        return
    skip = pytest.mark.skip(reason="e2e: needs the docker compose lab; run `make e2e` "
                                   "(or set STACKHA_E2E=1)")
    for item in items:
        if "tests/e2e" in str(item.fspath):
            item.add_marker(skip)


def stackha(*args: str, timeout: float = 120, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "stackha", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"stackha {' '.join(args)} exited {done.returncode}:\n"
                             f"{done.stdout}\n{done.stderr}")
    return done


def query(host: str, port: int, user: str, password: str, database: str, statement: str,
          timeout: float = 5) -> list[tuple]:
    """One statement on a fresh MySQL-protocol connection (the VIP, or the lab's MariaDB)."""
    import pymysql

    connection = pymysql.connect(host=host, port=port, user=user, password=password,
                                 database=database, autocommit=True, connect_timeout=2,
                                 read_timeout=timeout, write_timeout=timeout)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


def needs_mycat_release(lab: Lab, reason: str) -> None:
    """Skip on a lab running mycat-standin; under CI, where the release is, fail instead."""
    if not lab.mycat_release():
        skip_unless_ci(f"the lab's MyCat nodes run mycat-standin: {reason}",
                       ci_has_it=ci_has_mycat())


def status() -> dict:
    return json.loads(stackha("status", "--json", "--containers").stdout)


class NotReady(str):
    """Falsy, and says which nodes are not ready: a timed-out wait prints it."""

    def __bool__(self) -> bool:
        return False


def lab_ready() -> bool | NotReady:
    try:
        doc = status()
    except (AssertionError, json.JSONDecodeError) as exc:
        return NotReady(f"no status: {exc}")
    current = doc["current_version"]
    if current is None:
        return NotReady("no current version")
    behind = [f"{n['node']}: reporting={n['reporting']} applied={n['applied_version']} "
              f"health={n['health']} error={n.get('last_error')}" for n in doc["nodes"]
              if not (n["reporting"] and n["applied_version"] == current
                      and all(v == "ok" for v in n["health"].values()))]
    return NotReady(f"current {current}; " + "; ".join(behind)) if behind else True


def wait_until(what: str, check, timeout: float = 60, interval: float = 0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}: last {last!r}")


@dataclass
class Lab:
    started_here: bool
    down_done: bool = False
    docker: object = field(default=None)

    def container(self, service: str):
        [found] = self.docker.containers.list(  # type: ignore[attr-defined]
            all=True, filters={"label": ["com.docker.compose.project=stackha",
                                         f"com.docker.compose.service={service}"]})
        return found

    def service_of(self, node: str) -> str:
        """The compose service of a node (MyCat nodes are NAME-standin without a release)."""
        [found] = self.docker.containers.list(  # type: ignore[attr-defined]
            all=True, filters={"label": ["com.docker.compose.project=stackha",
                                         f"stackha.node={node}"]})
        return str(found.labels["com.docker.compose.service"])

    def mycat_release(self) -> bool:
        """True when the MyCat nodes run the real MyCat, False for mycat-standin."""
        return self.container(self.service_of("mycat1")).labels.get("stackha.mycat") \
            == "release"

    def master_of(self, group: str) -> str:
        masters = [n["node"] for n in status()["nodes"] if n["vrrp"].get(group) == "MASTER"]
        assert len(masters) == 1, f"group {group}: masters {masters}"
        return masters[0]

    def restart(self, service: str) -> None:
        self.container(service).start()
        wait_until("every agent ready again", lab_ready, timeout=120, interval=1)


@pytest.fixture(scope="session")
def lab():
    import docker

    os.environ.update(load_lab_credentials(COMPOSE_DIR / ".stackha"))
    started_here = not lab_ready()
    if started_here:
        done = stackha("up", timeout=UP_TIMEOUT, check=False)
        sys.stderr.write(done.stdout)
        assert done.returncode == 0, f"stackha up failed:\n{done.stdout}\n{done.stderr}"
        os.environ.update(load_lab_credentials(COMPOSE_DIR / ".stackha"))
    # The host's coordinator files for the lab's TLS port (push-config from the tests).
    os.environ.update(lab_tls_env(COMPOSE_DIR / ".stackha"))
    handle = Lab(started_here, docker=docker.from_env())
    yield handle
    if started_here and not handle.down_done:
        stackha("down", "--volumes", timeout=300)
