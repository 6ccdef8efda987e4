"""The agent's HTTP endpoints on the metrics port, for monitors and load balancers.

``/health`` 200 when the node's services pass their checks and it applies the current
version, 503 otherwise, with a JSON body that says why; ``/vrrp/GROUP`` 200 while this node is
MASTER of GROUP, 503 otherwise, 404 for a group the node is no member of; ``/status`` the
document the agent writes to ZooKeeper; ``/metrics`` Prometheus.

Every answer is computed from what the agent already knows (its last status, refreshed each
heartbeat, and the VRRP state keepalived's FIFO delivers): a request never runs a check, never
takes a lock of the event loop and so never waits on a reload. A request has ``REQUEST_TIMEOUT``
seconds to arrive; at most ``MAX_CONNECTIONS`` are served at once (more are closed at once);
a malformed one gets 400 from the standard library's parser; nothing a client sends can raise
out of the server's thread.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

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


class _Handler(BaseHTTPRequestHandler):
    server: EndpointServer
    timeout = REQUEST_TIMEOUT  # socket timeout: a client that sends nothing is let go
    protocol_version = "HTTP/1.0"  # one request per connection: nothing to hold open
    # A line that does not parse is answered with a status line (HTTP/0.9 would have none).
    default_request_version = "HTTP/1.0"
    server_version = "stackha-agent"
    sys_version = ""

    def do_GET(self) -> None:
        try:
            self._route(head=False)
        except Exception:  # a bug here must cost one request, never the agent
            log.exception("event=endpoint_failed path=%r", self.path[:MAX_PATH])
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b'{"error": "internal error"}\n')

    def do_HEAD(self) -> None:
        try:
            self._route(head=True)
        except Exception:
            log.exception("event=endpoint_failed path=%r", self.path[:MAX_PATH])
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, b"", head=True)

    def _route(self, head: bool) -> None:
        if len(self.path) > MAX_PATH:
            self._json(HTTPStatus.REQUEST_URI_TOO_LONG, {"error": "path too long"}, head)
            return
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path == "/metrics":
            self._send(HTTPStatus.OK, metrics.render(), head, metrics.CONTENT_TYPE)
            return
        view = self.server.view()
        if path == "/health":
            self._json(*health(view), head=head)
        elif path.startswith("/vrrp/") and path.count("/") == 2:
            self._json(*vrrp(view, unquote(path[len("/vrrp/"):])), head=head)
        elif path == "/status":
            self._send(HTTPStatus.OK, view.status.to_json() + b"\n", head)
        else:
            self._json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint", "endpoints": [
                "/health", "/vrrp/GROUP", "/status", "/metrics"]}, head)

    def _json(self, code: int, body: dict[str, Any], head: bool = False) -> None:
        self._send(code, json.dumps(body, sort_keys=True).encode() + b"\n", head)

    def _send(self, code: int, payload: bytes, head: bool = False,
              content_type: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if not head:
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("event=endpoint_request client=%s line=%r", self.client_address[0],
                  format % args)


class EndpointServer(ThreadingHTTPServer):
    """A thread per request, at most MAX_CONNECTIONS at once."""

    daemon_threads = True
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
