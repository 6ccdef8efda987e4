"""MyCat's own ZooKeeper layout, myid.properties and the agent's MyCat helpers: pure parts."""

from __future__ import annotations

import json
from pathlib import Path

from stackha.agent.mycatrole import password_from_server_xml
from stackha.agent.nodefiles import node_files
from stackha.model.bundle import Bundle
from stackha.model.problems import errors
from stackha.model.spec import parse_spec
from stackha.mycat.myid import render_myid, zk_url
from stackha.mycat.validate import validate_mycat
from stackha.mycat.zklayout import build_layout, to_json
from stackha.store.mycatzk import layout_acls, layout_write_for, target_of

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden" / "mycat_zk_layout.json"
NODES = ("mycat1", "mycat2", "mycat3")


def _example_files() -> dict[str, bytes]:
    return {f"mycat/{p.name}": p.read_bytes() for p in (ROOT / "configs/mycat").iterdir()}


def _spec(extra: str = ""):
    text = (ROOT / "configs/stackha.yaml").read_text()
    if extra:
        text = text.split("mycat_zookeeper:")[0] + extra
    spec, problems = parse_spec(text)
    assert spec is not None, [str(p) for p in problems]
    return spec


def _golden_bytes(entry: dict) -> bytes:
    return entry["text"].encode() if "text" in entry else to_json(entry["json"])


def test_example_layout_matches_golden_in_order_and_bytes():
    files = _example_files()
    model, problems = validate_mycat(files)
    assert model is not None and not errors(problems)
    layout, problems = build_layout(files, NODES)
    assert layout is not None and problems == []
    golden = json.loads(GOLDEN.read_text())
    assert layout.paths() == tuple(g["path"] for g in golden)
    for znode, entry in zip(layout.znodes, golden, strict=True):
        assert znode.data == _golden_bytes(entry), znode.path


def test_layout_order_puts_backends_before_the_schemas_that_name_them():
    layout, _ = build_layout(_example_files(), NODES)
    assert layout is not None
    paths = layout.paths()
    assert paths[:7] == ("schema/dataHost", "schema/dataNode", "schema/schema",
                         "server/default", "server/user", "rules/tableRule", "rules/function")
    assert paths[-1] == ""
    assert json.loads(layout.znodes[-1].data) == {"clusterNodes": "mycat1,mycat2,mycat3",
                                                  "clusterSize": 3}


SCHEMA = b"""<?xml version="1.0"?>
<mycat:schema xmlns:mycat="http://io.mycat/">
  <schema name="s" randomDataNode="dn0">
    <table name="t" dataNode="dn0" autoIncrement="1" ruleRequired="false">
      <childTable name="c" joinKey="t_id" parentKey="id" needAddLimit="true"/>
    </table>
  </schema>
  <dataNode name="dn0" dataHost="h" database="d"/>
  <dataHost name="h" balance="1" maxCon="10" minCon="1" dbType="mysql" dbDriver="native"
            notSwitch="-1">
    <heartbeat> select 1 </heartbeat>
    <writeHost host="w" url="a:3306" user="u" password="p" weight="2" usingDecrypt="1">
      <readHost host="r" url="b:3306" user="u" password="p" weight="3"/>
    </writeHost>
  </dataHost>
</mycat:schema>"""
SERVER = b"""<?xml version="1.0"?>
<mycat:server xmlns:mycat="http://io.mycat/">
  <firewall><whitehost><host host="127.0.0.1" user="app"/></whitehost></firewall>
  <user name="app" defaultAccount="true">
    <property name="password">pw</property>
    <privileges check="true"><schema name="s" dml="0110"/></privileges>
  </user>
</mycat:server>"""
RULE = b"""<?xml version="1.0"?>
<mycat:rule xmlns:mycat="http://io.mycat/">
  <tableRule name="r"><rule><columns>id</columns><algorithm>f</algorithm></rule></tableRule>
  <function name="f" class="io.mycat.route.function.PartitionByFileMap">
    <property name="mapFile">partition-hash-int.txt</property>
  </function>
</mycat:rule>"""


