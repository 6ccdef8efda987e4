"""Pure: a node's keepalived.conf from the stack spec.

Choices that are not obvious from the spec:
- VRRPv3 so sub-second adverts work; adverts default to 0.03 s (see spec.py), and keepalived's
  VRRP process runs with real-time priority and locked memory so a starved machine does not
  make it miss adverts (the classic cause of flapping). Check scripts do not inherit that
  priority (keepalived resets it in the child), so their timeouts leave room for slow starts.
- Gratuitous ARP: a burst on becoming master, a second burst one second later (not
  keepalived's five), and a refresh every 60 s while master, so neighbours and switches that
  missed the first burst still learn the new MAC; after a split brain the surviving master
  re-announces itself (higher_prio_send_advert plus lower-priority GARP repeat).
- Health checks run inside the agent and reach keepalived through track files (a failed
  check lowers the priority; see failure_weight); keepalived only runs a slow backstop probe.
- State changes reach the agent through keepalived's notify FIFO, which delivers them in order,
  rather than a script per transition.
"""

from __future__ import annotations

from dataclasses import dataclass

from stackha.model.control import switchover_track, switchover_weight
from stackha.model.spec import HealthCheck, LvsService, StackSpec, VrrpGroup

SCRIPT_USER = "keepalived_script"

# The agent runs the health checks itself (every 0.1 s by default, see spec.py) and writes
# each result to a track file, which keepalived reads on inotify without forking anything.
# The backstop is for an agent that is dead or stuck while nginx dies: keepalived also runs a
# tiny probe itself, every BACKSTOP_INTERVAL seconds, fall BACKSTOP_FALL, so a dead nginx
# loses its VIP within about 2 x 3 s even with nobody writing the track file. For HTTP it is
# curl (a small C program: a few ms of CPU per run); without curl, or for MyCat's MySQL
# login, it is `stackha check` (a Python start, about 50 ms of CPU, still only every 3 s).
BACKSTOP_INTERVAL = 3
BACKSTOP_FALL = 2
BACKSTOP_RISE = 2
# The backstop probe's own time limit; keepalived kills it BACKSTOP_SLACK seconds later (a
# starved machine slows the start of a process, not a dead nginx's answer).
BACKSTOP_TIMEOUT = 2
BACKSTOP_SLACK = 3


def check_track(name: str) -> str:
    """The track file holding health check ``name``'s result: 0 healthy, 1 failed."""
    return f"chk_{name}.track"


# A lower priority moves a VIP only when the backup preempts, and then only once its
# master-down timer (about 3 x advert_int) has run out: 0.1 s with the default adverts, 3 s
# with classic 1 s ones. Beyond this the agent also uses the FAULT route (see below).
PREEMPT_WAIT_LIMIT = 0.3


def lower_priority_moves_at_once(group: VrrpGroup) -> bool:
    """Whether a failed check's lower priority alone hands ``group``'s VIP over quickly.

    Not under nopreempt (RFC 5798: a backup without preempt accepts a lower master), nor with
    a preempt delay, nor with adverts so slow that the backup's master-down timer is long.
    For such groups the agent also puts a failed node in FAULT (yield.track, which sends a
    priority-0 advert: the backup takes over after its skew time) while another member's
    fresh report is healthy."""
    return group.preempt and not group.preempt_delay \
        and 3 * group.advert_int <= PREEMPT_WAIT_LIMIT


def failure_weight(group: VrrpGroup, check: HealthCheck) -> int:
    """How far a failed check lowers a member's priority in ``group``.

    Fail open: a failed check lowers the priority rather than sending the node to FAULT, so
    when every member fails at once (a starved checker, say) the VIP still has a holder. By
    default (weight 0) the drop is the priority gap between the group's members plus one,
    so a failed member falls below every healthy one, as keepalived's docs advise; a
    non-zero ``weight`` sets the drop itself. Capped at 253: keepalived puts an instance in
    FAULT when one tracker's value x weight is below -253.
    """
    if check.weight:
        return min(abs(check.weight), 253)
    priorities = [m.priority for m in group.members]
    return min(max(priorities) - min(priorities) + 1, 253)


