"""The real MyCat 1.6 release as a throwaway process on loopback, for the integration tests
(testkit.realmycat is the other use of the release: an oracle for the validator).

It unpacks the release tarball (``../shared/mycat/`` next to the checkout, or
$STACKHA_MYCAT_TARBALL) into a temporary MYCAT_HOME, writes the given conf files with free
loopback ports, and starts ``io.mycat.MycatStartup`` on Java 17 with the opened packages it
needs. It refuses to start on a schema.xml naming a backend outside loopback: MyCat's
heartbeats would leave the machine.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from stackha.mycat.hosts import foreign_hosts
from stackha.mycat.manager import ManagerClient, ManagerError
from testkit import SHARED

JAVA_OPTS = ("-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
             "--add-opens=java.base/java.lang=ALL-UNNAMED",
             "--add-opens=java.base/java.nio=ALL-UNNAMED",
             "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
             "--add-opens=java.base/java.util=ALL-UNNAMED",
             "--add-exports=java.base/sun.nio.ch=ALL-UNNAMED")


def release_tarball() -> Path | None:
    named = os.environ.get("STACKHA_MYCAT_TARBALL")
    if named:
        return Path(named) if Path(named).is_file() else None
    found = sorted((SHARED / "mycat").glob("Mycat-server-*.tar.gz"))
    return found[0] if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_ports(server_xml: str, sql_port: int, manager_port: int) -> str:
    """server.xml with its serverPort/managerPort set (added when absent), bound to loopback."""
    text = server_xml
    for name, value in (("serverPort", sql_port), ("managerPort", manager_port),
                        ("bindIp", "127.0.0.1")):
        pattern = re.compile(rf'<property name="{name}">[^<]*</property>')
        line = f'<property name="{name}">{value}</property>'
        text = pattern.sub(line, text) if pattern.search(text) else \
            text.replace("<system>", f"<system>\n        {line}", 1)
    return text


@dataclass
class RealMycat:
    home: Path
    sql_port: int = field(default_factory=free_port)
    manager_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def unpack(cls, tarball: Path, directory: Path) -> RealMycat:
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(directory)], check=True)
        return cls(directory / "mycat")

    @property
    def conf(self) -> Path:
        return self.home / "conf"

    @property
    def log(self) -> Path:
        return self.home / "stdout.log"

    def write_conf(self, files: Mapping[str, str | bytes]) -> None:
        """conf/ files by name; server.xml gets this instance's ports."""
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            if name == "server.xml":
                data = with_ports(data.decode(), self.sql_port, self.manager_port).encode()
            (self.conf / name).write_bytes(data)

    def start(self, timeout: float = 90.0, user: str = "app", password: str = "app_pw") -> None:
        problems = foreign_hosts((self.conf / "schema.xml").read_bytes(), [])
        if problems:
            raise RuntimeError("not starting MyCat: " + "; ".join(problems))
        java = shutil.which("java") or "/usr/bin/java"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [java, *JAVA_OPTS, f"-DMYCAT_HOME={self.home}", "-cp",
                 f"{self.conf}:{self.home / 'lib'}/*", "io.mycat.MycatStartup"],
                cwd=self.home, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.manager(user, password).version()
                return
            except ManagerError as exc:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-3000:]
                    self.stop()
                    raise RuntimeError(f"MyCat did not open its manager port:\n{tail}") from exc
                time.sleep(0.5)

    def manager(self, user: str, password: str) -> ManagerClient:
        return ManagerClient("127.0.0.1", self.manager_port, user, password, timeout=5.0)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
