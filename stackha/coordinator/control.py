"""Planned moves, without a spec push: ``stackha switchover`` and ``stackha maintenance``.

The coordinator writes a small request under ``<base>/control`` (its own; agents only read)
and waits for the agents' reports to show it done. What the agents do with a request is in
stackha/agent/core.py; what the requests mean and when they are refused is in
stackha/model/control.py (the decisions are taken from a ClusterView, the one place that says
who is MASTER, healthy or stale).

Switchover is sticky: the request stays as the group's preferred holder, so the new master
stays master (a restart of the old master's agent or keepalived does not take it back),
until ``clear_switchover`` or the next switchover replaces it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from stackha.model.cluster import TIME_FORMAT, ClusterView
from stackha.model.control import (
    Maintenance,
    Refused,
    SwitchoverRequest,
    choose_switchover_target,
    maintenance_refusal,
)
from stackha.model.spec import StackSpec

log = logging.getLogger(__name__)

POLL = 0.1


class SwitchoverRefused(Refused):
    """Nothing was written: the message says why the move cannot be made."""


class NotConfirmed(RuntimeError):
    """The request was written but the reports did not show it done within the wait."""


@dataclass(frozen=True)
class SwitchoverResult:
    group: str
    to: str
    previous: tuple[str, ...]   # who reported MASTER before the request
    request_id: str
    confirmed: bool             # the target reported MASTER, alone, within the wait
    seconds: float              # from the request to the confirmation (or to giving up)


@dataclass(frozen=True)
class MaintenanceResult:
    node: str
    on: bool
    state: str                  # the node's reported maintenance state at the end
    confirmed: bool
    seconds: float


def _now() -> str:
    return datetime.now(UTC).strftime(TIME_FORMAT)


def _view(store: Any, spec: StackSpec) -> ClusterView:
    return ClusterView.of(spec, store.current_number(), store.statuses(), datetime.now(UTC))


def _wait(condition: Callable[[], bool], wait: float) -> tuple[bool, float]:
    start = time.monotonic()
    while True:
        if condition():
            return True, time.monotonic() - start
        if time.monotonic() - start >= wait:
            return False, time.monotonic() - start
        time.sleep(POLL)


def request_switchover(store: Any, spec: StackSpec, group: str, to: str | None,
                       wait: float = 30.0) -> SwitchoverResult:
    """Make ``to`` (or the best eligible member that is not MASTER) ``group``'s preferred
    holder and wait up to ``wait`` seconds until it alone reports MASTER.

    Raises SwitchoverRefused (nothing written) when the target is no member, not healthy,
    stale, not reporting or in maintenance; NotConfirmed when the wait ran out (the request
    stays: the agents go on with it)."""
    view = _view(store, spec)
    maintenance = store.maintenance()
    try:
        target = choose_switchover_target(spec, view, group, to, maintenance)
    except Refused as exc:
        log.warning("event=switchover_refused group=%s to=%s reason=%r", group, to or "-",
                    str(exc))
        raise SwitchoverRefused(str(exc)) from exc
    previous = view.masters().get(group, ())
    request = SwitchoverRequest(group, target, _now(), uuid.uuid4().hex[:12])
    store.put_switchover(request)
    log.info("event=switchover_requested group=%s to=%s previous=%s id=%s", group, target,
             ",".join(previous) or "-", request.id)

    def done() -> bool:
        return _view(store, spec).masters().get(group, ()) == (target,)

    confirmed, seconds = _wait(done, wait)
    result = SwitchoverResult(group, target, tuple(previous), request.id, confirmed, seconds)
    if not confirmed and wait > 0:
        raise NotConfirmed(f"group {group}: {target} did not report MASTER within {wait:g} s "
                           "(the request stays; `stackha status` shows where it is, "
                           f"`stackha switchover {group} --clear` withdraws it)")
    log.info("event=switchover_done group=%s to=%s seconds=%.2f", group, target, seconds)
    return result


def clear_switchover(store: Any, group: str) -> bool:
    """Withdraw ``group``'s preferred holder (the VIP stays where it is unless priorities
    say otherwise); False when there was none."""
    cleared = bool(store.delete_switchover(group))
    log.info("event=switchover_cleared group=%s existed=%s", group, cleared)
    return cleared


_SETTLED = ("drained", "drain timed out")


def set_maintenance(store: Any, spec: StackSpec, node: str, on: bool, reason: str = "",
                    drain_timeout: float = 30.0, force: bool = False,
                    wait: float | None = None) -> MaintenanceResult:
    """Put ``node`` in maintenance (or take it out) and wait for its report to show it.

    On: refused (SwitchoverRefused's parent, Refused) when the node is not in the spec or is
    MASTER of a group no other member could take over (unless ``force``). The wait defaults
    to the drain timeout plus 15 s; it ends when the node reports drained (or its drain timed
    out) and holds no VIP. Off: until the node reports no maintenance."""
    if spec.node(node) is None:
        raise Refused(f"node {node} is not in the spec")
    limit = wait if wait is not None else drain_timeout + 15.0
    if on:
        if not force:
            why = maintenance_refusal(spec, _view(store, spec), node, store.maintenance())
            if why is not None:
                raise Refused(why)
        store.put_maintenance(Maintenance(node, reason, _now(), drain_timeout))
    else:
        store.delete_maintenance(node)
    log.info("event=maintenance_%s node=%s reason=%r", "on" if on else "off", node, reason)
    state = ""

    def done() -> bool:
        nonlocal state
        status = store.status_of(node)
        if status is None:
            return not on  # an absent node is out anyway; on needs its agent to say so
        state = status.maintenance
        if not on:
            return not state
        holds = any(s == "MASTER" for s in status.vrrp.values())
        return state.startswith(_SETTLED) and not holds

    confirmed, seconds = _wait(done, limit)
    return MaintenanceResult(node, on, state, confirmed, seconds)
