"""The real MyCat 1.6.6.1 as an oracle: does it load this set of configuration files?

``RealMycat.verdicts`` answers for many file sets in one JVM: the driver in
``RealMycatOracle.java`` (compiled here with javac, into the cache) loads every set through
MyCat's own start-up code on a fresh class loader. ``RealMycat.full_start`` starts the whole
MyCat (``io.mycat.MycatStartup``) on one set, the slow but unarguable answer, used to check
that the driver is faithful.

The release tarball is unpacked into a cache directory (never into the repository). Every
file set is checked before MyCat sees it: a dataHost url that is not a loopback address is
refused here, because MyCat would send heartbeats to it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARBALL_NAME = "Mycat-server-1.6.6.1-release-loopback.tar.gz"
DRIVER_SOURCE = Path(__file__).with_name("RealMycatOracle.java")
JAVA_OPTIONS = ("--add-opens", "java.base/java.lang=ALL-UNNAMED",
                "--add-opens", "java.base/java.nio=ALL-UNNAMED",
                "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
                "--add-exports", "java.base/sun.nio.ch=ALL-UNNAMED")
_QUIET_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="OFF">
  <Appenders><Console name="err" target="SYSTEM_ERR">
    <PatternLayout pattern="%p %c{1} %m%n"/></Console></Appenders>
  <Loggers><Root level="error"><AppenderRef ref="err"/></Root></Loggers>
</Configuration>
"""
_URL = re.compile(r"""\burl\s*=\s*(["'])(.*?)\1""", re.S)
_LOOPBACK_URL = re.compile(r"(jdbc:[a-z0-9]+://)?(127(\.\d{1,3}){3}|localhost|\[::1\])([:/?]|$)",
                           re.I)


def find_tarball() -> Path | None:
    """$STACKHA_MYCAT_TARBALL, else the shared copy beside the repository (as CI has it)."""
    named = os.environ.get("STACKHA_MYCAT_TARBALL")
    candidates = [Path(named)] if named else []
    candidates.append(ROOT.parent / "shared" / "mycat" / TARBALL_NAME)
    return next((c for c in candidates if c.is_file()), None)


