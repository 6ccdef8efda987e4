"""`stackha check nginx`'s HTTP probe against a throwaway server on loopback."""

from __future__ import annotations

import http.server
import socket
import threading

import pytest

from stackha.checks.probes import check_http
from testkit.localzk import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/healthz": 200, "/moved": 302, "/sick": 503}.get(self.path.split("?")[0], 404)
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_healthy_answers(server):
    assert check_http(f"{server}/healthz") is None
    assert check_http(f"{server}/healthz?probe=1") is None
    assert check_http(f"{server}/moved") is None


def test_unhealthy_answers_name_the_status(server):
    assert check_http(f"{server}/sick") == f"{server}/sick: HTTP 503"
    assert check_http(f"{server}/nothing") == f"{server}/nothing: HTTP 404"


def test_refused_and_unsupported():
    url = f"http://127.0.0.1:{free_port()}/healthz"
    assert check_http(url).startswith(f"{url}: ConnectionRefusedError")
    assert check_http("ftp://127.0.0.1/") == "unsupported URL 'ftp://127.0.0.1/'"


def test_garbage_and_silence_are_unhealthy():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/"

        def answer(data: bytes | None) -> None:
            conn, _ = listener.accept()
            conn.recv(1024)
            if data is not None:
                conn.sendall(data)
                conn.close()
            else:
                threading.Event().wait(1.0)
                conn.close()

        worker = threading.Thread(target=answer, args=(b"SSH-2.0-OpenSSH\r\n",))
        worker.start()
        assert check_http(url) == f"{url}: BadStatusLine: 'SSH-2.0-OpenSSH'"
        worker.join()
        worker = threading.Thread(target=answer, args=(None,))
        worker.start()
        assert check_http(url, timeout=0.2) == f"{url}: TimeoutError: timed out"
        worker.join()
