"""The agent's decisions, made on one thread from a queue of events.

ZooKeeper callbacks, timers and signals only enqueue events; ``Agent.run`` handles them one at
a time, so what the agent does never depends on which thread noticed what. Losing ZooKeeper
changes nothing on the node: files, services and VIPs stay as they are until a new version
arrives.

Whatever a version holds, applying it ends in "applied" or in a refusal written to the status
(``last_error``, stage, ``rejected_version``); an exception never leaves the loop, so no
stored version can put the agent into a crash loop. A version is one transaction over all of
its resources: each keeps a journal of the previous files until the version is saved as last
good (see stackha/agent/filesync.py); an agent killed before that puts the previous files back
on its next start and refuses the interrupted version (refusals are kept in the state
directory), so a version that kills the agent cannot do so on every restart.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from stackha import __version__
from stackha.agent import metrics
from stackha.agent.drain import open_connections, served_ports
from stackha.agent.filesync import (
    ApplyResult,
    CommandReload,
    FileSync,
    command_reload,
    describe,
    write_state_file,
)
from stackha.agent.mycatrole import (
    ManagerReload,
    MycatHealthSettings,
    MycatManagerSettings,
    loads_zookeeper,
    mysql_health,
)
from stackha.agent.nginxworkers import NginxReloadWatch
from stackha.agent.nodefiles import node_files
from stackha.agent.vrrp import VrrpSettings, keepalived_conf
from stackha.checks.nginx import check_nginx_dir
from stackha.checks.probes import check_http, check_mysql_greeting, check_tcp
from stackha.checks.scheduler import Check, CheckScheduler, Verdict
from stackha.keepalived.process import KeepalivedProcess, NotifyFifo, config_test
from stackha.keepalived.render import (
    TRIAL_TRACK,
    YIELD_TRACK,
    UnsafeValue,
    check_track,
    lower_priority_moves_at_once,
)
from stackha.keepalived.trackfile import TrackFiles
from stackha.keepalived.vridwatch import Advert, VridWatch
from stackha.lvs.loaddr import NetlinkLoopback
from stackha.lvs.node import LvsNode, LvsSettings
from stackha.model.bundle import (
    ROLE_PREFIXES,
    ConfigVersion,
    file_mode,
    parse_version,
    serialise_version,
    shipped_code_reason,
)
from stackha.model.cluster import ClusterView
from stackha.model.control import (
    Maintenance,
    SwitchoverRequest,
    drained_spec,
    parse_maintenance,
    parse_switchover,
    preferred_value,
    switchover_track,
)
from stackha.model.retry import RETRY_DELAYS, RetryPlan, plan_retry
from stackha.model.rollout import gate
from stackha.model.spec import HealthCheck, MycatSpec, StackSpec, parse_spec
from stackha.model.status import NodeStatus
from stackha.store.base import ConnectionState, StoreError, VersionUnreadable
from stackha.trust.signing import SPEC_PART, TrustedKeys, verify_part, verify_parts

if TYPE_CHECKING:
    from stackha.agent.endpoints import NodeView

log = logging.getLogger(__name__)

_REJECTED_KEPT = 50
# How long a canary that holds a VIP waits for another member to report MASTER after it
# yields. With the default adverts (0.03 s) a backup takes over within about 0.1 s and its
# agent reports the new state at once; 3 s leaves room for a loaded host, and bounds the
# wait when nobody else can take over (the canary then keeps the VIP at its trial priority).
HANDOVER_WAIT = 3.0
# While applying, how often the status thread looks for a VRRP change to report.
APPLY_VRRP_POLL = 0.1
# How often the agent reads every peer's status to flag a split brain (stackha status works
# it out from the reports itself; this is the metric and the log line).
SPLIT_BRAIN_EVERY = 5.0


@dataclass(frozen=True)
class RoleSettings:
    """Where a role's files live on this node and how its service is reloaded and checked."""

    target: Path
    reload: tuple[str, ...] | None = None
    # Health-check the role after a reload. What to ask (URL; MyCat's host, port, user and
    # timeout) comes from the version being applied (``health_checks`` of its spec), the same
    # source keepalived's checks are rendered from; ``health_url`` only overrides the URL.
    health: bool = False
    health_url: str | None = None
    # mycat only: reload through the manager port (instead of ``reload``); the password file
    # of the SQL-port health login.
    mycat_manager: MycatManagerSettings | None = None
    mycat_health: MycatHealthSettings | None = None
    # mycat only: backends (schema.xml urls) must lie in these networks or loopback; a
    # version naming any other is refused before MyCat sees it (None: not checked).
    mycat_backend_networks: tuple[ipaddress.IPv4Network, ...] | None = None


@dataclass(frozen=True)
class TrustSettings:
    """The keys this node pins (from its own disk, never from the store) and the cluster it
    belongs to: a signature made for another cluster does not verify here."""

    cluster: str
    keys: TrustedKeys


@dataclass(frozen=True)
class AgentSettings:
    node: str
    state_dir: Path
    roles: Mapping[str, RoleSettings] = field(default_factory=lambda: MappingProxyType({}))
    heartbeat: float = 5.0
    health_wait: float = 5.0
    # Staged rollout: how long a node waits for its canary, and how often it looks.
    rollout_wait: float = 60.0
    rollout_poll: float = 0.2
    vrrp: VrrpSettings | None = None
    lvs: LvsSettings | None = None
    # A hanging reload or health probe must not stall the agent: each has its own limit.
    reload_timeout: float = 20.0
    rollback_reload_timeout: float = 5.0  # after a reload that timed out, for the rollback's
    health_timeout: float = 2.0
    # On stop, leave keepalived running (VIPs, VRRP state, track files) for the next agent to
    # adopt: restarting or upgrading the agent moves nothing. False: stop it (SIGTERM).
    leave_services: bool = True
    # None: versions are applied unsigned (``--allow-unsigned``, development only).
    trust: TrustSettings | None = None


