"""Issue 8 (part): failed requests while 20 configuration pushes reload nginx under steady load.

One real nginx on a loopback port, managed by one real `stackha agent` whose reload command is
the real `nginx -s reload`. Each push changes nginx.conf (``/version`` answers ``push K``,
visible only after a reload) and index.html (``content K``). While the pushes run, client
threads send GET / and GET /version back to back:

- keep-alive clients hold one HTTP/1.1 connection open and reuse it. When a request on a
  *reused* connection fails before any byte of the answer arrives (the server closed the idle
  connection: RemoteDisconnected, reset, broken pipe), the client retries it once on a fresh
  connection, as curl, Go's net/http, urllib3 (default retries) and browsers do for idempotent
  requests; such a retry is counted apart and only a failed retry counts as a failure.
- fresh-connection clients open a new connection per request (``Connection: close``) and
  never retry.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, fields

from bench.lab import Lab, free_port, log
from bench.report import BenchOptions, Table, median

KEEPALIVE_CLIENTS = 2
FRESH_CLIENTS = 2
TIMEOUT = 5.0
PATHS = ("/", "/version")
_BODY = {"/": re.compile(r"content \d+\n"), "/version": re.compile(r"push \d+\n")}


def classify_body(path: str, body: str) -> bool:
    """Whether ``body`` is one whole answer of some version for ``path``."""
    return bool(_BODY[path].fullmatch(body))


@dataclass
class Counts:
    requests: int = 0
    ok: int = 0
    refused: int = 0
    reset: int = 0
    timeout: int = 0
    non_2xx: int = 0
    bad_body: int = 0
    other: int = 0
    stale_retried: int = 0
    connections: int = 0

    @property
    def failed(self) -> int:
        return self.requests - self.ok

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


# A reused keep-alive connection the server has closed fails like this, before any answer.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Client(threading.Thread):
    def __init__(self, port: int, keepalive: bool, stop: threading.Event, started: float):
        super().__init__(daemon=True)
        self.port, self.keepalive, self.stop, self.started = port, keepalive, stop, started
        self.counts = Counts()
        self.failures: list[tuple[float, str, str]] = []  # (seconds since start, kind, detail)
        self.stale: Counter[str] = Counter()  # how retried stale connections failed
        self.conn: http.client.HTTPConnection | None = None
        self.served = 0  # answers received on the current connection

    def run(self) -> None:
        turn = 0
        while not self.stop.is_set():
            self.request(PATHS[turn % len(PATHS)])
            turn += 1
        self._drop()

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(self, path: str) -> None:
        self.counts.requests += 1
        headers = {} if self.keepalive else {"Connection": "close"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
                self.served = 0
                self.counts.connections += 1
            reused = self.served > 0
            try:
                self.conn.request("GET", path, headers=headers)
                response = self.conn.getresponse()
                body = response.read()
            except _STALE as exc:
                self._drop()
                if reused and attempt == 1:
                    self.counts.stale_retried += 1
                    self.stale[type(exc).__name__] += 1
                    continue
                self._fail("reset", exc)
                return
            except ConnectionRefusedError as exc:
                self._drop()
                self._fail("refused", exc)
                return
            except (http.client.IncompleteRead, http.client.BadStatusLine) as exc:
                self._drop()
                self._fail("reset", exc)
                return
            except TimeoutError as exc:
                self._drop()
                self._fail("timeout", exc)
                return
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                self._fail("other", exc)
                return
            self.served += 1
            if response.will_close or not self.keepalive:
                self._drop()
            if not 200 <= response.status < 300:
                self._fail("non_2xx", f"{response.status} on {path}")
            elif not classify_body(path, body.decode(errors="replace")):
                self._fail("bad_body", f"{path}: {body[:60]!r}")
            else:
                self.counts.ok += 1
            return

    def _fail(self, kind: str, detail: object) -> None:
        setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        if len(self.failures) < 20:
            self.failures.append((time.monotonic() - self.started, kind, repr(detail)))


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def run(options: BenchOptions) -> list[Table]:
    pushes = 5 if options.quick else 20
    background = os.getloadavg()[0]
    lab = Lab.create("reload")
    stop = threading.Event()
    clients: list[Client] = []
    try:
        port = free_port()
        agent_configs = lab.root / "agent-configs"
        lab.write_spec([("web1", "nginx")], port, agent_configs)
        lab.write_spec([("web1", "nginx")], port)
        lab.write_nginx_files(port, "push 0", "content 0\n")
        watch = lab.watch_status(["web1"])
        first = lab.push("bench: reload under load, version 0")
        nginx = lab.start_nginx("web1", port)
        # The agent as on a host: real reload command, default 5 s heartbeat.
        lab.start_agent("web1", agent_configs, nginx.prefix, nginx.reload_command(), 5.0)
        watch.wait_applied(first.number, ["web1"], 60, lab)
        if _get(port, "/version") != "push 0\n":
            raise RuntimeError("nginx does not serve version 0 after the agent applied it")
        started = time.monotonic()
        clients = ([Client(port, True, stop, started) for _ in range(KEEPALIVE_CLIENTS)] +
                   [Client(port, False, stop, started) for _ in range(FRESH_CLIENTS)])
        for client in clients:
            client.start()
        log(f"reload: load on port {port} from {len(clients)} clients, {pushes} pushes")
        time.sleep(2)  # steady load before the first push
        latencies: list[float] = []
        push_times: list[float] = []
        numbers: list[int] = []
        loads: list[float] = []
        for k in range(1, pushes + 1):
            lab.write_nginx_files(port, f"push {k}", f"content {k}\n")
            push_times.append(time.monotonic() - started)
            loads.append(os.getloadavg()[0])
            push = lab.push(f"bench: reload under load, version {k}")
            applied = watch.wait_applied(push.number, ["web1"], 60, lab)
            latencies.append(float(applied["web1"] - push.commit_ms))
            numbers.append(push.number)
        time.sleep(2)  # and after the last one
        stop.set()
        for client in clients:
            client.join(timeout=TIMEOUT + 5)
        elapsed = time.monotonic() - started
        final_page, final_version = _get(port, "/"), _get(port, "/version")
        served = (final_page == f"content {pushes}\n" and final_version == f"push {pushes}\n")
        if not served:
            raise RuntimeError(f"after the last push nginx serves {final_page!r} and "
                               f"{final_version!r}")
        lab.check_agents_alive()
        agent_log = lab.agents[0].log_path.read_text()
    finally:
        stop.set()
        lab.close()
    return [_table(clients, pushes, numbers, latencies, elapsed, agent_log, push_times,
                   (background, median(loads)))]


def _table(clients: list[Client], pushes: int, numbers: list[int], latencies: list[float],
           elapsed: float, agent_log: str, push_times: list[float],
           load: tuple[float, float]) -> Table:
    rows = []
    total = Counts()
    for label, keepalive in ((f"keep-alive ({KEEPALIVE_CLIENTS} threads)", True),
                             (f"fresh connection per request ({FRESH_CLIENTS} threads)", False)):
        counts = Counts()
        for client in clients:
            if client.keepalive == keepalive:
                counts.add(client.counts)
        total.add(counts)
        rows.append(_row(label, counts))
    rows.append(_row("all", total))
    failures = sorted(f for c in clients for f in c.failures)
    stale: Counter[str] = Counter()
    for client in clients:
        stale.update(client.stale)
    applied = agent_log.count("event=applied")
    rollbacks = agent_log.count("event=rollback")
    notes = [
        f"{pushes} pushes (versions {numbers[0]}..{numbers[-1]}), one at a time, each changing "
        "nginx.conf (/version) and index.html (/); the next push starts once the agent "
        f"reports the previous one applied. The agent logged {applied} applied versions "
        f"(with the first) and {rollbacks} rollbacks; push → applied (ZooKeeper commit to "
        f"status write) p50 {median(latencies):.0f} ms, max {max(latencies):.0f} ms, "
        "including the agent's wait for new nginx workers and health check.",
        f"Load: {elapsed:.1f} s, {total.requests / elapsed:.0f} requests/s, from 2 s before "
        f"the first push to 2 s after the last; pushes at "
        f"{', '.join(f'{t:.1f}' for t in push_times[:3])}, … s.",
        "Failed = refused + reset/closed + timeout + non-2xx + wrong body (an answer that is "
        f"not one whole version's page) + other; client timeout {TIMEOUT:g} s.",
        "keep-alive: a request on a reused connection that the server closed before "
        "answering (nginx's old workers close idle keep-alive connections when a reload "
        "retires them) is retried once on a fresh connection, as curl, Go net/http, urllib3 "
        "(default retries) and browsers do for idempotent requests (Python's http.client "
        "and `requests` do not retry); such retries are the last column and are "
        "not failures. Anything else on a keep-alive connection, and anything at all on a "
        "fresh connection, is a failure. Retried here: "
        + (", ".join(f"{n}x {name}" for name, n in stale.most_common()) or "none")
        + f" (at most one per keep-alive connection and reload: {KEEPALIVE_CLIENTS} x {pushes} "
        f"= {KEEPALIVE_CLIENTS * pushes}). The other keep-alive reconnections are nginx closing "
        "with `Connection: close` (keepalive_requests 1000, and answers from a retiring "
        "worker), which is no failure either.",
        f"After the last push nginx serves 'content {pushes}' on / and 'push {pushes}' on "
        "/version (checked on a fresh connection).",
        "nginx: 1.22 from Debian, the example nginx.conf (worker_processes auto, keepalive "
        "30 s), reload command `nginx -p PREFIX -c PREFIX/nginx.conf -s reload`. Clients, "
        f"nginx, the agent and ZooKeeper share this machine's {os.cpu_count()} CPU cores "
        f"and other jobs ran on it too: 1-min load average {load[0]:.1f} before the section "
        f"(a decaying average: it still counts what ran the minute before), median "
        f"{load[1]:.1f} at the pushes.",
    ]
    if failures:
        notes.append("First failures (s since load start, kind, detail): " + "; ".join(
            f"{t:.2f} {kind} {detail}" for t, kind, detail in failures[:8]))
    return Table(
        "nginx reloads under steady HTTP load: pushes applied by one agent",
        ("client", "connections", "requests", "ok", "failed", "refused", "reset/closed",
         "timeout", "non-2xx", "wrong body", "other", "stale keep-alive, retried"),
        tuple(rows), tuple(notes))


def _row(label: str, c: Counts) -> tuple[object, ...]:
    return (label, c.connections, c.requests, c.ok, c.failed, c.refused, c.reset, c.timeout,
            c.non_2xx, c.bad_body, c.other, c.stale_retried)
