"""Bad configuration pushed while clients use the VIPs: what the coordinator refuses, what
every node refuses, what the nodes roll back, and whether any of it was ever served.

Publication goes through the very `stackha push-config` / `stackha config rollback` commands
an operator runs.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from stackha.lab.drill.analysis import StatusSample, master_while_serving, nodes_that_applied
from stackha.lab.drill.faults import nginx_nodes
from stackha.lab.drill.lab import DrillLab
from stackha.lab.drill.probes import WebProbe
from stackha.lab.drill.scenario import Context, NotRun, Scenario

log = logging.getLogger(__name__)


def _stackha(ctx: Context, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The very command an operator runs, against the lab's ZooKeeper."""
    zk = ("--zk", ctx.options.zk_override) if ctx.options.zk_override else ()
    command = [sys.executable, "-m", "stackha", *args, *zk]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    log.info("event=drill_command argv=%r rc=%d", " ".join(command[2:]), done.returncode)
    return done


_PUBLISHED = re.compile(r"published version (\d+)")
_CANARIES = re.compile(r"canary first: (.+)$", re.MULTILINE)
_CANARY = re.compile(r"(\S+) \((\w+)\)")


def _published(done: subprocess.CompletedProcess[str]) -> int | None:
    match = _PUBLISHED.search(done.stdout)
    return int(match.group(1)) if match else None


