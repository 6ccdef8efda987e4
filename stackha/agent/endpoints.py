"""The agent's HTTP endpoints on the metrics port, for monitors and load balancers.

``/health`` 200 when the node's services pass their checks and it applies the current
version, 503 otherwise, with a JSON body that says why; ``/vrrp/GROUP`` 200 while this node is
MASTER of GROUP, 503 otherwise, 404 for a group the node is no member of; ``/status`` the
document the agent writes to ZooKeeper; ``/metrics`` Prometheus.

Every answer is computed from what the agent already knows (its last status, refreshed each
heartbeat, and the VRRP state keepalived's FIFO delivers): a request never runs a check, never
takes a lock of the event loop and so never waits on a reload. A request has ``REQUEST_TIMEOUT``
seconds to arrive; at most ``MAX_CONNECTIONS`` are served at once (more are closed at once);
a malformed one gets its 4xx/5xx; nothing a client sends can raise out of the server's thread.

HTTP/1.0 is read here, not by http.server: that module imports the email package, html and
http.client, 2.2 MiB of the agent's 30 MiB budget (VmRSS with and without, Python 3.11), for
four GET endpoints whose request line is all they read.
"""

from __future__ import annotations

import json
import logging
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from stackha.agent import metrics
from stackha.model.status import NodeStatus

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 2.0
MAX_CONNECTIONS = 16
MAX_PATH = 512


@dataclass(frozen=True)
class NodeView:
    """What the endpoints are answered from, taken at once."""

    status: NodeStatus
    current_version: int | None  # the newest version this node has seen, None before any
    groups: tuple[str, ...]  # VRRP groups this node is a member of (applied spec)
    applying: bool = False


def health(view: NodeView) -> tuple[int, dict[str, Any]]:
    """Pure: /health's code and body."""
    status, reasons = view.status, []
    for role, result in sorted(status.health.items()):
        if result != "ok":
            reasons.append(f"{role}: {result}")
    if status.applied_version is None:
        reasons.append("no version applied yet")
    elif view.current_version is not None and status.applied_version != view.current_version:
        behind = "is being applied" if view.applying else \
            "was refused here" if status.rejected_version == view.current_version \
            else "is not applied yet"
        reasons.append(f"applies version {status.applied_version}; the current version "
                       f"{view.current_version} {behind}")
    body = {"healthy": not reasons, "node": status.node, "reasons": reasons,
            "applied_version": status.applied_version, "current_version": view.current_version,
            "health": dict(status.health), "zookeeper": status.zookeeper}
    return (HTTPStatus.OK if not reasons else HTTPStatus.SERVICE_UNAVAILABLE), body


def vrrp(view: NodeView, group: str) -> tuple[int, dict[str, Any]]:
    """Pure: /vrrp/GROUP's code and body."""
    known = set(view.groups) | set(view.status.vrrp)
    if group not in known:
        return HTTPStatus.NOT_FOUND, {"group": group, "error": "not a VRRP group of this node",
                                      "groups": sorted(known)}
    state = view.status.vrrp.get(group, "UNKNOWN")
    code = HTTPStatus.OK if state == "MASTER" else HTTPStatus.SERVICE_UNAVAILABLE
    return code, {"group": group, "node": view.status.node, "state": state,
                  "master": state == "MASTER"}


# The request head is read whole before anything is answered; these bound what a client can
# make the agent hold. http.client allows 100 header lines of 64 KiB: an agent's four GET
# endpoints need neither.
MAX_HEAD = 8192
MAX_HEADERS = 100


@dataclass(frozen=True)
class Request:
    method: str
    path: str


class RequestError(Exception):
    """A request that gets ``code`` and no routing."""

    def __init__(self, code: HTTPStatus, reason: str):
        super().__init__(reason)
        self.code = code


def parse_head(head: bytes) -> Request:
    """Pure: the request line of a head ending in a blank line, or RequestError with the
    status it deserves. Only the request line matters to the endpoints; header lines are
    counted and otherwise ignored (no body is ever read: GET and HEAD only)."""
    lines = head.split(b"\n")
    line = lines[0].rstrip(b"\r")
    if sum(1 for header in lines[1:] if header.strip()) > MAX_HEADERS:
        raise RequestError(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many headers")
    try:
        words = line.decode("ascii").split()
    except UnicodeDecodeError:
        raise RequestError(HTTPStatus.BAD_REQUEST, "request line is not ASCII") from None
    if len(words) != 3:
        raise RequestError(HTTPStatus.BAD_REQUEST, "request line is not METHOD PATH VERSION")
    method, path, version = words
    if len(path) > MAX_PATH:
        raise RequestError(HTTPStatus.REQUEST_URI_TOO_LONG, "path too long")
    if not version.startswith("HTTP/"):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"bad version {version[:20]!r}")
    if not (version.startswith("HTTP/1.") and version[7:].isdigit()):  # 1.x reads as 1.1
        raise RequestError(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, f"version {version[:20]!r}")
    if method not in ("GET", "HEAD"):
        raise RequestError(HTTPStatus.NOT_IMPLEMENTED, f"method {method[:20]!r}")
    return Request(method, path)