# Track files the agent writes (keepalived reads them through inotify and forks nothing):
# TRIAL_TRACK holds 1 while this node is a version's canary, and its weight takes the node's
# priority down to 1, below every other member, so that it cannot win an election while
# another member can serve; YIELD_TRACK holds 1 for the moment a canary that is MASTER hands
# its VIPs over (weight 0: FAULT), which lowering the priority alone does not do under
# nopreempt. Both hold 0 otherwise.
TRIAL_TRACK = "trial.track"
YIELD_TRACK = "yield.track"


@dataclass(frozen=True)
class RenderOptions:
    """Node-local facts the spec does not hold."""

    stackha_command: str = "/usr/local/bin/stackha"
    notify_fifo: str = "/run/stackha/keepalived.fifo"
    script_user: str = SCRIPT_USER
    interface_override: str | None = None
    realtime: bool = True
    track_dir: str = "/run/stackha"
    # curl for the HTTP backstop; None: the backstop runs `stackha check` instead.
    curl: str | None = "/usr/bin/curl"


class UnsafeValue(ValueError):
    """A value that cannot be written into keepalived.conf as one plain word."""


# keepalived's config reader: '#' and '!' start a comment wherever they stand, braces open and
# close blocks, '"' quotes, '$' substitutes a definition, '\\' escapes, whitespace splits
# words and a line ends the statement. Script lines are split by keepalived itself and exec'd,
# so every argument must be one such word too. The spec's grammar (model/grammar.py) already
# refuses all of these; the renderer refuses them again so that no caller, and no future
# field, can add a line to a file that keepalived runs as root.
_SPECIAL = frozenset('"\'#!{}$\\;')


def keepalived_word(what: str, value: str) -> str:
    """``value`` if keepalived reads it back as exactly one word, else UnsafeValue."""
    if not value or any(c in _SPECIAL or c.isspace() or not c.isprintable() for c in value):
        shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
        raise UnsafeValue(f"{what} '{shown}' cannot be written into keepalived.conf: it must "
                          "be one word without quotes, '#', '!', braces, '$', '\\' or "
                          "whitespace")
    return value


def _refuse_unsafe(spec: StackSpec, node: str, groups: tuple[VrrpGroup, ...],
                   options: RenderOptions) -> None:
    """Every string this renderer writes for ``node``, checked before a line is built."""
    keepalived_word("node name", node)
    for what, value in (("script_user", options.script_user),
                        ("notify_fifo", options.notify_fifo),
                        ("track_dir", options.track_dir),
                        ("stackha command", options.stackha_command)):
        keepalived_word(what, value)
    if options.curl is not None:
        keepalived_word("curl", options.curl)
    if options.interface_override is not None:
        keepalived_word("interface", options.interface_override)
    for group in groups:
        keepalived_word("vrrp group name", group.name)
        keepalived_word(f"group {group.name}: interface", group.interface)
        for name in group.checks:
            keepalived_word(f"group {group.name}: check", name)
            check = spec.health_check(name)
            keepalived_word(f"health_checks.{name}.url", check.url)
            keepalived_word(f"health_checks.{name}.host", check.host)


def _track_file_blocks(options: RenderOptions, checks: list[str],
                       groups: tuple[VrrpGroup, ...]) -> list[str]:
    lines: list[str] = []
    # The trial's and the checks' weights are set per instance (below); -1 is a default.
    # A switchover's preferred holder (stackha.model.control) has one file per group, so
    # that preferring a node in one group leaves its other groups alone.
    for name, path, weight in (("stackha_trial", TRIAL_TRACK, -1),
                               ("stackha_yield", YIELD_TRACK, 0),
                               *((f"stackha_chk_{c}", check_track(c), -1) for c in checks),
                               *((f"stackha_switchover_{g.name}", switchover_track(g.name), 1)
                                 for g in groups)):
        lines += [f"track_file {name} {{",
                  f'    file "{options.track_dir.rstrip("/")}/{path}"',
                  f"    weight {weight}",
                  # a missing file is created holding 0; the agent rewrites both at start
                  "    init_file 0",
                  "}", ""]
    return lines


def _fmt(value: float) -> str:
    return f"{value:g}"