def missing_tools() -> str | None:
    """Why the oracle cannot run here, or None."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian: openjdk-17-jdk-headless)"
    if find_tarball() is None:
        return (f"the MyCat release tarball {TARBALL_NAME} is not at ../shared/mycat/ "
                "(or $STACKHA_MYCAT_TARBALL)")
    return None


@dataclass(frozen=True)
class Verdict:
    loaded: bool
    reason: str = ""


class UnsafeCase(ValueError):
    """A file set names a backend outside loopback: MyCat must never see it."""


def check_loopback(files: Mapping[str, str]) -> None:
    schema = files.get("schema.xml")
    if schema is None:
        return  # MyCat falls back to the schema.xml bundled in its jar: loopback already
    for _, url in _URL.findall(schema):
        # Whatever MyCat makes of the rest, the host it would contact comes first.
        if url.strip() and not _LOOPBACK_URL.match(url.strip()):
            raise UnsafeCase(f"dataHost url {url!r} is not a loopback address")


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path(tempfile.gettempdir()))
    return Path(base) / "stackha-realmycat"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _unpack(tarball: Path) -> Path:
    """MYCAT_HOME of the unpacked release, made once per tarball (atomically: a rename)."""
    home = _cache_root() / f"release-{_digest(tarball)}"
    if not (home / "mycat" / "lib").is_dir():
        home.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=home.parent, prefix="unpack-"))
        with tarfile.open(tarball) as archive:
            # The release is trusted, but the safe filter costs nothing where Python has it.
            if hasattr(tarfile, "data_filter"):
                archive.extractall(staging, filter="data")
            else:
                archive.extractall(staging)
        try:
            staging.rename(home)
        except OSError:  # another run got there first
            shutil.rmtree(staging, ignore_errors=True)
    return home / "mycat"


def _compile_driver() -> Path:
    out = _cache_root() / f"driver-{_digest(DRIVER_SOURCE)}"
    if not (out / "RealMycatOracle.class").is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix="javac-"))
        subprocess.run(["javac", "-nowarn", "-d", str(staging), str(DRIVER_SOURCE)],
                       check=True, capture_output=True, text=True)
        (staging / "log4j2-quiet.xml").write_text(_QUIET_LOG4J2)
        try:
            staging.rename(out)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
    return out


class RealMycat:
    def __init__(self, tarball: Path | None = None):
        found = tarball or find_tarball()
        if found is None:
            raise FileNotFoundError(missing_tools() or TARBALL_NAME)
        self.home = _unpack(found)
        self.driver = _compile_driver()

    def _lay_out(self, root: Path, files: Mapping[str, str | None]) -> Path:
        """A MYCAT_HOME for one case: the release's conf/ with the case's files over it
        (None deletes a file, so MyCat falls back to the copy in its jar)."""
        check_loopback({k: v for k, v in files.items() if v is not None}
                       | ({} if "schema.xml" in files
                          else {"schema.xml": (self.home / "conf" / "schema.xml").read_text()}))
        conf = root / "conf"
        shutil.copytree(self.home / "conf", conf)
        for name, text in files.items():
            target = conf / name
            if text is None:
                target.unlink(missing_ok=True)
            else:
                target.write_text(text, encoding="utf-8")
        for directory in ("logs", "tmlogs"):
            (root / directory).mkdir(exist_ok=True)
        return root

    def verdicts(self, cases: Mapping[str, Mapping[str, str | None]],
                 timeout: float = 300.0) -> dict[str, Verdict]:
        """MyCat's verdict on each named file set (file name -> text, None: removed)."""
        with tempfile.TemporaryDirectory(prefix="realmycat-") as scratch:
            homes: dict[str, str] = {}
            for index, (name, files) in enumerate(cases.items()):
                homes[str(self._lay_out(Path(scratch) / f"case{index}", files))] = name
            # A short-lived JVM: the quick compiler and the serial collector cost a third of
            # the CPU time of the defaults here. Without JMX, log4j does not register MBeans
            # for each case's class loader, which made every case slower than the last.
            command = ["java", *JAVA_OPTIONS, "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
                       "-Dlog4j2.disable.jmx=true",
                       f"-Dlog4j.configurationFile={self.driver / 'log4j2-quiet.xml'}",
                       "-cp", str(self.driver), "RealMycatOracle", str(self.home), *homes]
            try:
                run = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                     cwd=scratch)
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"the oracle took longer than {timeout} s for "
                                   f"{len(cases)} cases") from None
            results: dict[str, Verdict] = {}
            for line in run.stdout.splitlines():
                home, _, rest = line.partition("\t")
                if home not in homes:
                    continue
                status, _, reason = rest.partition("\t")
                results[homes[home]] = Verdict(status == "LOADED", reason)
            missing = [name for name in cases if name not in results]
            if missing:
                raise RuntimeError(f"the oracle gave no verdict for {missing[:5]} "
                                   f"(exit {run.returncode}): {run.stderr[-2000:]}")
            return results

    def full_start(self, files: Mapping[str, str | None], timeout: float = 60.0) -> Verdict:
        """Start the whole MyCat on one file set and see whether it comes up.

        serverPort/managerPort are moved to free loopback ports first (and bindIp to
        127.0.0.1), so the run neither clashes with anything nor listens outside loopback.
        """
        server = files.get("server.xml")
        if server is None:
            server = (self.home / "conf" / "server.xml").read_text()
        server = _free_ports(server)
        with tempfile.TemporaryDirectory(prefix="realmycat-full-") as scratch:
            home = self._lay_out(Path(scratch), {**files, "server.xml": server})
            command = ["java", *JAVA_OPTIONS, f"-DMYCAT_HOME={home}",
                       "-cp", f"{home / 'conf'}:{self.home / 'lib'}/*", "io.mycat.MycatStartup"]
            log = home / "stdout.txt"
            with log.open("w") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                           cwd=home, start_new_session=True)
                try:
                    deadline = time.monotonic() + timeout
                    while time.monotonic() < deadline:
                        text = log.read_text(errors="replace")
                        if "startup successfully" in text:
                            return Verdict(True)
                        if process.poll() is not None:
                            return Verdict(False, _last_error(text))
                        time.sleep(0.2)
                    return Verdict(False, f"neither up nor down after {timeout} s")
                finally:
                    if process.poll() is None:
                        process.kill()
                    process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _free_ports(server_xml: str) -> str:
    wanted = {"serverPort": _free_port(), "managerPort": _free_port(), "bindIp": "127.0.0.1"}
    for name, value in wanted.items():
        pattern = re.compile(rf'(<property\s+name="{name}"\s*>)[^<]*(</property>)')
        if pattern.search(server_xml):
            server_xml = pattern.sub(rf"\g<1>{value}\g<2>", server_xml, count=1)
        else:
            server_xml = re.sub(r"(<system>)", rf'\1<property name="{name}">{value}</property>',
                                server_xml, count=1)
    return server_xml


def _last_error(text: str) -> str:
    """MyCat's reason: the innermost cause it printed (its start-up wraps everything in an
    ExceptionInInitializerError)."""
    lines = [line.strip() for line in text.splitlines()
             if "Exception" in line or "Error" in line]
    causes = [line for line in lines if line.startswith("Caused by")]
    return (causes or lines or [text[-500:]])[-1 if causes else 0]