def test_settings_the_format_cannot_carry_are_warnings_naming_file_and_element():
    files = {"mycat/schema.xml": SCHEMA, "mycat/server.xml": SERVER, "mycat/rule.xml": RULE,
             "mycat/partition-hash-int.txt": b"10000=0\n10010=1\n",
             "mycat/sequence_conf.properties": b"A.CURID=1\n",
             "mycat/sequence_conf-mycat2.properties": b"A.CURID=2\n",
             "mycat/ehcache.xml": b"<ehcache/>"}
    layout, problems = build_layout(files, NODES)
    assert layout is not None
    assert not errors(problems)
    text = [str(p) for p in problems]
    expected = [
        "mycat/schema.xml: schema[name=s]: attribute randomDataNode=",
        "mycat/schema.xml: schema[name=s]/table[name=t]/childTable[name=c]: attribute "
        "needAddLimit=",
        "mycat/schema.xml: dataHost[name=h]: attribute notSwitch=",
        "mycat/schema.xml: dataHost[name=h]/writeHost[host=w]: attribute weight=",
        "mycat/schema.xml: dataHost[name=h]/writeHost[host=w]: usingDecrypt=\"1\"",
        "mycat/server.xml: user[name=app]: attribute defaultAccount=",
        "mycat/server.xml: user[name=app]/privileges: table and schema privileges",
        "mycat/server.xml: firewall: <firewall>",
        "mycat/ehcache.xml: this file",
    ]
    for start in expected:
        assert any(line.startswith(f"warning: {start}") for line in text), (start, text)
    assert all("MyCat's ZooKeeper format has no place for it" in line for line in text)
    assert len(text) == len(expected)
    by_path = {z.path: z.data for z in layout.znodes}
    host = json.loads(by_path["schema/dataHost"])[0]
    assert host["heartbeat"] == "select 1"
    write = host["writeHost"][0]
    assert write["usingDecrypt"] is True and "weight" not in write
    assert write["readHost"] == [{"weight": "3", "host": "r", "url": "b:3306", "password": "p",
                                  "user": "u"}]
    table = json.loads(by_path["schema/schema"])[0]["table"][0]
    assert table["autoIncrement"] is True and table["ruleRequired"] is False
    function = json.loads(by_path["rules/function"])[0]
    assert function["clazz"] == "io.mycat.route.function.PartitionByFileMap"
    assert function["property"][-1] == {"value": "10000=0\n10010=1\n",
                                        "name": "partition-hash-int.txt"}
    assert json.loads(by_path["server/user"]) == [
        {"name": "app", "property": [{"value": "pw", "name": "password"}]}]
    assert by_path["sequences/common/sequence_conf.properties"] == b"A.CURID=1\n"
    assert by_path["sequences/cluster/sequence_conf-mycat2.properties"] == b"A.CURID=2\n"


def test_missing_file_is_an_error_and_no_layout():
    layout, problems = build_layout({"mycat/schema.xml": SCHEMA}, NODES)
    assert layout is None
    assert {p.file for p in errors(problems)} == {"mycat/server.xml", "mycat/rule.xml"}


def test_spec_section_defaults_and_readers():
    spec = _spec()
    target = target_of(spec)
    assert target is not None
    assert target.base == "/mycat/mycat-cluster-1"
    assert target.readers == ("10.77.0.31", "10.77.0.32", "10.77.0.33")
    assert target.nodes == NODES
    spec = _spec("mycat_zookeeper: {enabled: true, cluster_id: c2, root: /sites/a/mycat, "
                 "readers: [10.0.0.0/8, 192.168.1.7], "
                 "hosts: '10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181'}\n")
    target = target_of(spec)
    assert target is not None and target.base == "/sites/a/mycat/c2"
    assert target.readers == ("10.0.0.0/8", "192.168.1.7")
    assert zk_url(spec) == "10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181/sites/a"
    assert target_of(_spec("mycat_zookeeper: {enabled: false}\n")) is None