def _canaries(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Role -> canary node, as push-config announced them."""
    match = _CANARIES.search(done.stdout)
    return {role: node for node, role in _CANARY.findall(match.group(1))} if match else {}


def _copy_configs(ctx: Context, tmp: Path) -> Path:
    target = tmp / "configs"
    shutil.copytree(ctx.lab.configs, target)
    return target


class _BadConfig(Scenario):
    """Publish a version the nodes must not serve, then publish the good one again."""

    pushes_rejected = True

    def needs(self, lab: DrillLab) -> str | None:
        return None if nginx_nodes(lab) else "no nginx nodes in the spec"

    def prepare(self, ctx: Context, configs: Path, marker: str) -> None:
        raise NotImplementedError

    def expected(self, version: int) -> str:
        """What the canary's (or, without one, each nginx node's) last_error must say."""
        raise NotImplementedError

    def refused(self, version: int, error: str) -> bool:
        # Nodes behind a canary refuse what it refused without loading it.
        return self.expected(version) in error or f"version {version} rejected at canary" \
            in error

    def inject(self, ctx: Context) -> None:
        latest = ctx.watch.latest()
        if latest is None or latest.current is None:
            raise NotRun("no current version to return to")
        ctx.state["good"] = latest.current
        marker = f"stackha-drill-{uuid.uuid4().hex[:12]}"
        ctx.state["marker"] = marker
        for prober in list(ctx.probers.values()):
            if isinstance(prober.probe, WebProbe):
                prober.probe.markers = (marker.encode(),)
        for node in nginx_nodes(ctx.lab):  # each node directly, not only the VIP's owner
            address = ctx.lab.spec.node(node).address  # type: ignore[union-attr]
            probe = WebProbe(str(address), timeout=ctx.options.probe_timeout)
            probe.markers = (marker.encode(),)
            ctx.add_prober(f"web@{node}", probe)
        tmp = Path(tempfile.mkdtemp(prefix="stackha-drill-"))
        ctx.state["tmp"] = tmp
        configs = _copy_configs(ctx, tmp)
        self.prepare(ctx, configs, marker)
        done = _stackha(ctx, "push-config", "--configs", str(configs), "-m",
                        f"stackha drill {self.name}: must not be served")
        bad = _published(done)
        if bad is None:
            raise NotRun(f"push-config did not publish the bad version (exit "
                         f"{done.returncode}: {(done.stderr or done.stdout).strip()[-200:]})")
        ctx.state["bad"] = bad
        ctx.state["canary"] = _canaries(done).get("nginx")
        ctx.note(f"published version {bad} (passes the coordinator), canary "
                 f"{ctx.state['canary'] or 'none'}")

    def hold(self, ctx: Context) -> None:
        bad, nodes = ctx.state["bad"], nginx_nodes(ctx.lab)
        wanted = self.expected(bad)

        def all_refused(sample: StatusSample) -> bool:
            return all(self.refused(bad, sample.errors.get(n, "")) for n in nodes)

        seen = ctx.watch.wait_for(all_refused, timeout=ctx.options.max_hold)
        if seen is None:
            ctx.note(f"not every nginx node refused it ('{wanted}') within "
                     f"{ctx.options.max_hold:.0f} s")
        else:
            ctx.note(f"every nginx node refused it ('{wanted}' or behind its canary) "
                     f"{seen.t - ctx.events['inject']:.1f} s after the push")
        ctx.wait_data_plane(min_hold=1.0, max_hold=ctx.now() - ctx.events["inject"] + 10.0)

    def heal(self, ctx: Context) -> None:
        try:
            if "good" in ctx.state and "bad" in ctx.state:
                done = _stackha(ctx, "config", "rollback", str(ctx.state["good"]),
                                "--configs", str(ctx.lab.configs))
                if done.returncode != 0:
                    ctx.note(f"config rollback {ctx.state['good']} failed: "
                             f"{done.stderr.strip()[-200:]}")
                else:
                    ctx.note(f"published version {_published(done)} equal to version "
                             f"{ctx.state['good']}")
        finally:
            if "tmp" in ctx.state:
                shutil.rmtree(ctx.state["tmp"], ignore_errors=True)

    def assess(self, ctx: Context, series: list[StatusSample]) -> None:
        bad = ctx.state.get("bad")
        if bad is None:
            return
        nginx = nginx_nodes(ctx.lab)
        everyone = nodes_that_applied(series, bad)
        applied = [n for n in everyone if n in nginx]
        others = [n for n in everyone if n not in nginx]
        if others:
            ctx.note(f"version {bad} recorded as applied by {', '.join(others)}: their files "
                     "did not change (only nginx files are bad)")
        marked = {name: sum(s.marked for s in p.samples()) for name, p in ctx.probers.items()}
        served_by = sorted(name for name, count in marked.items() if count)
        canary = ctx.state.get("canary")
        own = ctx.probers.get(f"web@{canary}") if canary else None
        held_vip = bool(canary) and master_while_serving(
            series, str(canary), [s.t for s in own.samples() if s.marked] if own else [])
        # A canary holding no VIP is meant to load it: only what clients or the other nodes
        # served counts as served. One that was a VRRP master while it served the trial
        # counts like any other node (the VIP probe itself catches what the VIP answered).
        on_trial = f"web@{canary}" if canary and not held_vip else None
        if held_vip:
            ctx.note(f"the canary {canary} was a VRRP master while it served the trial")
        # True already when the coordinator published what it had to refuse (inject).
        ctx.served_rejected = bool(ctx.served_rejected or applied
                                   or [n for n in served_by if n != on_trial])
        ctx.canary_only = not ctx.served_rejected and on_trial in served_by
        if applied:
            ctx.note(f"STATUS SHOWED version {bad} applied on {', '.join(applied)}")
        if ctx.canary_only:
            ctx.note(f"only the canary {canary} served it, on its own address while on trial "
                     "(it holds no VIP); the VIP and the other nodes never did")
        elif served_by:
            first = min(s.t for name in served_by for s in ctx.probers[name].samples()
                        if s.marked)
            ctx.note(f"REJECTED CONTENT SERVED to {', '.join(served_by)} "
                     f"({sum(marked.values())} answers, first "
                     f"{first - ctx.events['inject']:.1f} s after the push)")
        else:
            ctx.note("the rejected version's page was never served (VIP and every nginx node "
                     "probed)")


class BadConfigRejected(_BadConfig):
    name = "bad-config"
    title = "bad config pushed: refused by the coordinator, or by every node (nginx -t)"

    def inject(self, ctx: Context) -> None:
        # 1. What the coordinator must refuse: nothing is published.
        before = ctx.watch.latest().current if ctx.watch.latest() else None
        tmp = Path(tempfile.mkdtemp(prefix="stackha-drill-"))
        try:
            configs = _copy_configs(ctx, tmp)
            conf = configs / "nginx" / "nginx.conf"
            conf.write_text(conf.read_text().replace(
                "server_name _;", "server_name _;\n        stackha_drill_no_such_directive on;"))
            done = _stackha(ctx, "push-config", "--configs", str(configs), "-m",
                            "stackha drill: coordinator must refuse")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if done.returncode == 0 or _published(done) is not None:
            ctx.served_rejected = True
            ctx.note(f"COORDINATOR PUBLISHED an invalid nginx.conf: {done.stdout.strip()[-200:]}")
        else:
            reason = next((line for line in done.stderr.splitlines() if "nginx -t" in line),
                          done.stderr.strip().splitlines()[-1:] or "")
            ctx.note(f"coordinator refused an unknown directive (exit {done.returncode}): "
                     f"{str(reason).strip()[:120]}")
        after = ctx.watch.read_once().current
        if after != before:
            ctx.note(f"current version moved {before} -> {after} after a refused push")
        # 2. What passes the coordinator but no node can load: a certificate only it has.
        super().inject(ctx)

    def prepare(self, ctx: Context, configs: Path, marker: str) -> None:
        tmp = ctx.state["tmp"]
        cert, key = tmp / "drill-only-here.pem", tmp / "drill-only-here.key"
        done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                               "-days", "1", "-subj", "/CN=stackha-drill", "-keyout", str(key),
                               "-out", str(cert)], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise NotRun(f"openssl could not make a certificate: {done.stderr.strip()[-120:]}")
        conf = configs / "nginx" / "nginx.conf"
        conf.write_text(conf.read_text().replace(
            "server_name _;", f"server_name _;\n        ssl_certificate {cert};"
                              f"\n        ssl_certificate_key {key};"))
        page = configs / "nginx" / "html" / "index.html"
        page.write_text(page.read_text() + f"<p>{marker}</p>\n")

    def expected(self, version: int) -> str:
        return f"version {version} rejected at validate"


class BadConfigRolledBack(_BadConfig):
    name = "bad-config-health"
    title = "bad config pushed: valid, but fails the nodes' health check (rolled back)"

    def prepare(self, ctx: Context, configs: Path, marker: str) -> None:
        conf = configs / "nginx" / "nginx.conf"
        text = conf.read_text()
        if 'return 200 "ok\\n";' not in text:
            raise NotRun("configs/nginx/nginx.conf has no `return 200 \"ok\\n\";` health "
                         "location to break")
        conf.write_text(text.replace('return 200 "ok\\n";', 'return 503 "drill\\n";'))
        page = configs / "nginx" / "html" / "index.html"
        page.write_text(page.read_text() + f"<p>{marker}</p>\n")

    def expected(self, version: int) -> str:
        return f"version {version} rolled back"
