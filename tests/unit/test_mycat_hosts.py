"""Backends named by schema.xml must stay inside the allowed networks (the lab's, loopback)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from stackha.mycat.hosts import foreign_hosts, main

ROOT = Path(__file__).resolve().parents[2]
LAB = ipaddress.IPv4Network("10.77.0.0/24")


def _schema(*urls: str) -> bytes:
    hosts = "".join(f'<writeHost host="h{i}" url="{u}" user="u" password="p"/>'
                    for i, u in enumerate(urls))
    return (f'<mycat:schema xmlns:mycat="http://io.mycat/"><dataHost name="d" maxCon="1" '
            f'minCon="1" balance="0" dbType="mysql" dbDriver="native">'
            f'<heartbeat>select 1</heartbeat>{hosts}</dataHost></mycat:schema>').encode()


def test_example_schema_stays_in_the_lab():
    assert foreign_hosts((ROOT / "configs/mycat/schema.xml").read_bytes(), [LAB]) == []


def test_a_backend_outside_the_lab_is_refused_with_its_address():
    problems = foreign_hosts(_schema("10.77.0.30:3306", "192.168.1.10:3306"), [LAB])
    assert len(problems) == 1
    assert "writeHost[host=h1]" in problems[0] and "192.168.1.10 is outside" in problems[0]


def test_a_host_name_is_refused_it_could_resolve_anywhere():
    [problem] = foreign_hosts(_schema("db.example.com:3306"), [LAB])
    assert "'db.example.com' is not an IPv4 address" in problem


def test_jdbc_urls_and_loopback():
    assert foreign_hosts(_schema("jdbc:mysql://127.0.0.1:3306/db", "127.0.0.1:3306"), []) == []
    [problem] = foreign_hosts(_schema("jdbc:mysql://8.8.8.8:3306/db"), [LAB])
    assert "8.8.8.8 is outside" in problem


def test_read_hosts_count_too():
    data = _schema("10.77.0.30:3306").replace(
        b'password="p"/>', b'password="p"><readHost host="r" url="1.2.3.4:3306" user="u" '
                           b'password="p"/></writeHost>')
    [problem] = foreign_hosts(data, [LAB])
    assert "readHost[host=r]" in problem


def test_main_refuses_to_start_on_foreign_or_missing_files(tmp_path: Path, capsys):
    assert main(["--conf", str(tmp_path), "--allow", str(LAB)]) == 1  # no schema.xml
    (tmp_path / "schema.xml").write_bytes(_schema("203.0.113.5:3306"))
    assert main(["--conf", str(tmp_path), "--allow", str(LAB)]) == 1
    assert "not starting: schema.xml" in capsys.readouterr().err
    (tmp_path / "schema.xml").write_bytes(_schema("10.77.0.30:3306"))
    assert main(["--conf", str(tmp_path), "--allow", str(LAB)]) == 0
