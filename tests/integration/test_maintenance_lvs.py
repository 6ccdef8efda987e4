"""Maintenance of a MyCat realserver behind the nftables director (testkit/lvslab.py): both
directors give it weight 0 (no new connections) and it gets its weight back when off. Run
under `flock /tmp/stackha-netns.lock`."""

from __future__ import annotations

import os
import shutil

import pytest

from testkit import write_registry
from testkit.lvslab import DIRECTORS, REALSERVERS, LvsLab
from testkit.netlab import wait_until
from tests.conftest import AGENT, COORDINATOR

pytestmark = pytest.mark.integration


@pytest.fixture
def lab(tmp_path):
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.fail("the LVS-DR lab needs root and nft (scripts/install-deps.sh)")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("STACKHA_COORDINATOR_CREDENTIAL", COORDINATOR)
        env.setenv("STACKHA_AGENT_CREDENTIAL", AGENT)
        env.setenv("STACKHA_AGENT_REGISTRY", str(write_registry(tmp_path / "agents.registry")))
        lab = LvsLab(tmp_path / "lvs")
        try:
            lab.setup()
            for director in DIRECTORS:
                wait_until(lambda d=director: lab.forwards_to(d, REALSERVERS), 40,
                           what=f"{director} to forward to all realservers")
            yield lab
        finally:
            lab.teardown()


def weights(lab: LvsLab, director: str) -> dict[str, int]:
    return {row["name"]: row["weight"] for row in lab.director_state(director)["realservers"]}


def test_maintenance_of_a_realserver_gives_it_weight_zero_on_every_director(lab):
    done = lab.net.stackha("maintenance", "mycat2", "on", "--reason", "jvm upgrade",
                           "--drain-timeout", "3", "--configs", str(lab.configs), check=False)
    assert done.returncode == 0, done.stderr
    for director in DIRECTORS:
        wait_until(lambda d=director: weights(lab, d) == {"mycat1": 1, "mycat2": 0,
                                                          "mycat3": 1}, 20,
                   what=f"{director} to give mycat2 weight 0")
        wait_until(lambda d=director: lab.forwards_to(d, ("mycat1", "mycat3")), 20,
                   what=f"{director} to forward new connections to mycat1 and mycat3 only")
    answers = lab.connect(12)
    assert set(answers) == {"mycat1", "mycat3"}, answers
    back = lab.net.stackha("maintenance", "mycat2", "off", "--configs", str(lab.configs),
                           check=False)
    assert back.returncode == 0, back.stderr
    for director in DIRECTORS:
        wait_until(lambda d=director: weights(lab, d) == dict.fromkeys(REALSERVERS, 1), 20,
                   what=f"{director} to give mycat2 its weight back")
        wait_until(lambda d=director: lab.forwards_to(d, REALSERVERS), 20,
                   what=f"{director} to forward to all three again")
