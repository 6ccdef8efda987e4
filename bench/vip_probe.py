"""A client probing a VIP every 10 ms: TCP connect plus a tiny HTTP GET, many in flight.

Run inside the client's network namespace (stdlib only, started by path):

    python bench/vip_probe.py VIP PORT OUT.json [--interval 0.01] [--timeout 0.5]

A new probe starts every ``interval`` whatever the earlier ones are doing, so a probe stuck on
a SYN sent to a dead MAC does not hide when the service comes back. A probe succeeds when an
``HTTP/1.x 200`` status line arrives within ``timeout``. On SIGTERM/SIGINT it writes
``{"answers": [monotonic times of successful answers], "sent": N, "failed": N}`` to OUT.json.
CLOCK_MONOTONIC is one clock for the whole machine, namespaces included, so the times compare
with the benchmark's own ``time.monotonic()``.
"""

from __future__ import annotations

import argparse
import errno
import json
import selectors
import signal
import socket
import time

REQUEST = b"GET /healthz HTTP/1.0\r\nHost: vip\r\nUser-Agent: stackha-bench\r\n\r\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vip")
    parser.add_argument("port", type=int)
    parser.add_argument("out")
    parser.add_argument("--interval", type=float, default=0.01)
    parser.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    selector = selectors.DefaultSelector()
    answers: list[float] = []
    sent = failed = 0
    next_probe = time.monotonic()

    def finish(sock: socket.socket, ok: bool) -> None:
        nonlocal failed
        selector.unregister(sock)
        sock.close()
        if ok:
            answers.append(time.monotonic())
        else:
            failed += 1

    while not stopping:
        now = time.monotonic()
        if now >= next_probe:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex((args.vip, args.port))
            sent += 1
            if code not in (0, errno.EINPROGRESS):
                sock.close()
                failed += 1
            else:
                selector.register(sock, selectors.EVENT_WRITE, now)
            next_probe += args.interval
            if next_probe < now:  # fell behind (starved): skip ticks rather than burst
                next_probe = now + args.interval
        try:
            events = selector.select(max(0.0, next_probe - time.monotonic()))
        except InterruptedError:
            continue
        for key, mask in events:
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                if mask & selectors.EVENT_WRITE:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        finish(sock, False)
                        continue
                    sock.send(REQUEST)
                    selector.modify(sock, selectors.EVENT_READ, key.data)
                else:
                    head = sock.recv(64)
                    finish(sock, head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")))
            except OSError:
                finish(sock, False)
        now = time.monotonic()
        for key in list(selector.get_map().values()):
            if now - key.data > args.timeout:
                finish(key.fileobj, False)  # type: ignore[arg-type]
    with open(args.out, "w") as out:
        json.dump({"answers": answers, "sent": sent, "failed": failed}, out)


if __name__ == "__main__":
    main()
