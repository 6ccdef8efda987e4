"""A throwaway ZooKeeper server on loopback, for the tests and the benchmarks.

It runs the real Debian ``zookeeper`` jars with a temporary data directory and a free port.
With ``tls`` it also serves a TLS client port (``secure_hosts``): ZooKeeper 3.8 does TLS only
with its Netty connection factory (the Debian package ships the Netty jars) and reads PEM key
and trust stores. The plain port stays, on loopback, for the readiness probe and the tests
that want it.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/*"
MAIN_CLASS = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ruok(address: str, port: int, netns: str | None = None) -> bool:
    if netns is not None:
        # The server lives in a namespace this process is not in: ask from inside it.
        probe = ("import socket,sys\ns=socket.create_connection((sys.argv[1],int(sys.argv[2])),"
                 "timeout=0.5)\ns.sendall(b'ruok')\nsys.exit(0 if s.recv(4)==b'imok' else 1)")
        done = subprocess.run(["ip", "netns", "exec", netns, sys.executable, "-c", probe,
                               address, str(port)], capture_output=True)
        return done.returncode == 0
    try:
        with socket.create_connection((address, port), timeout=0.5) as sock:
            sock.sendall(b"ruok")
            return sock.recv(4) == b"imok"
    except OSError:
        return False


@dataclass(frozen=True)
class ServerTls:
    """The server side of TLS: ``key_store`` holds the key then the certificate (PEM),
    ``trust_store`` the CA(s) that sign client certificates."""

    key_store: Path
    trust_store: Path
    client_auth: str = "need"  # need | want | none


@dataclass
class LocalZooKeeper:
    directory: Path
    port: int = field(default_factory=free_port)
    address: str = "127.0.0.1"
    netns: str | None = None
    process: subprocess.Popen[bytes] | None = None
    tls: ServerTls | None = None
    secure_port: int = field(default_factory=free_port)

    @property
    def hosts(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def secure_hosts(self) -> str:
        return f"{self.address}:{self.secure_port}"

    def _tls_config(self) -> str:
        if self.tls is None:
            return ""
        return (
            "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n"
            f"secureClientPort={self.secure_port}\n"
            # Without it the secure port listens on every address, not only clientPortAddress.
            f"secureClientPortAddress={self.address}\n"
            f"ssl.keyStore.location={self.tls.key_store}\n"
            "ssl.keyStore.type=PEM\n"
            f"ssl.trustStore.location={self.tls.trust_store}\n"
            "ssl.trustStore.type=PEM\n"
            f"ssl.clientAuth={self.tls.client_auth}\n"
        )

    def _write_config(self) -> Path:
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.directory / "zoo.cfg"
        config.write_text(
            "tickTime=500\n"
            f"dataDir={data}\n"
            f"clientPort={self.port}\n"
            f"clientPortAddress={self.address}\n"
            "admin.enableServer=false\n"
            "4lw.commands.whitelist=ruok,srvr,mntr,stat\n"
            # Short session bounds let the tests see session expiry within seconds.
            "minSessionTimeout=1000\n"
            "maxSessionTimeout=60000\n"
            + self._tls_config()
        )
        return config

    def start(self, timeout: float = 60.0) -> None:
        config = self._write_config()
        log = open(self.directory / "zookeeper.log", "ab")
        env = dict(os.environ, ZOO_LOG_DIR=str(self.directory),
                   JVMFLAGS="-Xmx256m -XX:+UseSerialGC -Xshare:auto")
        wrapper = ["ip", "netns", "exec", self.netns] if self.netns else []
        self.process = subprocess.Popen(
            [*wrapper, "java", "-Xmx256m", "-XX:+UseSerialGC",
             "-Dzookeeper.admin.enableServer=false", "-cp", CLASSPATH, MAIN_CLASS, str(config)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited early, see {self.directory}/zookeeper.log")
            if _answers_ruok(self.address, self.port, self.netns) and self._secure_listens():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ZooKeeper did not answer on port {self.port} within {timeout} s")

    def _secure_listens(self) -> bool:
        """The TLS port answers a handshake (an alert for our missing client certificate
        counts): the first one on a cold JVM takes seconds, which a test should not pay."""
        if self.tls is None or self.netns is not None:
            return True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((self.address, self.secure_port), timeout=10) as raw:
                with context.wrap_socket(raw) as tls:
                    tls.sendall(b"ruok")
                    tls.recv(4)
            return True
        except ssl.SSLError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None

    def __enter__(self) -> LocalZooKeeper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
