"""The drill's clients at a real-time priority, so that what they measure is the lab.

A drill's probers are the clients of both VIPs. On a real site they run on other machines;
here they share the lab's CPUs, and on a loaded host (`stackha drill --load`) a prober at
normal priority is starved like everything else: its attempts start late, queue for one of
its pooled MySQL connections and fail with "pool: no connection free", which is the client's
delay, not the lab's. The failover bench runs its probe SCHED_FIFO for the same reason.

Set in the drill's main thread before any other starts: threads inherit the policy.
SCHED_RESET_ON_FORK gives every child the drill starts (docker, nft, a load loop) normal
priority again, so only the drill's own threads are raised. The kernel's real-time throttle
(sched_rt_runtime_us, 95 % of each second) bounds what a runaway drill could take.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)

PRIORITY = 10  # as the failover bench's probe: above normal tasks, below keepalived's 50


def raise_client_priority(priority: int = PRIORITY) -> str:
    """Make the calling thread (and the threads it starts later) SCHED_RR ``priority``;
    returns what the clients run at, for the report."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK,
                              os.sched_param(priority))
    except (OSError, AttributeError) as exc:  # not root, or a kernel without RT scheduling
        log.warning("event=drill_priority_unchanged reason=%r", str(exc))
        return "normal priority (could not raise it: " + str(exc) + ")"
    log.info("event=drill_priority policy=SCHED_RR priority=%d", priority)
    return f"SCHED_RR {priority}"