def _backstop_block(check: HealthCheck, options: RenderOptions) -> list[str]:
    if check.name == "nginx" and options.curl:
        # -f: an HTTP error status fails; no -L, so 3xx passes as in check_http.
        arguments = [options.curl, "-fsS", "-o", "/dev/null", "--max-time",
                     str(BACKSTOP_TIMEOUT), check.url]
    else:
        arguments = [options.stackha_command, "check", check.name, "--timeout",
                     str(BACKSTOP_TIMEOUT)]
        if check.name == "nginx":
            arguments += ["--url", check.url]
        else:
            arguments += ["--host", check.host, "--port", str(check.port)]
    return [
        f"vrrp_script chk_{check.name}_backstop {{",
        # keepalived splits this string itself and execs it: no shell is involved.
        f'    script "{" ".join(arguments)}"',
        f"    interval {BACKSTOP_INTERVAL}",
        f"    timeout {BACKSTOP_TIMEOUT + BACKSTOP_SLACK}",
        f"    fall {BACKSTOP_FALL}",
        f"    rise {BACKSTOP_RISE}",
        # the drop is set per instance (track_script ... weight), -1 is only a default
        "    weight -1",
        "}",
        "",
    ]


def _instance_block(spec: StackSpec, group: VrrpGroup, node: str,
                    options: RenderOptions) -> list[str]:
    member = group.member(node)
    assert member is not None
    interface = options.interface_override or group.interface
    # nopreempt only works when every member starts as BACKUP; with preempt an explicit
    # MASTER only shortens the first election.
    state = member.state if (group.preempt and member.state) else "BACKUP"
    lines = [
        f"vrrp_instance {group.name} {{",
        f"    state {state}",
        f"    interface {interface}",
        f"    virtual_router_id {group.virtual_router_id}",
        f"    priority {member.priority}",
        f"    advert_int {_fmt(group.advert_int)}",
    ]
    if group.version != 3:
        lines.append(f"    version {group.version}")
    if not group.preempt:
        lines.append("    nopreempt")
    elif group.preempt_delay:
        lines.append(f"    preempt_delay {_fmt(group.preempt_delay)}")
    if group.unicast_peers:
        me = spec.node(node)
        peers = [spec.node(m.node) for m in group.members if m.node != node]
        if me is not None:
            lines.append(f"    unicast_src_ip {me.address}")
        lines.append("    unicast_peer {")
        lines += [f"        {p.address}" for p in peers if p is not None]
        lines.append("    }")
    weights = {name: failure_weight(group, spec.health_check(name)) for name in group.checks}
    if group.checks:
        lines.append("    track_script {")
        lines += [f"        chk_{name}_backstop weight -{weights[name]}"
                  for name in group.checks]
        lines.append("    }")
    lines.append("    track_file {")
    lines += [f"        stackha_chk_{name} weight -{weights[name]}" for name in group.checks]
    # The preferred holder rises above every other member (1 x weight): with preempt it
    # takes the VIP and keeps it; the agent writes 1 only while its checks pass.
    lines.append(f"        stackha_switchover_{group.name} weight {switchover_weight(group)}")
    if member.priority > 1:
        # Down to priority 1, and no further: keepalived sends an instance to FAULT when a
        # track file's value x weight is below -253 (keepalived.conf(5), track_file; seen
        # with weight -254), and a canary must still take the VIP when nobody else can
        # serve. Weight 0 would mean FAULT too, so priority 1 carries no trial weight.
        lines.append(f"        stackha_trial weight {-(member.priority - 1)}")
    lines += ["        stackha_yield", "    }"]
    lines.append("    virtual_ipaddress {")
    lines += [f"        {vip.with_prefixlen} dev {interface}" for vip in group.vips]
    lines.append("    }")
    lines.append("}")
    lines.append("")
    return lines


def _real_server_check(service: LvsService, address: str, options: RenderOptions,
                       mycat: HealthCheck) -> list[str]:
    """TCP_CHECK for `check: tcp`; `check: mycat` runs `stackha check mycat` (MISC_CHECK)."""
    timeout = max(1, round(service.check_timeout))
    if service.check == "mycat":
        command = [options.stackha_command, "check", "mycat", "--host", address,
                   "--port", str(service.port), "--timeout", _fmt(service.check_timeout)]
        if mycat.manager_port:
            command += ["--manager-port", str(mycat.manager_port)]
        return ["        MISC_CHECK {",
                f'            misc_path "{" ".join(command)}"',
                f"            misc_timeout {timeout + 1}",
                "        }"]
    return ["        TCP_CHECK {",
            f"            connect_timeout {timeout}",
            "            retry 1",
            "        }"]