def read_head(sock: socket.socket, timeout: float) -> bytes:
    """The bytes up to and including the blank line that ends a request head, read within
    ``timeout`` in all (a client that drips a byte a second is let go like a silent one).
    RequestError 414/431 for a head over MAX_HEAD, TimeoutError or EOFError otherwise."""
    deadline = time.monotonic() + timeout
    head = b""
    while True:
        end = _head_end(head)
        if end:
            return head[:end]
        if len(head) > MAX_HEAD:
            code = HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE if b"\n" in head \
                else HTTPStatus.REQUEST_URI_TOO_LONG
            raise RequestError(code, "request head too long")
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request head not complete in time")
        sock.settimeout(left)
        chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("closed before the request head ended")
        head += chunk


def _head_end(head: bytes) -> int:
    ends = [at + len(mark) for mark in (b"\r\n\r\n", b"\n\n", b"\n\r\n")
            if (at := head.find(mark)) >= 0]
    return min(ends) if ends else 0


def response(code: int, payload: bytes, head: bool = False,
             content_type: str = "application/json") -> bytes:
    """Pure: a whole HTTP/1.0 answer; the connection closes after it."""
    status = HTTPStatus(code)
    lines = [f"HTTP/1.0 {status.value} {status.phrase}", "Server: stackha-agent",
             f"Content-Type: {content_type}", f"Content-Length: {len(payload)}",
             "Cache-Control: no-store", "Connection: close", "", ""]
    return "\r\n".join(lines).encode("ascii") + (b"" if head else payload)


def answer(request: Request, view: Callable[[], NodeView]) -> bytes:
    """The answer to a well-formed request; ``view`` is asked only where the answer needs it."""
    head = request.method == "HEAD"
    # Only the path is routed: no urlsplit, which raises on a target like "http://[::1/x".
    path = request.path.partition("?")[0].partition("#")[0].rstrip("/") or "/"
    if path == "/metrics":
        return response(HTTPStatus.OK, metrics.render(), head, metrics.CONTENT_TYPE)
    if path == "/health":
        return _json(*health(view()), head=head)
    if path.startswith("/vrrp/") and path.count("/") == 2:
        return _json(*vrrp(view(), unquote(path[len("/vrrp/"):])), head=head)
    if path == "/status":
        return response(HTTPStatus.OK, view().status.to_json() + b"\n", head)
    return _json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint", "endpoints": [
        "/health", "/vrrp/GROUP", "/status", "/metrics"]}, head=head)


def _json(code: int, body: dict[str, Any], head: bool = False) -> bytes:
    return response(code, json.dumps(body, sort_keys=True).encode() + b"\n", head)


class _Handler(socketserver.BaseRequestHandler):
    server: EndpointServer

    def handle(self) -> None:
        sock, client = self.request, self.client_address[0]
        head = b""
        try:
            head = read_head(sock, REQUEST_TIMEOUT)
            request = parse_head(head)
        except RequestError as exc:
            log.debug("event=endpoint_refused client=%s code=%d reason=%r", client,
                      exc.code, str(exc))
            self._send(response(exc.code, json.dumps({"error": str(exc)}).encode() + b"\n",
                                head=head.startswith(b"HEAD ")))
            return
        except (OSError, EOFError) as exc:  # silent, slow or gone: nothing to answer
            log.debug("event=endpoint_abandoned client=%s reason=%r", client, str(exc))
            return
        try:
            data = answer(request, self.server.view)
        except Exception:  # a bug here must cost one request, never the agent
            log.exception("event=endpoint_failed path=%r", request.path)
            data = response(HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error": "internal error"}\n',
                            request.method == "HEAD")
        log.debug("event=endpoint_request client=%s method=%s path=%r", client,
                  request.method, request.path)
        self._send(data)

    def _send(self, data: bytes) -> None:
        try:
            self.request.settimeout(REQUEST_TIMEOUT)
            self.request.sendall(data)
        except OSError as exc:
            log.debug("event=endpoint_send_failed client=%s reason=%r",
                      self.client_address[0], str(exc))


class EndpointServer(socketserver.ThreadingTCPServer):
    """A thread per request, at most MAX_CONNECTIONS at once."""

    daemon_threads = True
    allow_reuse_address = True  # a restarted agent binds its port at once
    request_queue_size = MAX_CONNECTIONS

    def __init__(self, address: tuple[str, int], view: Callable[[], NodeView]):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.view = view
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("event=endpoint_busy client=%s", client_address[0])
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback on stderr; a reset connection is no agent error.
        log.warning("event=endpoint_connection_error client=%s", client_address[0],
                    exc_info=True)


def serve(address: str, port: int, view: Callable[[], NodeView]) -> EndpointServer:
    """Listen on ``address:port`` in a daemon thread; returns the server (``.server_address``
    has the port when 0 was asked)."""
    server = EndpointServer((address, port), view)
    threading.Thread(target=server.serve_forever, name="endpoints", daemon=True).start()
    log.info("event=endpoints_listening address=%s port=%d", address, server.server_address[1])
    return server
