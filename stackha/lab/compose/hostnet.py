"""The one host firewall rule the lab needs: frames between its containers stay accepted.

The lab network is ``internal`` (no route out): docker drops whatever enters its bridge for
an address outside the subnet. With br_netfilter loaded (dockerd loads it) bridged frames pass
through iptables' FORWARD chain too, so that rule also drops VRRP's multicast adverts
(224.0.0.18) between two containers on the same bridge, and every keepalived pair ends up
with two masters. One rule in DOCKER-USER (evaluated before docker's own) accepts frames that
enter and leave the lab's bridge; anything leaving the bridge is still dropped.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

from stackha.lab.compose.backend import LabError

CHAIN = "DOCKER-USER"
Run = Callable[..., subprocess.CompletedProcess[str]]


def bridge_local_rule(bridge: str) -> list[str]:
    """Pure: the rule's match and target, as iptables arguments."""
    return ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def _iptables() -> str:
    found = shutil.which("iptables")
    if found is None:
        raise LabError("iptables is not installed: the lab's bridge needs one DOCKER-USER rule "
                       "(VRRP multicast between containers)")
    return found


def allow_bridge_local(bridge: str, run: Run = subprocess.run) -> bool:
    """Insert the rule unless it is there; True when it was inserted."""
    iptables = _iptables()
    rule = bridge_local_rule(bridge)
    if run([iptables, "-C", CHAIN, *rule], capture_output=True, text=True).returncode == 0:
        return False
    done = run([iptables, "-I", CHAIN, "1", *rule], capture_output=True, text=True)
    if done.returncode != 0:
        raise LabError(f"iptables -I {CHAIN} 1 {' '.join(rule)}: {done.stderr.strip()} "
                       "(is dockerd running? it creates the chain)")
    return True


def remove_bridge_local(bridge: str, run: Run = subprocess.run) -> None:
    """Take the rule out again (``stackha down``); absent is fine."""
    if shutil.which("iptables") is None:
        return
    rule = bridge_local_rule(bridge)
    while run(["iptables", "-D", CHAIN, *rule], capture_output=True,
              text=True).returncode == 0:
        pass