def _virtual_server_block(service: LvsService, spec: StackSpec,
                          options: RenderOptions) -> list[str]:
    """The `ipvs` director engine: keepalived programs IPVS in DR mode."""
    lines = [
        f"virtual_server {service.vip} {service.port} {{",
        f"    delay_loop {max(1, round(service.check_interval))}",
        f"    lb_algo {service.scheduler}",
        "    lb_kind DR",
        f"    protocol {service.protocol}",
    ]
    if service.persistence_timeout:
        lines.append(f"    persistence_timeout {service.persistence_timeout}")
    if service.scheduler == "sh" and 0 in service.weights:
        # sh refuses a client hashed to a weight-0 realserver unless told to pick another:
        # with the fallback, weight 0 means "no new connections" as for every scheduler.
        lines.append("    sh-fallback")
    for name in service.realservers:
        node = spec.node(name)
        if node is None:
            continue
        lines += [
            f"    real_server {node.address} {service.port} {{",
            f"        weight {service.weight(name)}",
            *_real_server_check(service, str(node.address), options,
                                spec.health_check("mycat")),
            "    }",
        ]
    lines += ["}", ""]
    return lines


def render_keepalived(spec: StackSpec, node: str, options: RenderOptions | None = None,
                      ipvs: bool = False) -> str:
    """keepalived.conf for ``node``; ``ipvs`` adds virtual_server blocks on directors.

    The text carries no version number on purpose: a push that leaves this node's VRRP
    settings alone must render the same bytes, so the agent does not reload keepalived.
    """
    options = options or RenderOptions()
    found = spec.node(node)
    if found is None:
        raise KeyError(f"node {node} is not in the spec")
    groups = spec.groups_of(node)
    _refuse_unsafe(spec, node, groups, options)
    strict = any(g.vrrp_strict for g in groups)
    lines = [
        f"# keepalived.conf for {node}, rendered by stackha.",
        "# Do not edit: the stackha agent rewrites this file when the node's VRRP spec changes.",
        "",
        "global_defs {",
        f"    router_id {node}",
        "    vrrp_version 3",
        "    enable_script_security",
        f"    script_user {options.script_user}",
        f"    vrrp_notify_fifo {options.notify_fifo}",
        "    vrrp_garp_master_delay 1",
        "    vrrp_garp_master_repeat 3",
        "    vrrp_garp_master_refresh 60",
        "    vrrp_higher_prio_send_advert true",
        "    vrrp_garp_lower_prio_repeat 3",
    ]
    if options.realtime:
        # keepalived's default RLIMIT_RTTIME (10 ms) gets the realtime VRRP child
        # SIGKILLed by the kernel on a busy host; 1 s still bounds a runaway loop.
        lines += ["    vrrp_rt_priority 50", "    vrrp_rlimit_rttime 1000000", "    vrrp_no_swap"]
        # Where realtime is refused (a container's cgroup has no RT budget: keepalived logs
        # "cannot raise priority"), nice -20 still puts the VRRP child ahead of busy
        # processes: at load 13 in the lab, at nice 0, a backup missed three 30 ms adverts
        # about ten times a minute (tcpdump saw no gap over 80 ms on the bridge).
        lines += ["    vrrp_priority -20"]
    if strict:
        lines.append("    vrrp_strict")
    else:
        lines.append("    # vrrp_strict stays off: it installs a firewall rule that drops all "
                     "traffic to the")
        lines.append("    # VIPs (pings fail) and forbids unicast peers. Set vrrp_strict: true "
                     "in the spec to enable.")
    lines += ["}", ""]
    wanted = sorted({name for g in groups for name in g.checks})
    if groups:
        lines += _track_file_blocks(options, wanted, groups)
    for check_name in wanted:
        lines += _backstop_block(spec.health_check(check_name), options)
    for group in groups:
        lines += _instance_block(spec, group, node, options)
    if ipvs and "director" in found.roles:
        for service in spec.lvs_services:
            # A service pinned to the nftables engine is forwarded by the agent, not IPVS.
            if service.engine != "nftables" and any(service.vip == v.ip for g in groups
                                                    for v in g.vips):
                lines += _virtual_server_block(service, spec, options)
    return "\n".join(lines).rstrip() + "\n"
