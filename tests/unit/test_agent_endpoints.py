"""The agent's HTTP endpoints: what each answers, and that no client can crash or block them."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from types import MappingProxyType

import pytest

from stackha.agent import endpoints
from stackha.agent.endpoints import NodeView, health, vrrp
from stackha.model.status import NodeStatus


def _status(**kw) -> NodeStatus:
    base = {"node": "nginx1", "applied_version": 4, "seen_version": 4,
            "health": MappingProxyType({"nginx": "ok"}),
            "vrrp": MappingProxyType({"web": "MASTER"})}
    return NodeStatus(**{**base, **kw})


def _view(**kw) -> NodeView:
    status = _status(**kw)
    return NodeView(status=status, current_version=status.seen_version, groups=("web",))


def test_health_is_200_only_with_every_check_ok_at_the_current_version():
    code, body = health(_view())
    assert code == 200 and body["healthy"] is True and body["reasons"] == []
    code, body = health(_view(health=MappingProxyType({"nginx": "connection refused"})))
    assert code == 503 and body["reasons"] == ["nginx: connection refused"]
    code, body = health(_view(seen_version=5))
    assert code == 503
    assert body["reasons"] == ["applies version 4; the current version 5 is not applied yet"]
    code, body = health(_view(seen_version=5, rejected_version=5))
    assert body["reasons"] == ["applies version 4; the current version 5 was refused here"]
    code, body = health(_view(applied_version=None))
    assert code == 503 and body["reasons"] == ["no version applied yet"]


def test_vrrp_is_200_on_master_503_otherwise_404_for_a_foreign_group():
    assert vrrp(_view(), "web")[0] == 200
    code, body = vrrp(_view(vrrp=MappingProxyType({"web": "BACKUP"})), "web")
    assert code == 503 and body["state"] == "BACKUP"
    # A member whose keepalived said nothing yet is no master.
    assert vrrp(_view(vrrp=MappingProxyType({})), "web") == (
        503, {"group": "web", "node": "nginx1", "state": "UNKNOWN", "master": False})
    code, body = vrrp(_view(), "sql")
    assert code == 404 and body["groups"] == ["web"]


@pytest.fixture
def server():
    views = {"view": _view()}
    srv = endpoints.serve("127.0.0.1", 0, lambda: views["view"])
    srv.views = views
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv, path: str) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{srv.server_address[1]}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _raw(srv, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", srv.server_address[1]), timeout=5) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
        return b"".join(chunks)


def test_each_endpoint_over_http(server):
    code, body = _get(server, "/health")
    assert code == 200 and json.loads(body)["healthy"] is True
    assert _get(server, "/vrrp/web")[0] == 200
    assert _get(server, "/vrrp/sql")[0] == 404
    code, body = _get(server, "/status")
    assert code == 200 and json.loads(body) == json.loads(_status().to_json())
    code, body = _get(server, "/metrics")
    assert code == 200 and b"stackha_applied_version" in body
    assert _get(server, "/nothing")[0] == 404
    server.views["view"] = _view(vrrp=MappingProxyType({"web": "BACKUP"}))
    assert _get(server, "/vrrp/web")[0] == 503


def test_malformed_and_oversized_requests_get_4xx_and_the_server_goes_on(server):
    assert _raw(server, b"GET /health HTTP/1.0 and more\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert _raw(server, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.0 400")
    assert _raw(server, b"GET /health HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n").startswith(
        b"HTTP/1.0 431")
    assert _raw(server, b"GET /health HTTP/9.9\r\n\r\n").split(b" ")[1] in (b"400", b"505")
    assert _raw(server, b"GET /" + b"a" * 70_000 + b" HTTP/1.0\r\n\r\n").split(b" ")[1] == b"414"
    assert _raw(server, b"GET /" + b"a" * 600 + b" HTTP/1.0\r\n\r\n").split(b" ")[1] == b"414"
    assert _raw(server, b"POST /health HTTP/1.0\r\n\r\n").split(b" ")[1] == b"501"
    assert _get(server, "/health")[0] == 200


def test_a_silent_client_does_not_block_the_others(server):
    silent = [socket.create_connection(("127.0.0.1", server.server_address[1]))
              for _ in range(3)]
    try:
        assert _get(server, "/health")[0] == 200
    finally:
        for sock in silent:
            sock.close()


def test_a_failing_view_costs_one_request_not_the_server(server):
    def broken() -> NodeView:
        raise RuntimeError("bug")

    good = server.view
    server.view = broken
    assert _get(server, "/health")[0] == 500
    server.view = good
    assert _get(server, "/health")[0] == 200


def test_connections_beyond_the_limit_are_closed_not_queued(server):
    held = [socket.create_connection(("127.0.0.1", server.server_address[1]))
            for _ in range(endpoints.MAX_CONNECTIONS)]
    try:
        # Every slot is taken by a silent client: the next one is closed at once, unanswered.
        extra = b""
        for _ in range(20):
            extra = _raw(server, b"GET /health HTTP/1.0\r\n\r\n")
            if not extra:
                break
        assert extra == b""
    finally:
        for sock in held:
            sock.close()


@pytest.mark.parametrize(("head", "code"), [
    (b"GET /health HTTP/1.0 and more\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /health\r\n\r\n", 400),  # HTTP/0.9: no version, no status line to answer with
    (b"GET /h\xe9alth HTTP/1.0\r\n\r\n", 400),
    (b"GET /health FTP/1.0\r\n\r\n", 400),
    (b"GET /health HTTP/2.0\r\n\r\n", 505),
    (b"DELETE /health HTTP/1.1\r\n\r\n", 501),
    (b"GET /" + b"a" * 600 + b" HTTP/1.0\r\n\r\n", 414),
    (b"GET /health HTTP/1.0\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
])
def test_a_bad_request_head_is_refused_with_its_status(head, code):
    with pytest.raises(endpoints.RequestError) as refused:
        endpoints.parse_head(head)
    assert refused.value.code == code


def test_a_good_head_gives_method_and_path_and_its_headers_are_not_read():
    head = b"HEAD /vrrp/web?x=1 HTTP/1.1\nHost: a\nX-Odd: \xff\n\n"
    assert endpoints.parse_head(head) == endpoints.Request("HEAD", "/vrrp/web?x=1")
    answer = endpoints.answer(endpoints.Request("HEAD", "/vrrp/web"), lambda: _view())
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n") and answer.endswith(b"\r\n\r\n")
    assert b"Content-Length: " in answer and b'"master"' not in answer  # HEAD: no body


def test_a_client_that_drips_its_request_is_let_go_at_the_deadline(server, monkeypatch):
    monkeypatch.setattr(endpoints, "REQUEST_TIMEOUT", 0.5)
    with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=5) as sock:
        # A byte every 0.1 s would reset a per-read timeout forever; 60 bytes take 6 s.
        closed = False
        for byte in b"GET /health HTTP/1.0\r\nX-Slow: " + b"a" * 40:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            sock.settimeout(0.1)
            try:
                closed = sock.recv(1) == b""
            except TimeoutError:
                pass
            except OSError:
                closed = True
            if closed:
                break
    assert closed
    assert _get(server, "/health")[0] == 200


def test_odd_but_harmless_requests_get_a_4xx_or_an_answer_never_a_500(server):
    assert _raw(server, b"GET http://[::1/health HTTP/1.0\r\n\r\n").split(b" ")[1] == b"404"
    assert _raw(server, b"GET /health HTTP/1.2\r\n\r\n").split(b" ")[1] == b"200"
    assert _raw(server, b"GET /health HTTP/1.0\n\r\n").split(b" ")[1] == b"200"
    refused = _raw(server, b"HEAD /health HTTP/2.0\r\n\r\n")
    assert refused.startswith(b"HTTP/1.0 505") and refused.endswith(b"\r\n\r\n")  # no body


def test_exactly_the_header_limit_is_accepted():
    head = b"GET /health HTTP/1.0\r\n" + b"X: y\r\n" * endpoints.MAX_HEADERS + b"\r\n"
    assert endpoints.parse_head(head).path == "/health"