@dataclass(frozen=True)
class PendingVersion:
    """A version this node will apply once its canary has (see stackha.model.rollout)."""

    version: ConfigVersion
    since: float
    changed_roles: frozenset[str]  # fixed while it waits: nothing else is applied meanwhile
    logged: str = ""  # the wait last logged, so each new reason is logged once


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Agent:
    def __init__(self, settings: AgentSettings, store: Any):
        self.settings = settings
        self.store = store
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.applied: ConfigVersion | None = None
        self.rejected: set[int] = set()
        self.status = NodeStatus(node=settings.node, agent_version=__version__,
                                 canary_capable=True, heartbeat_interval=settings.heartbeat)
        self.zk_state = "CONNECTING"
        self._watching = False
        self._stopping = False
        self._vrrp_started = False
        self._members_by_vrid: dict[int, set[Any]] = {}
        self._pending: PendingVersion | None = None
        # A version that failed for a passing reason (stackha.model.retry), tried again then.
        self._retry: RetryPlan | None = None
        self._applying: ConfigVersion | None = None
        # VRRP states as keepalived's notify FIFO delivers them, for the status written while
        # the event loop applies a version (one writer thread, whole-value assignments).
        self._live_vrrp: dict[str, str] = {}
        self._specs: dict[str, StackSpec | None] = {}  # by the spec file's sha256
        self._specs_lock = threading.Lock()  # keepalived's supervisor thread reads it too
        # last-good.json and the journals hold every password of the node's files: root only.
        settings.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings.state_dir.chmod(0o700)
        self.rejected = self._load_rejected()
        self.mycat_reload: ManagerReload | None = None
        self.resources = {role: self._resource(role, rs) for role, rs in settings.roles.items()}
        self.keepalived: KeepalivedProcess | None = None
        self.vrrp_sync: FileSync | None = None
        self.tracks: TrackFiles | None = None
        # Every health check of the node (its VRRP groups' and a director's realservers), on
        # one scheduler; the track files come with VRRP (_setup_vrrp).
        self.checks: CheckScheduler = CheckScheduler(
            None, on_change=lambda name, verdict: self.events.put(("check", (name, verdict))))
        # Why this node holds yield.track at 1 (FAULT): "canary" (its trial), "health" (a
        # failed check in a group where a lower priority alone would not move the VIP).
        self._yielding: set[str] = set()
        self._next_split_brain_check = 0.0
        # The operator's requests (stackha.coordinator.control), as last read from the store
        # and kept in the state directory, so that a restarted agent (ZooKeeper not reached
        # yet) neither takes back a VIP it handed over nor lets a drained node back in.
        self._switchovers: dict[str, SwitchoverRequest] = {}
        self._maintenance: Maintenance | None = None
        self._drain_since: float | None = None
        self._drained: dict[str, Maintenance] = {}  # realservers a director gives weight 0
        self._control_watched: set[str] = set()
        self._load_control()
        if settings.vrrp is not None:
            self._setup_vrrp(settings.vrrp)
        # LVS-DR: realserver setup and the director's forwarding (see stackha/lvs/node.py).
        self.lvs = LvsNode(settings.lvs, self.checks) if settings.lvs is not None else None
        self._load_last_good()
        self._recover()

    def _setup_vrrp(self, vrrp: VrrpSettings) -> None:
        self.tracks = TrackFiles(vrrp.run_dir)
        self.checks.tracks = self.tracks
        self.keepalived = KeepalivedProcess(config=vrrp.conf_dir / "keepalived.conf",
                                            run_dir=vrrp.run_dir,
                                            on_exit=lambda code: self._withdraw_stale_vips(
                                                f"keepalived_exit_{code}"),
                                            before_spawn=lambda: self._withdraw_stale_vips(
                                                "before_start"))
        self.vrrp_sync = FileSync(
            name="keepalived", target=vrrp.conf_dir,
            validate=lambda staging: config_test((staging / "keepalived.conf").read_text()),
            reload=self.keepalived.reload, modes=lambda _path: 0o644,
            managed_list=self.settings.state_dir / "keepalived.managed")

    def _withdraw_stale_vips(self, why: str) -> None:
        """A keepalived killed hard cannot delete its VIPs. Left on the interface they answer
        ARP next to the new master's until the restart, so they come off before keepalived
        (re)starts, whether the supervisor saw it die or the whole node restarted; the new
        keepalived adds them back if it wins."""
        spec = self._spec_of(self.applied) if self.applied is not None else None
        vrrp = self.settings.vrrp
        if spec is None or vrrp is None:
            return
        for group in spec.groups_of(self.settings.node):
            device = NetlinkLoopback(vrrp.interface or group.interface)
            try:
                present = set(device.list())
                for vip in group.vips:
                    if (str(vip.ip), vip.network.prefixlen) in present:
                        device.remove(str(vip.ip), vip.network.prefixlen)
                        log.warning("event=stale_vip_withdrawn group=%s vip=%s why=%s",
                                    group.name, vip.ip, why)
            except Exception as exc:  # `ip` failing, or its JSON not what we expect
                log.error("event=stale_vip_withdraw_failed group=%s reason=%s", group.name, exc)

    # setup --------------------------------------------------------------------------------
    def _resource(self, role: str, settings: RoleSettings) -> FileSync:
        validate: Callable[[Path], list[str]] | None = None
        health = None
        if role == "nginx":
            def validate(staging: Path) -> list[str]:
                return [str(p) for p in check_nginx_dir(staging)]
            if settings.health:
                override = settings.health_url

                def health() -> str | None:
                    return check_http(override or self._health_check("nginx").url,
                                      timeout=self.settings.health_timeout)
        elif role == "mycat":
            def validate(staging: Path) -> list[str]:
                from stackha.mycat.validate import validate_mycat

                files = {f"mycat/{p.relative_to(staging).as_posix()}": p.read_bytes()
                         for p in staging.rglob("*") if p.is_file()}
                _, problems = validate_mycat(files, version=self._mycat_version())
                found = [str(p) for p in problems if p.is_error]
                schema = staging / "schema.xml"
                if settings.mycat_backend_networks is not None and schema.is_file():
                    from stackha.mycat.hosts import foreign_hosts

                    found += [f"mycat/{line}" for line in foreign_hosts(
                        schema.read_bytes(), settings.mycat_backend_networks)]
                return found
            if settings.health:
                local = settings.mycat_health or MycatHealthSettings()

                def mycat_check() -> MycatHealthSettings:
                    check = self._health_check("mycat")
                    return replace(local, host=check.host, port=check.port, user=check.user,
                                   timeout=check.timeout)

                health = mysql_health(mycat_check, settings.target)
            if settings.mycat_manager is not None:
                start = self._command(settings.reload) if settings.reload else None
                self.mycat_reload = ManagerReload(settings.mycat_manager, settings.target, start)
        reload: Callable[[], str | None] | None = None
        if role == "mycat" and self.mycat_reload is not None:
            reload = self.mycat_reload
        elif settings.reload:
            reload = self._command(settings.reload)
        return FileSync(
            name=role, target=settings.target, validate=validate,
            reload=reload,
            health=health, health_wait=self.settings.health_wait,
            # nginx: the health check waits until the master's workers are all new ones.
            reloaded=NginxReloadWatch(settings.target) if role == "nginx" else None,
            # The secret-file list names paths in the bundle (mycat/server.xml); the writer
            # sees paths relative to the role's target (server.xml).
            modes=lambda relative: file_mode(f"{ROLE_PREFIXES.get(role, '')}{relative}"),
            managed_list=self.settings.state_dir / f"{role}.managed",
        )

    def _command(self, command: tuple[str, ...]) -> CommandReload:
        return command_reload(list(command), self.settings.reload_timeout,
                              self.settings.rollback_reload_timeout)

    def _health_check(self, name: str) -> HealthCheck:
        """``health_checks.<name>`` of the version being applied, else of the applied one."""
        version = self._applying or self.applied
        spec = self._spec_of(version) if version is not None else None
        return spec.health_check(name) if spec is not None else HealthCheck(name)

    def _mycat_version(self) -> str:
        """``mycat.version`` of the version being applied: its files follow that grammar."""
        version = self._applying or self.applied
        spec = self._spec_of(version) if version is not None else None
        return spec.mycat.version if spec is not None else MycatSpec.version

    @property
    def last_good_path(self) -> Path:
        return self.settings.state_dir / "last-good.json"

    def _load_last_good(self) -> None:
        if not self.last_good_path.exists():
            return
        path = self.last_good_path
        version, problems = parse_version(path.read_bytes(), str(path))
        if version is None:
            log.warning("event=last_good_unreadable reason=%r", "; ".join(map(str, problems)))
            return
        self.applied = version
        self.status = replace(self.status, applied_version=version.number,
                              roles=self._roles_of(version))
        log.info("event=last_good_loaded version=%d", version.number)

    @property
    def rejected_path(self) -> Path:
        return self.settings.state_dir / "rejected.json"

    def _load_rejected(self) -> set[int]:
        try:
            raw = json.loads(self.rejected_path.read_bytes())
        except FileNotFoundError:
            return set()
        except (OSError, ValueError) as exc:
            log.warning("event=rejected_list_unreadable reason=%r", describe(exc))
            return set()
        numbers = raw.get("rejected", []) if isinstance(raw, dict) else []
        return {n for n in numbers if isinstance(n, int) and not isinstance(n, bool)}

    def _save_rejected(self) -> None:
        # The newest refusals are enough: versions only grow, older ones never come back.
        kept = sorted(self.rejected)[-_REJECTED_KEPT:]
        try:
            write_state_file(self.rejected_path, json.dumps({"rejected": kept}).encode())
        except OSError as exc:
            log.warning("event=rejected_list_write_failed reason=%r", describe(exc))

    def _all_resources(self) -> list[FileSync]:
        return [*self.resources.values(), *([self.vrrp_sync] if self.vrrp_sync else [])]

    def _recover(self) -> None:
        """A journal left behind: the agent died while applying. The previous files go back
        (unless the version was saved as last good) and that version is refused."""
        committed = self.applied.number if self.applied is not None else 0
        interrupted = set()
        for resource in self._all_resources():
            try:
                number = resource.recover(committed)
            except Exception as exc:  # recovery must not stop the agent from starting
                log.exception("event=recover_failed resource=%s", resource.name)
                self.status = replace(self.status, last_error=f"recovery of {resource.name}"
                                      f" failed: {describe(exc)}", last_error_time=_now())
                continue
            if number is not None:
                interrupted.add(number)
        for number in sorted(interrupted):
            self._fail(number, "interrupted", "the agent stopped while applying it; the "
                       "previous files were put back (publish it again to retry)")

    def _save_last_good(self, version: ConfigVersion) -> None:
        # The commit point of a version: once this is on disk, the journals are obsolete.
        write_state_file(self.last_good_path, serialise_version(version))

    def _roles_of(self, version: ConfigVersion) -> tuple[str, ...]:
        spec = self._spec_of(version)
        node = spec.node(self.settings.node) if spec else None
        return node.roles if node else ()

    def _spec_of(self, version: ConfigVersion) -> StackSpec | None:
        # Parsed once per content: the rollout gate, apply and undo all ask for it, and most
        # versions change nginx or MyCat files, not the spec (parse_spec is pure, and the
        # digest is of the bytes read). 6.5 ms of CPU for a 100-node spec, measured here.
        file = version.bundle.files.get("stackha.yaml")
        key = file.sha256 if file is not None else ""
        with self._specs_lock:
            if key not in self._specs:
                spec = None
                if file is not None:
                    spec, _ = parse_spec(version.bundle.text("stackha.yaml"), "stackha.yaml")
                if len(self._specs) >= 4:
                    self._specs.pop(next(iter(self._specs)))
                self._specs[key] = spec
            return self._specs[key]

    # events -------------------------------------------------------------------------------
    def on_zk_state(self, state: str) -> None:
        # Called on kazoo's thread: it must not block, so it only enqueues.
        self.events.put(("zk", state))

    def on_current(self, number: int | None) -> None:
        self.events.put(("current", number))

    def stop(self) -> None:
        self.events.put(("stop", None))

    def node_view(self) -> NodeView:
        """For the HTTP endpoints (their own threads): the last status with the VRRP states
        keepalived delivered since, read without waiting on the event loop."""
        # Imported here: http.server (7 MiB resident with what it pulls in) is loaded only by
        # an agent that serves its endpoints (--metrics-port).
        from stackha.agent.endpoints import NodeView

        status = self.status
        live = dict(self._live_vrrp)
        if live:
            status = replace(status, vrrp=MappingProxyType({**status.vrrp, **live}))
        applied = self.applied
        spec = self._spec_of(applied) if applied is not None else None
        groups = tuple(g.name for g in spec.groups_of(self.settings.node)) if spec else ()
        return NodeView(status=status, current_version=status.seen_version, groups=groups,
                        applying=self._applying is not None)

    def run(self) -> None:
        # The data plane comes back from local disk first: keepalived runs from the last file
        # written, whatever ZooKeeper's state.
        if self.applied is not None:
            spec = self._spec_of(self.applied)
            if spec is not None:
                self._members_by_vrid = {
                    g.virtual_router_id: {n.address for m in g.members
                                          if (n := spec.node(m.node))}
                    for g in spec.vrrp_groups}
        if self.settings.vrrp is not None:
            self._reset_tracks()
        # The checks' track files are written before keepalived starts reading them.
        self._configure_checks(self._spec_of(self.applied) if self.applied else None)
        self.checks.start()
        self._start_vrrp()
        if self._maintenance is not None:
            self._enter_maintenance(self._maintenance)
        elif self._drain_setting() is not None and self.mycat_reload is not None \
                and self.mycat_reload.set_online(True):
            # Undo the drain of a previous planned stop (harmless when MyCat is online).
            log.info("event=mycat_undrained")
        if self.lvs is not None and self.applied is not None:
            last_spec = self._spec_of(self.applied)
            if last_spec is not None:
                self.lvs.apply(drained_spec(last_spec, self._drained), self.settings.node)
        self.store.add_listener(self.on_zk_state)
        self.store.start(wait=False)
        metrics.ZK_CONNECTED.set(0)
        next_beat = time.monotonic()
        while not self._stopping:
            now = time.monotonic()
            deadline = next_beat if self._pending is None and self._drain_since is None \
                else min(next_beat, now + self.settings.rollout_poll)
            if self._retry is not None:
                deadline = min(deadline, self._retry.due)
            try:
                kind, payload = self.events.get(timeout=max(0.0, deadline - now))
            except queue.Empty:
                if self._pending is not None:
                    self._advance_rollout()
                if self._drain_since is not None:
                    self._update_drain()
                if self._retry is not None and time.monotonic() >= self._retry.due:
                    self._try_again()
                if time.monotonic() >= next_beat:
                    try:
                        self._heartbeat()
                    except Exception:
                        log.exception("event=heartbeat_failed")
                    next_beat = time.monotonic() + self.settings.heartbeat
                continue
            try:
                self.handle(kind, payload)
            except Exception as exc:  # one bad event must not take the node's agent down
                log.exception("event=handler_failed kind=%s", kind)
                self.status = replace(self.status, last_error=f"internal error handling "
                                      f"{kind}: {describe(exc)}", last_error_time=_now())
        self._shutdown()

    def handle(self, kind: str, payload: Any) -> None:
        if kind == "zk":
            self._on_zk(payload)
        elif kind == "current":
            self._on_current(payload)
        elif kind == "vrrp":
            self._on_vrrp(*payload)
        elif kind == "conflict":
            self._on_conflict(payload)
        elif kind == "check":
            self._on_check(*payload)
        elif kind == "switchover":
            self._on_switchover(*payload)
        elif kind == "maintenance":
            self._on_maintenance(*payload)
        elif kind == "stop":
            self._stopping = True

    def _on_zk(self, state: str) -> None:
        previous, self.zk_state = self.zk_state, str(state)
        log.info("event=zookeeper state=%s previous=%s", state, previous)
        metrics.ZK_CONNECTED.set(1 if state == ConnectionState.CONNECTED else 0)
        if state == ConnectionState.SUSPENDED:
            return  # pause: change nothing on the node
        if state == ConnectionState.LOST:
            return  # our ephemeral status is gone; CONNECTED re-registers it
        if state == ConnectionState.CONNECTED:
            if self._pending is not None:
                # Time without ZooKeeper is no time the canary had: the wait starts again.
                self._pending = replace(self._pending, since=time.monotonic())
            self._report()
            if not self._watching:
                try:
                    self.store.watch_current(self.on_current)
                    self._watching = True
                except StoreError as exc:
                    log.warning("event=watch_failed reason=%r", str(exc))
            else:
                self._resync()
            self._watch_control()

    def _resync(self) -> None:
        try:
            number = self.store.current_number()
        except StoreError as exc:
            log.warning("event=resync_failed reason=%r", str(exc))
            return
        self._on_current(number)

    def _try_again(self) -> None:
        plan = self._retry
        if plan is None or self.zk_state != ConnectionState.CONNECTED:
            return  # the resync after CONNECTED tries it (nothing in rejected holds it back)
        log.info("event=apply_retry version=%d attempt=%d", plan.number, plan.attempt)
        self._resync()
        if self._retry is plan:
            # Neither applied nor failed again (the store did not answer, a canary still
            # holds it): the same try, one delay later.
            self._retry = replace(plan, due=time.monotonic() + plan.delay)

    # applying -----------------------------------------------------------------------------
    def _on_current(self, number: int | None) -> None:
        if number is None:
            return
        self.status = replace(self.status, seen_version=number)
        if self._retry is not None and self._retry.number != number:
            self._retry = None  # another version is current: the one waiting is not
        if self._pending is not None and self._pending.version.number == number:
            self._advance_rollout()
            return
        self._pending = None  # a newer version replaces one still waiting for its canary
        if self.applied and self.applied.number == number:
            self._report()
            return
        if number in self.rejected:
            self._report()
            return
        retry = self._retry
        if retry is not None and retry.number == number and time.monotonic() < retry.due:
            # A reconnect's resync or a repeated watch event: not before its time, or a
            # flapping session would spend every try within seconds.
            return
        if self.applied and number < self.applied.number:
            # Rollbacks are published as new, higher versions: a lower current is a mistake
            # or an attack, and applying it would move this node backwards.
            self._fail(number, "verify", f"config/current {number} is lower than applied "
                       f"version {self.applied.number}; a rollback is published as a new "
                       "version")
            self._report()
            return
        try:
            version = self.store.read_version(number)
        except VersionUnreadable as exc:
            self._fail(number, "verify", str(exc))
            return
        except StoreError as exc:
            log.warning("event=fetch_failed version=%d reason=%r", number, str(exc))
            return
        if version is None:
            self._fail(number, "fetch", f"version {number} not found in the store")
            return
        # First: a part this node may not read has no signature it can see either, and "not
        # readable" names the cause (ACLs behind the spec) where "unsigned" would not.
        withheld = sorted(set(self._roles_of(version)) & version.withheld)
        if withheld:
            # Applying it would remove this role's files: the ACLs lag behind the spec.
            self._fail(number, "verify", f"version {number}: files of role "
                       f"{', '.join(withheld)} are not readable with this node's credential "
                       "(run stackha init as the coordinator)")
            return
        untrusted = self._untrusted(version, number)
        if untrusted is not None:
            # Before the canary wait and before anything is staged: nothing of it runs here.
            self._fail(number, "signature", untrusted)
            self._report()
            return
        self._pending = PendingVersion(version, time.monotonic(),
                                       frozenset(self._changed_roles(version)))
        self._advance_rollout()

    def _untrusted(self, version: ConfigVersion, number: int) -> str | None:
        """Why this node must not apply ``version`` (read as version ``number``), or None.

        The spec part comes first: which role parts the node needs is read from the spec,
        and only a spec that verified is parsed for it. Then exactly the parts the node
        writes; a part it never reads (another role's files) is none of its business."""
        trust = self.settings.trust
        if trust is None:
            return None
        signatures = version.signatures
        reason = verify_part(trust.keys, trust.cluster, number, SPEC_PART, version.bundle,
                             signatures)
        if reason is not None:
            return reason
        spec = self._spec_of(version)
        node = spec.node(self.settings.node) if spec is not None else None
        roles = [role for role in node.roles if role in ROLE_PREFIXES] if node else []
        return verify_parts(trust.keys, trust.cluster, number, roles, version.bundle,
                            signatures)

    # staged rollout -----------------------------------------------------------------------
    def _changed_roles(self, version: ConfigVersion) -> set[str]:
        """Roles whose files on this node differ between the applied version and ``version``."""
        spec = self._spec_of(version)
        if spec is None:
            return set()
        new = node_files(version.bundle, spec, self.settings.node)
        old_spec = self._spec_of(self.applied) if self.applied is not None else None
        old = node_files(self.applied.bundle, old_spec, self.settings.node) \
            if self.applied is not None and old_spec is not None else {}
        return {role for role, files in new.items()
                if role in self.resources and files != old.get(role)}

    def _advance_rollout(self) -> None:
        pending = self._pending
        if pending is None or self.zk_state != ConnectionState.CONNECTED:
            return  # the canary's report is in ZooKeeper: the resync after CONNECTED resumes
        version = pending.version
        unreadable: list[str] = []

        def canary_status(node: str) -> NodeStatus | None:
            try:
                return self.store.status_of(node)
            except StoreError as exc:
                # Unreadable counts as silent: the wait still ends at --rollout-wait.
                unreadable.append(f"{node} unreadable: {exc}")
                return NodeStatus(node=node)

        try:
            decision = gate(version.number, version.canaries, self.settings.node,
                            pending.changed_roles, canary_status,
                            time.monotonic() - pending.since, self.settings.rollout_wait)
        except Exception as exc:  # a malformed rollout section must not stop the agent
            self._pending = None
            log.exception("event=rollout_gate_failed version=%d", version.number)
            self._fail(version.number, "canary", f"rollout section unusable: {describe(exc)}")
            self._report()
            return
        if decision.decision == "wait":
            reason = "; ".join([decision.reason, *unreadable])
            if reason != pending.logged:
                self._pending = replace(pending, logged=reason)
                log.info("event=rollout_wait version=%d reason=%r", version.number, reason)
                self._report()
            return
        self._pending = None
        if decision.decision == "reject":
            self._fail(version.number, "canary", decision.reason)
        else:
            if decision.reason:
                log.warning("event=rollout_proceed version=%d reason=%r", version.number,
                            decision.reason)
            self.apply(version)
        self._report()

    def apply(self, version: ConfigVersion) -> bool:
        self._applying = version
        done = threading.Event()
        beat = threading.Thread(target=self._beat_while_applying, args=(version, done),
                                name="apply-heartbeat", daemon=True)
        beat.start()
        trial = False
        try:
            trial = self._begin_trial(version)
            return self._apply(version)
        except Exception as exc:  # a bug or an unforeseen name: refuse, put everything back
            log.exception("event=apply_internal_error version=%d", version.number)
            for resource in self._all_resources():
                problem = resource.rollback()
                if problem:
                    log.error("event=rollback_incomplete resource=%s reason=%r",
                              resource.name, problem)
            self._fail(version.number, "internal", describe(exc))
            return False
        finally:
            if trial:
                self._end_trial(version)
            done.set()
            beat.join()
            self._applying = None

    # the canary's trial ----------------------------------------------------------------------
    def _write_track(self, name: str, value: int) -> None:
        """Replace a keepalived track file at once: keepalived rereads it on the rename."""
        if self.tracks is not None:
            self.tracks.write(name, value, force=True)

    def _set_yield(self, reason: str, on: bool) -> None:
        """yield.track is 1 while any reason holds (the canary's trial, a failed check)."""
        before = bool(self._yielding)
        if on:
            self._yielding.add(reason)
        else:
            self._yielding.discard(reason)
        if bool(self._yielding) != before:
            log.info("event=vrrp_yield state=%s reasons=%s", "on" if self._yielding else "off",
                     ",".join(sorted(self._yielding)) or "-")
            self._write_track(YIELD_TRACK, 1 if self._yielding else 0)

    def _reset_tracks(self) -> None:
        """A trial a killed agent left behind must not keep the node's priority down."""
        self._write_track(TRIAL_TRACK, 0)
        # A node in maintenance stays yielded across a restart (no 0 written in between: a
        # moment at full priority would take the VIP back under preempt).
        self._yielding = {"maintenance"} if self._maintenance is not None else set()
        self._write_track(YIELD_TRACK, 1 if self._yielding else 0)
        self._update_preferred()

    def _begin_trial(self, version: ConfigVersion) -> bool:
        """As this version's canary, keep out of every VIP for the trial, so that a version
        that then fails is never served through a VIP while another node can serve.

        With a healthy, fresh peer in each of its groups the node goes to FAULT for the whole
        trial (the yield file): it can then not take a VIP whatever happens to the peer's
        adverts on a loaded host (seen in the drill: at load 9.5 a canary at priority 1 still
        held the web VIP for 80 ms). Without one it only takes its priority down to 1 (the
        trial file), so that it still serves when nobody else can. A VIP it holds is handed
        over before loading, in both cases. Returns whether a trial began."""
        if self.settings.vrrp is None:
            return False
        mine = {role for role, node in version.canaries.items() if node == self.settings.node}
        spec = self._spec_of(version)
        if not mine & self._changed_roles(version) or spec is None \
                or not spec.groups_of(self.settings.node):
            return False
        self._write_track(TRIAL_TRACK, 1)
        held = sorted(g for g, state in self.status.vrrp.items() if state == "MASTER")
        groups = [g.name for g in spec.groups_of(self.settings.node)]
        covered = self._peers_can_serve(groups)
        log.info("event=canary_trial_start version=%d roles=%s holds=%s mode=%s",
                 version.number, ",".join(sorted(mine)), ",".join(held) or "-",
                 "fault" if covered else "lowest_priority")
        if covered:
            self._set_yield("canary", True)
            if held:
                self._wait_for_other_masters(held)
        elif held:
            self._set_yield("canary", True)
            try:
                self._wait_for_other_masters(held)
            finally:
                self._set_yield("canary", False)
        return True

    def _peers_can_serve(self, groups: list[str]) -> bool:
        """Whether each group has another member whose fresh report has every health check ok
        and a VRRP state (MASTER or BACKUP) for it."""
        try:
            view = ClusterView.of(None, None, self.store.statuses(), datetime.now(UTC))
        except StoreError as exc:
            log.warning("event=peer_status_failed reason=%r", str(exc))
            return False
        fresh = {row.node: row.status for row in view.rows()
                 if row.status is not None and not row.stale}
        # Health, not last_error: a peer that refused an earlier version still serves.
        return all(any(name != self.settings.node and status.health
                       and all(v == "ok" for v in status.health.values())
                       and status.vrrp.get(group) in ("MASTER", "BACKUP")
                       for name, status in fresh.items())
                   for group in groups)

    def _wait_for_other_masters(self, groups: list[str]) -> None:
        """Bounded wait until another member reports MASTER of each group this node yielded."""
        deadline = time.monotonic() + HANDOVER_WAIT
        taken = False
        while not taken and time.monotonic() < deadline:
            try:
                masters = ClusterView.of(None, None, self.store.statuses(),
                                         datetime.now(UTC)).masters()
                taken = all(any(n != self.settings.node for n in masters.get(g, ()))
                            for g in groups)
            except StoreError:
                pass
            if not taken:
                time.sleep(0.05)
        if taken:
            log.info("event=canary_handed_over groups=%s", ",".join(groups))
        else:
            log.warning("event=canary_handover_unconfirmed groups=%s waited=%.1f",
                        ",".join(groups), HANDOVER_WAIT)

    def _end_trial(self, version: ConfigVersion) -> None:
        try:
            self._set_yield("canary", False)
            self._write_track(TRIAL_TRACK, 0)
        except OSError as exc:
            log.error("event=canary_trial_end_failed reason=%r", describe(exc))
            return
        log.info("event=canary_trial_end version=%d", version.number)

    def _beat_while_applying(self, version: ConfigVersion, done: threading.Event) -> None:
        """Reloads and health waits can take long: the status keeps its heartbeat meanwhile,
        says which version is being applied (in ``health``, one entry per role), and carries
        VRRP changes as keepalived reports them (the event loop is busy applying), so that
        whoever reads it sees a canary that became MASTER during its trial when it did."""
        last_beat = time.monotonic()
        shown = dict(self.status.vrrp)
        while not done.wait(APPLY_VRRP_POLL):
            vrrp = dict(self._live_vrrp)
            if vrrp == shown and time.monotonic() - last_beat < self.settings.heartbeat:
                continue
            shown, last_beat = vrrp, time.monotonic()
            status = replace(self.status, heartbeat=_now(), vrrp=MappingProxyType(vrrp),
                             health=MappingProxyType({role: f"applying version {version.number}"
                                                      for role in self.resources}))
            if self.zk_state != ConnectionState.CONNECTED:
                continue
            try:
                self.store.put_status(status)
            except Exception as exc:  # StoreError, or kazoo failing in a way it should not
                log.warning("event=status_write_failed reason=%r", describe(exc))

    def _on_notify(self, group: str, state: str) -> None:
        """keepalived's notify FIFO (its own thread): the live state, then the event loop."""
        self._live_vrrp[group] = state
        self.events.put(("vrrp", (group, state)))

    def _apply(self, version: ConfigVersion) -> bool:
        spec = self._spec_of(version)
        if spec is None:
            # The same parser as the coordinator's, so the same grammar: name the first error.
            _, problems = parse_spec(version.bundle.text("stackha.yaml"), "stackha.yaml") \
                if "stackha.yaml" in version.bundle.files else (None, [])
            first = next((str(p) for p in problems if p.is_error), "")
            self._fail(version.number, "verify", "the version's stackha.yaml does not parse"
                       + (f": {first}" if first else ""))
            return False
        if spec.node(self.settings.node) is None:
            self._fail(version.number, "verify",
                       f"node {self.settings.node} is not in version {version.number}'s spec")
            return False
        files = node_files(version.bundle, spec, self.settings.node)
        # Nothing is staged (so nothing validated, so no nginx -t) for a version that ships
        # code: the coordinator refuses it too, but the store is not trusted.
        shipped = [reason for role, role_set in files.items() for path, content in
                   role_set.items() if (reason := shipped_code_reason(f"{role}/{path}", content))]
        if shipped:
            self._fail(version.number, "verify", shipped[0])
            return False
        done: list[str] = []
        changed = self._changed_roles(version)  # every role when nothing is applied yet
        for role, role_set in files.items():
            resource = self.resources.get(role)
            if resource is None:
                continue
            if role == "mycat" and role not in changed and loads_zookeeper(role_set):
                # In its ZooKeeper mode MyCat rewrites conf/ from the layout in its own
                # rendering: the same files as the applied version's are MyCat's to keep.
                # Writing ours back made every push (nginx-only ones too) a reload of every
                # MyCat node, which stalled SQL on a loaded host.
                log.info("event=mycat_files_left_to_mycat version=%d reason=%r",
                         version.number, "unchanged since the applied version; ZooKeeper mode")
                continue
            if role == "mycat" and self.mycat_reload is not None:
                self.mycat_reload.prepare(role_set)  # config or config_all, old vs new files
            result = resource.apply(role_set, version=version.number, hold=True)
            metrics.RELOAD_SECONDS.labels(role=role).observe(result.reload_seconds)
            if not result.ok:
                self._undo(done)
                self._fail(version.number, result.stage, f"{role}: {result.reason}", result)
                return False
            done.append(role)
        vrrp_problem = self._apply_vrrp(spec, version.number)
        if vrrp_problem is not None:
            self._undo(done)
            self._fail(version.number, vrrp_problem.stage, f"keepalived: {vrrp_problem.reason}",
                       vrrp_problem)
            return False
        self.applied = version
        self._retry = None
        self._save_last_good(version)
        for resource in self._all_resources():
            resource.commit()
        if self.lvs is not None:
            self.lvs.apply(drained_spec(spec, self._drained), self.settings.node)
        self.status = replace(self.status, applied_version=version.number, roles=spec.node(
            self.settings.node).roles, last_error="", last_error_time="")
        metrics.APPLIED_VERSION.set(version.number)
        self._configure_checks(spec)
        self._update_preferred()
        self._watch_control()
        log.info("event=applied version=%d roles=%s", version.number, ",".join(done) or "-")
        return True

    def _apply_vrrp(self, spec: StackSpec, number: int) -> ApplyResult | None:
        vrrp = self.settings.vrrp
        if vrrp is None or self.vrrp_sync is None or not spec.groups_of(self.settings.node):
            return None
        ipvs = self.lvs is not None and self.lvs.uses_ipvs(spec, self.settings.node)
        try:
            # Directors' IPVS tables: realservers in maintenance at weight 0.
            text = keepalived_conf(drained_spec(spec, self._drained), self.settings.node,
                                   vrrp, ipvs)
        except UnsafeValue as exc:  # the parser refuses these first; this is the backstop
            return ApplyResult(changed=False, ok=False, stage="validate", reason=str(exc))
        result = self.vrrp_sync.apply({"keepalived.conf": text.encode()}, version=number,
                                      hold=True)
        if not result.ok:
            return result
        self._members_by_vrid = {
            g.virtual_router_id: {n.address for m in g.members if (n := spec.node(m.node))}
            for g in spec.vrrp_groups}
        self._start_vrrp()
        return None

    def _start_vrrp(self) -> None:
        vrrp = self.settings.vrrp
        if vrrp is None or self.keepalived is None or self._vrrp_started:
            return
        if not self.keepalived.config.exists():
            return
        NotifyFifo(vrrp.fifo, lambda group, state, _prio: self._on_notify(group, state)).start()
        if vrrp.watch_vrids:
            VridWatch(lambda: self._members_by_vrid,
                      lambda advert: self.events.put(("conflict", advert))).start()
        self.keepalived.start()
        self._vrrp_started = True
        if self.keepalived.adopted:
            self._adopted_vrrp_states()

    def _adopted_vrrp_states(self) -> None:
        """An adopted keepalived told its transitions to the agent before us: until it tells
        the next one, a group whose VIPs are all on the interface is MASTER, else BACKUP."""
        spec = self._spec_of(self.applied) if self.applied is not None else None
        vrrp = self.settings.vrrp
        if spec is None or vrrp is None:
            return
        for group in spec.groups_of(self.settings.node):
            try:
                present = set(NetlinkLoopback(vrrp.interface or group.interface).list())
            except Exception as exc:  # `ip` failing, or its JSON not what we expect
                log.warning("event=adopted_state_unknown group=%s reason=%s", group.name, exc)
                continue
            held = all((str(v.ip), v.network.prefixlen) in present for v in group.vips)
            state = "MASTER" if held and group.vips else "BACKUP"
            log.info("event=vrrp_state_adopted group=%s state=%s", group.name, state)
            self._live_vrrp.setdefault(group.name, state)
            self.events.put(("vrrp", (group.name, state)))

    def _on_vrrp(self, group: str, state: str) -> None:
        log.info("event=vrrp_state group=%s state=%s", group, state)
        vrrp = dict(self.status.vrrp)
        previous = vrrp.get(group)
        vrrp[group] = state
        since = dict(self.status.vrrp_since)
        if previous is not None and previous != state:
            # A change seen, not a first state (an adopted keepalived's is no takeover):
            # readers weigh a peer's older MASTER claim against it (stackha.model.cluster).
            since[group] = _now()
        self.status = replace(self.status, vrrp=MappingProxyType(vrrp),
                              vrrp_since=MappingProxyType(since))
        metrics.VRRP_STATE.labels(group=group).set(1 if state == "MASTER" else 0)
        self._report()

    # health checks ----------------------------------------------------------------------------
    def _configure_checks(self, spec: StackSpec | None) -> None:
        """The checks this node's VRRP groups name, as the applied spec describes them."""
        if self.settings.vrrp is None:
            return  # without VRRP the roles' own health functions report health
        names = sorted({n for g in spec.groups_of(self.settings.node) for n in g.checks}) \
            if spec is not None else []
        self.checks.configure([self._check(spec.health_check(n)) for n in names
                               if spec is not None])

    @staticmethod
    def _check(check: HealthCheck) -> Check:
        if check.name == "nginx":
            def probe() -> str | None:
                return check_http(check.url, check.timeout)
        else:
            # MyCat: its greeting on the SQL port (a connect and a read, no login), and the
            # manager port when the spec names one.
            def probe() -> str | None:
                reason = check_mysql_greeting(check.host, check.port, check.timeout)
                if reason is None and check.manager_port:
                    reason = check_tcp(check.host, check.manager_port, check.timeout)
                return reason
        return Check(name=check.name, probe=probe, interval=check.interval, fall=check.fall,
                     rise=check.rise, track=check_track(check.name))

    def _on_check(self, name: str, verdict: Verdict) -> None:
        metrics.HEALTH_OK.labels(check=name).set(1 if verdict.healthy else 0)
        self._update_preferred()
        # Report first, then look at the peers: two nodes failing at once each publish their
        # failure before reading the other's report, so they cannot both stand down.
        self._report()
        self._update_health_yield()

    def _update_health_yield(self) -> None:
        """Fail open, also where a lower priority moves nothing (or moves it late: no
        preempt, a preempt delay, slow adverts; see lower_priority_moves_at_once): there a
        failed check takes the node to FAULT only while another member's fresh report is
        healthy, so the VIP never loses its last holder."""
        if self.applied is None:
            return
        spec = self._spec_of(self.applied)
        verdicts = self.checks.verdicts()
        groups = [g.name for g in (spec.groups_of(self.settings.node) if spec else [])
                  if not lower_priority_moves_at_once(g)
                  and any(c in verdicts and not verdicts[c].healthy for c in g.checks)]
        if not groups:
            self._set_yield("health", False)
            return
        self._set_yield("health", self._peers_can_serve(groups))

    def _on_conflict(self, advert: Advert) -> None:
        text = f"vrid {advert.vrid} advertised by {advert.source} (not a member)"
        if text in self.status.vrid_conflicts:
            return
        log.warning("event=vrid_conflict vrid=%d source=%s priority=%d", advert.vrid,
                    advert.source, advert.priority)
        metrics.VRID_CONFLICTS.inc()
        self.status = replace(self.status,
                              vrid_conflicts=(*self.status.vrid_conflicts, text)[-10:])
        self._report()

    def _undo(self, roles: list[str]) -> None:
        """Put roles applied earlier in this round back as their journals hold them."""
        previous = None
        if self.applied is not None and (spec := self._spec_of(self.applied)) is not None:
            previous = node_files(self.applied.bundle, spec, self.settings.node)
        for role in roles:
            if role == "mycat" and self.mycat_reload is not None and previous is not None:
                self.mycat_reload.prepare(previous.get(role, {}))
            problem = self.resources[role].rollback()
            if problem:
                log.error("event=rollback_incomplete resource=%s reason=%r", role, problem)

    def _fail(self, number: int, stage: str, reason: str,
              result: ApplyResult | None = None) -> None:
        # One line whatever the version holds: a name may carry a newline.
        reason = "".join(c if c.isprintable() else repr(c)[1:-1] for c in reason)
        what = "rolled_back" if result and result.rolled_back else "rejected"
        metrics.APPLY_FAILURES.labels(reason=stage).inc()
        plan = plan_retry(number, self._retry, time.monotonic()) \
            if result is not None and result.retryable else None
        self._retry = plan
        if plan is not None:
            # Not refused: the node stays on its applied version and reports why, in words
            # that do not make `stackha up` or a waiting canary follower give up on it.
            log.warning("event=apply_retry_planned version=%d attempt=%d of=%d in=%g stage=%s "
                        "reason=%r", number, plan.attempt, len(RETRY_DELAYS), plan.delay,
                        stage, reason)
            self.status = replace(self.status, last_error=(
                f"retrying version {number} in {plan.delay:g} s (try {plan.attempt + 1} of "
                f"{len(RETRY_DELAYS) + 1}): {what.replace('_', ' ')} at {stage}: {reason}"),
                last_error_time=_now())
            return
        self.rejected.add(number)
        self._save_rejected()
        log.warning("event=%s version=%d stage=%s reason=%r", what, number, stage, reason)
        self.status = replace(self.status, rejected_version=number,
                              last_error=f"version {number} {what.replace('_', ' ')}"
                                         f" at {stage}: {reason}",
                              last_error_time=_now())

    # reporting ----------------------------------------------------------------------------
    def _health(self) -> dict[str, str]:
        # The scheduled checks' verdicts where there are some: no extra probe per report.
        verdicts = self.checks.verdicts()
        results = {name: "ok" if v.healthy else v.reason for name, v in verdicts.items()}
        for role, resource in self.resources.items():
            if role not in results and resource.health is not None:
                reason = resource.health()
                results[role] = "ok" if reason is None else reason
        return results

    def _heartbeat(self) -> None:
        self._report()
        now = time.monotonic()
        split_brain_due = now >= self._next_split_brain_check
        if self._yielding & {"health"} or any(
                not v.healthy for v in self.checks.verdicts().values()):
            self._update_health_yield()  # a peer may have failed too: fail open again
        if self.settings.vrrp is not None and self.zk_state == ConnectionState.CONNECTED \
                and split_brain_due:
            # Reading every node's status is the heartbeat's dearest part; the metric and
            # the log line need no more than one look per SPLIT_BRAIN_EVERY.
            self._next_split_brain_check = now + SPLIT_BRAIN_EVERY
            self._check_split_brain()

    def _check_split_brain(self) -> None:
        """Several nodes claiming MASTER of one group is reported, never acted upon."""
        try:
            statuses = self.store.statuses()
        except StoreError as exc:
            log.warning("event=peer_status_failed reason=%r", str(exc))
            return
        # With the time, a stale report (a peer killed hard, its session not yet expired)
        # claims nothing: split brain is raised from fresh reports only.
        masters = ClusterView.of(None, None, statuses, datetime.now(UTC)).masters()
        for group in self.status.vrrp:
            nodes = masters.get(group, [])
            metrics.SPLIT_BRAIN.labels(group=group).set(1 if len(nodes) > 1 else 0)
            if len(nodes) > 1:
                log.warning("event=split_brain group=%s masters=%s", group, ",".join(nodes))

    def _report(self) -> None:
        self.status = replace(self.status, heartbeat=_now(), zookeeper=self.zk_state,
                              health=MappingProxyType(self._health()))
        if self.zk_state != ConnectionState.CONNECTED:
            return
        try:
            self.store.put_status(self.status)
        except StoreError as exc:
            log.warning("event=status_write_failed reason=%r", str(exc))

    def _drain_setting(self) -> float | None:
        return self.mycat_reload.settings.drain_wait if self.mycat_reload is not None else None

    def _shutdown(self) -> None:
        log.info("event=stopping node=%s", self.settings.node)
        wait = self._drain_setting()
        if wait is not None and self.mycat_reload is not None \
                and self.mycat_reload.set_online(False):
            # A planned stop: the directors' health checks drop the node before MyCat goes.
            log.info("event=mycat_drained wait=%.1f", wait)
            time.sleep(wait)
        if self.keepalived is not None:
            if self.settings.leave_services:
                # A restart or an upgrade of the agent: keepalived goes on as it is and the
                # next agent adopts it. Taking the node out is `stackha agent --stop-services`.
                self.keepalived.detach()
            else:
                # SIGTERM makes a master advertise priority 0: the backup takes over at once.
                self.keepalived.stop()
        self.checks.stop()  # after keepalived: joining the thread must not delay it
        if self.lvs is not None:
            # Only the health checks stop: VIPs, sysctls and forwarding stay in place.
            self.lvs.stop()
        try:
            self.store.delete_status(self.settings.node)
            self.store.close()
        except (StoreError, OSError) as exc:
            log.warning("event=close_failed reason=%r", str(exc))

    # operator requests: switchover and maintenance ----------------------------------------
    @property
    def control_path(self) -> Path:
        return self.settings.state_dir / "control.json"

    def _load_control(self) -> None:
        try:
            raw = json.loads(self.control_path.read_bytes())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("event=control_state_unreadable reason=%r", describe(exc))
            return
        if not isinstance(raw, dict):
            return
        me = self.settings.node
        if isinstance(raw.get("maintenance"), dict):
            self._maintenance = parse_maintenance(me, json.dumps(raw["maintenance"]).encode())
        for group, entry in (raw.get("switchover") or {}).items():
            request = parse_switchover(str(group), json.dumps(entry).encode())
            if request is not None:
                self._switchovers[str(group)] = request
        for node, entry in (raw.get("drained") or {}).items():
            found = parse_maintenance(str(node), json.dumps(entry).encode())
            if found is not None:
                self._drained[str(node)] = found
        log.info("event=control_state_loaded maintenance=%s switchover=%s drained=%s",
                 "on" if self._maintenance else "off",
                 ",".join(f"{g}:{r.to}" for g, r in sorted(self._switchovers.items())) or "-",
                 ",".join(sorted(self._drained)) or "-")

    def _save_control(self) -> None:
        document = {
            "maintenance": json.loads(self._maintenance.to_json()) if self._maintenance
            else None,
            "switchover": {g: json.loads(r.to_json()) for g, r in self._switchovers.items()},
            "drained": {n: json.loads(m.to_json()) for n, m in self._drained.items()}}
        try:
            write_state_file(self.control_path, json.dumps(document, sort_keys=True).encode())
        except OSError as exc:
            log.warning("event=control_state_write_failed reason=%r", describe(exc))

    def _watch_control(self) -> None:
        """Watch the requests that concern this node: its own maintenance, each of its
        groups' switchover, and (a director) its realservers' maintenance. Watches live with
        the session's client, so each is set once."""
        if self.zk_state != ConnectionState.CONNECTED \
                or not hasattr(self.store, "watch_switchover"):
            return
        spec = self._spec_of(self.applied) if self.applied is not None else None
        me = self.settings.node
        wanted = {f"maintenance/{me}"}
        if spec is not None:
            wanted |= {f"switchover/{g.name}" for g in spec.groups_of(me)}
            node = spec.node(me)
            if node is not None and "director" in node.roles:
                wanted |= {f"maintenance/{name}" for service in spec.lvs_services
                           for name in service.realservers}
        for key in sorted(wanted - self._control_watched):
            kind, name = key.split("/", 1)
            try:
                if kind == "switchover":
                    self.store.watch_switchover(name, lambda request, group=name:
                                                self.events.put(("switchover",
                                                                 (group, request))))
                else:
                    self.store.watch_maintenance(name, lambda found, node=name:
                                                 self.events.put(("maintenance",
                                                                  (node, found))))
            except StoreError as exc:
                log.warning("event=control_watch_failed what=%s reason=%r", key, str(exc))
                continue
            self._control_watched.add(key)

    def _group_healthy(self, checks: tuple[str, ...]) -> bool:
        verdicts = self.checks.verdicts()
        return all(verdicts[c].healthy for c in checks if c in verdicts)

    def _update_preferred(self) -> None:
        """switchover_<group>.track: 1 while this node is the group's preferred holder and
        may serve (its checks pass, it is not in maintenance)."""
        if self.tracks is None or self.applied is None:
            return
        spec = self._spec_of(self.applied)
        for group in spec.groups_of(self.settings.node) if spec is not None else ():
            value = preferred_value(self._switchovers.get(group.name), self.settings.node,
                                    self._group_healthy(group.checks),
                                    self._maintenance is not None)
            if self.tracks.write(switchover_track(group.name), value):
                log.info("event=switchover_track group=%s value=%d", group.name, value)

    def _on_switchover(self, group: str, request: SwitchoverRequest | None) -> None:
        if self._switchovers.get(group) == request:
            return
        if request is None:
            self._switchovers.pop(group, None)
        else:
            self._switchovers[group] = request
        log.info("event=switchover_request group=%s to=%s id=%s", group,
                 request.to if request else "-", request.id if request else "-")
        self._save_control()
        self._update_preferred()
        spec = self._spec_of(self.applied) if self.applied is not None else None
        found = next((g for g in spec.groups_of(self.settings.node) if g.name == group),
                     None) if spec is not None else None
        if request is None or request.to == self.settings.node or found is None \
                or self.status.vrrp.get(group) != "MASTER" \
                or lower_priority_moves_at_once(found):
            return
        # No preempt (or a slow one): the target's higher priority moves nothing while this
        # node advertises, so it steps aside (FAULT, a priority-0 advert) until the target is
        # MASTER; then it comes back as BACKUP and, the target now being the highest, stays.
        self._set_yield("switchover", True)
        try:
            self._wait_for_other_masters([group])
        finally:
            self._set_yield("switchover", False)

    def _on_maintenance(self, node: str, found: Maintenance | None) -> None:
        if node != self.settings.node:
            self._on_peer_maintenance(node, found)
            return
        if found == self._maintenance:
            return
        if found is None:
            self._leave_maintenance()
        else:
            self._enter_maintenance(found)
        self._save_control()
        self._report()

    def _enter_maintenance(self, found: Maintenance) -> None:
        """Hand the VIPs over, MyCat offline, then count connections until they drain."""
        first = self._maintenance is None or self._drain_since is None
        self._maintenance = found
        log.info("event=maintenance state=on reason=%r", found.reason)
        self._set_yield("maintenance", True)
        self._update_preferred()
        if self.mycat_reload is not None and self.mycat_reload.set_online(False):
            log.info("event=mycat_offline why=maintenance")
        if first:
            self._drain_since = time.monotonic()
        self.status = replace(self.status, maintenance="draining",
                              maintenance_reason=found.reason)
        self._update_drain()

    def _leave_maintenance(self) -> None:
        log.info("event=maintenance state=off")
        self._maintenance = None
        self._drain_since = None
        if self.mycat_reload is not None and self.mycat_reload.set_online(True):
            log.info("event=mycat_online why=maintenance_off")
        self._set_yield("maintenance", False)
        self._update_preferred()
        self.status = replace(self.status, maintenance="", maintenance_reason="")

    def _update_drain(self) -> None:
        """While in maintenance: how many client connections are left, and whether the drain
        is over (none left and no VIP held) or its timeout ran out."""
        if self._maintenance is None or self._drain_since is None:
            return
        spec = self._spec_of(self.applied) if self.applied is not None else None
        left = open_connections(served_ports(spec, self.settings.node)) if spec else 0
        holds = any(state == "MASTER" for state in self.status.vrrp.values())
        waited = time.monotonic() - self._drain_since
        if left == 0 and not holds:
            state = "drained"
        elif waited >= self._maintenance.drain_timeout:
            state = f"drain timed out ({left} connections left)"
        else:
            state = f"draining ({left} connections)"
        if state.startswith(("drained", "drain timed out")):
            self._drain_since = None
        if state != self.status.maintenance:
            log.info("event=maintenance_drain state=%r", state)
            self.status = replace(self.status, maintenance=state)
            self._report()

    def _on_peer_maintenance(self, node: str, found: Maintenance | None) -> None:
        """A director: a realserver in maintenance gets weight 0 (no new connections, the
        established ones stay); back to its spec weight when it leaves."""
        if self._drained.get(node) == found or (found is None and node not in self._drained):
            return
        if found is None:
            self._drained.pop(node, None)
        else:
            self._drained[node] = found
        log.info("event=realserver_maintenance node=%s state=%s", node,
                 "on" if found else "off")
        self._save_control()
        spec = self._spec_of(self.applied) if self.applied is not None else None
        if spec is None:
            return
        if self.lvs is not None:
            self.lvs.apply(drained_spec(spec, self._drained), self.settings.node)
            if self.lvs.uses_ipvs(spec, self.settings.node) and self.vrrp_sync is not None \
                    and self.settings.vrrp is not None:
                text = keepalived_conf(drained_spec(spec, self._drained), self.settings.node,
                                       self.settings.vrrp, True)
                result = self.vrrp_sync.apply({"keepalived.conf": text.encode()},
                                              version=self.applied.number
                                              if self.applied else 0)
                if not result.ok:
                    log.error("event=realserver_weight_failed node=%s reason=%r", node,
                              result.reason)