def test_spec_section_errors_are_strict():
    text = (ROOT / "configs/stackha.yaml").read_text().split("mycat_zookeeper:")[0]
    spec, problems = parse_spec(text + "mycat_zookeeper: {enabled: 1, cluster_id: a/b, "
                                       "root: /zk, colour: red}\n")
    assert spec is None
    reasons = [str(p) for p in problems]
    assert any("mycat_zookeeper.colour: unknown key" in r for r in reasons)
    assert any("mycat_zookeeper.enabled: must be boolean" in r for r in reasons)
    assert any("mycat_zookeeper.cluster_id: must be a name" in r for r in reasons)
    assert any("mycat_zookeeper.root: must be an absolute path ending in '/mycat'" in r
               for r in reasons)
    spec, problems = parse_spec(text + "mycat_zookeeper: {cluster_id: x}\n")
    assert spec is None and any("missing required key 'enabled'" in str(p) for p in problems)


def test_myid_properties_for_a_mycat_node_only():
    spec = _spec()
    text = render_myid(spec, "mycat2")
    assert text is not None
    lines = text.decode().splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "loadZk=true", "zkURL=10.77.0.5:2181,10.77.0.6:2181,10.77.0.7:2181",
        "clusterId=mycat-cluster-1", "myid=mycat2", "clusterSize=3",
        "clusterNodes=mycat1,mycat2,mycat3", "type=server"]
    assert render_myid(spec, "nginx1") is None
    assert render_myid(_spec("mycat_zookeeper: {enabled: false}\n"), "mycat2") is None


def test_agent_gives_each_mycat_node_its_own_myid_file():
    files = {"stackha.yaml": (ROOT / "configs/stackha.yaml").read_bytes(), **_example_files()}
    bundle = Bundle.from_contents(files)
    spec = _spec()
    one = node_files(bundle, spec, "mycat1")["mycat"]
    two = node_files(bundle, spec, "mycat3")["mycat"]
    assert b"myid=mycat1\n" in one["myid.properties"]
    assert b"myid=mycat3\n" in two["myid.properties"]
    assert one["server.xml"] == two["server.xml"] == files["mycat/server.xml"]
    assert "myid.properties" not in node_files(bundle, spec, "nginx1").get("nginx", {})


def test_layout_write_for_disabled_spec_is_nothing():
    write, problems = layout_write_for(_spec("mycat_zookeeper: {enabled: false}\n"),
                                       _example_files())
    assert write is None and problems == []


def test_layout_acls_admit_readers_by_address_without_write_on_configuration():
    from kazoo.security import Permissions, make_digest_acl

    owner = make_digest_acl("coordinator", "pw", all=True)
    acls = layout_acls(owner, ("10.77.0.31",))
    assert acls.read[0] == owner
    (reader,) = acls.read[1:]
    assert (reader.id.scheme, reader.id.id, reader.perms) == ("ip", "10.77.0.31",
                                                               Permissions.READ)
    assert acls.runtime[1].perms & Permissions.DELETE
    assert not acls.command[1].perms & Permissions.DELETE  # delete is the parent's permission


def test_password_from_server_xml():
    server = (ROOT / "configs/mycat/server.xml").read_bytes()
    assert password_from_server_xml(server, "report") == "report_pw"
    assert password_from_server_xml(server, "nobody") is None
    assert password_from_server_xml(b"<not xml", "app") is None


def test_layout_is_complete_for_mycat_1661_with_only_one_sequence_file_published():
    # MyCat 1.6.6.1 logs an exception on every load for each of these missing: all four
    # sequence files under sequences/common and the cache node (text and Gson JSON).
    files = _example_files()
    assert "mycat/sequence_db_conf.properties" not in files
    layout, _ = build_layout(files, NODES)
    assert layout is not None
    paths = layout.paths()
    for base in ("sequence_conf", "sequence_db_conf", "sequence_distributed_conf",
                 "sequence_time_conf"):
        assert f"sequences/common/{base}.properties" in paths
    data = {z.path: z.data for z in layout.znodes}
    assert data["sequences/common/sequence_conf.properties"] == \
        (ROOT / "configs/mycat/sequence_conf.properties").read_bytes()
    assert b"factory.encache=io.mycat.cache.impl.EnchachePooFactory" in \
        data["cache/cacheservice.properties"]
    assert json.loads(data["cache/ehcache.xml"])["defaultCache"]["memoryStoreEvictionPolicy"] \
        == "LRU"
    # The cluster node stays last: MyCat reads the layout once it is there.
    assert paths[-1] == ""
