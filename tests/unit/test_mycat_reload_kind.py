"""reload_kind: which manager reload a change of the MyCat files needs."""

from __future__ import annotations

from stackha.mycat.manager import reload_kind, system_changes

SCHEMA = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE mycat:schema SYSTEM "schema.dtd">
<mycat:schema xmlns:mycat="http://io.mycat/">
    <schema name="shop" checkSQLschema="true" sqlMaxLimit="1000">
        <table name="orders" dataNode="dn$0-2" rule="orders-by-id"/>
    </schema>
    <dataNode name="dn$0-2" dataHost="backend" database="db$0-2"/>
    <dataHost name="backend" balance="0" maxCon="100" minCon="5" dbType="mysql"
              dbDriver="native">
        <heartbeat>select user()</heartbeat>
        <writeHost host="hostM1" url="10.77.0.30:3306" user="mycat" password="pw"/>
    </dataHost>
</mycat:schema>
"""

SERVER = b"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE mycat:server SYSTEM "server.dtd">
<mycat:server xmlns:mycat="http://io.mycat/">
    <user name="app">
        <property name="password">app_pw</property>
        <property name="schemas">shop</property>
    </user>
</mycat:server>
"""

RULE = b"""<?xml version="1.0" encoding="UTF-8"?>
<mycat:rule xmlns:mycat="http://io.mycat/">
    <function name="mod3" class="io.mycat.route.function.PartitionByMod">
        <property name="count">3</property>
    </function>
</mycat:rule>
"""


def _files(**changes: bytes) -> dict[str, bytes]:
    files = {"mycat/schema.xml": SCHEMA, "mycat/server.xml": SERVER, "mycat/rule.xml": RULE,
             "nginx/nginx.conf": b"events {}\n"}
    files.update({f"mycat/{name.replace('_', '.')}": data for name, data in changes.items()})
    return files


def test_nothing_changed() -> None:
    assert reload_kind(_files(), _files()) is None


def test_files_outside_mycat_do_not_count() -> None:
    new = _files()
    new["nginx/nginx.conf"] = b"events { worker_connections 10; }\n"
    assert reload_kind(_files(), new) is None


def test_comments_whitespace_and_attribute_order_do_not_count() -> None:
    reformatted = SCHEMA.replace(
        b'<dataNode name="dn$0-2" dataHost="backend" database="db$0-2"/>',
        b'<!-- moved around -->\n  <dataNode  database="db$0-2"\n name="dn$0-2" '
        b'dataHost="backend" />')
    assert reformatted != SCHEMA
    assert reload_kind(_files(), _files(schema_xml=reformatted)) is None
    assert reload_kind(_files(), _files(server_xml=SERVER.replace(
        b"<user", b"<!-- the app -->\n    <user"))) is None


def test_password_change_needs_config() -> None:
    new = _files(server_xml=SERVER.replace(b"app_pw", b"rotated"))
    assert reload_kind(_files(), new) == "config"


def test_table_or_rule_change_needs_config() -> None:
    tables = SCHEMA.replace(b'<table name="orders"',
                            b'<table name="customers" dataNode="dn0"/>\n<table name="orders"')
    assert reload_kind(_files(), _files(schema_xml=tables)) == "config"
    rule = RULE.replace(b">3<", b">4<")
    assert reload_kind(_files(), _files(rule_xml=rule)) == "config"


def test_other_mycat_file_needs_config() -> None:
    new = _files(sequence_conf_properties=b"GLOBAL.MINID=1\n")
    assert reload_kind(_files(), new) == "config"


def test_data_host_change_needs_config_all() -> None:
    moved = SCHEMA.replace(b"10.77.0.30:3306", b"10.77.0.31:3306")
    assert reload_kind(_files(), _files(schema_xml=moved)) == "config_all"
    heartbeat = SCHEMA.replace(b"select user()", b"select 1")
    assert reload_kind(_files(), _files(schema_xml=heartbeat)) == "config_all"


def test_data_node_change_needs_config_all() -> None:
    more = SCHEMA.replace(b'<dataNode name="dn$0-2"',
                          b'<dataNode name="dn3" dataHost="backend" database="db3"/>\n'
                          b'    <dataNode name="dn$0-2"')
    assert reload_kind(_files(), _files(schema_xml=more)) == "config_all"
    repointed = SCHEMA.replace(b'database="db$0-2"', b'database="shard$0-2"')
    assert reload_kind(_files(), _files(schema_xml=repointed)) == "config_all"


def test_reordered_data_hosts_do_not_count() -> None:
    two = SCHEMA.replace(b"</mycat:schema>",
                         b'<dataHost name="spare" dbType="mysql" dbDriver="native" maxCon="1"'
                         b' minCon="1" balance="0"><heartbeat>select 1</heartbeat>'
                         b'<writeHost host="s" url="10.0.0.9:3306" user="u" password="p"/>'
                         b"</dataHost>\n</mycat:schema>")
    spare_start = two.index(b'<dataHost name="spare"')
    spare = two[spare_start:two.index(b"</mycat:schema>")]
    swapped = two.replace(spare, b"").replace(b'<dataNode name="dn$0-2"',
                                              spare + b'<dataNode name="dn$0-2"')
    assert reload_kind(_files(schema_xml=two), _files(schema_xml=swapped)) is None


def test_schema_xml_added_removed_or_broken_needs_config_all() -> None:
    old = _files()
    without = dict(old)
    del without["mycat/schema.xml"]
    assert reload_kind(without, old) == "config_all"
    assert reload_kind(old, without) == "config_all"
    assert reload_kind(old, _files(schema_xml=b"<mycat:schema")) == "config_all"


def test_other_prefix() -> None:
    old = {"conf/server.xml": SERVER}
    new = {"conf/server.xml": SERVER.replace(b"app_pw", b"x")}
    assert reload_kind(old, new, prefix="conf/") == "config"
    assert reload_kind(old, new) is None


def test_write_host_order_counts() -> None:
    two = SCHEMA.replace(
        b'password="pw"/>',
        b'password="pw"/>\n<writeHost host="hostM2" url="10.77.0.31:3306" user="mycat" '
        b'password="pw"/>')
    swapped = two.replace(b'host="hostM1" url="10.77.0.30:3306"', b"PLACEHOLDER").replace(
        b'host="hostM2" url="10.77.0.31:3306"', b'host="hostM1" url="10.77.0.30:3306"').replace(
        b"PLACEHOLDER", b'host="hostM2" url="10.77.0.31:3306"')
    # The first writeHost is the one MyCat writes to.
    assert reload_kind(_files(schema_xml=two), _files(schema_xml=swapped)) == "config_all"


def _with_system(*properties: tuple[str, str]) -> bytes:
    lines = "".join(f'        <property name="{n}">{v}</property>\n' for n, v in properties)
    return SERVER.replace(b'<mycat:server xmlns:mycat="http://io.mycat/">\n',
                          b'<mycat:server xmlns:mycat="http://io.mycat/">\n    <system>\n'
                          + lines.encode() + b"    </system>\n")


def test_system_properties_that_no_reload_takes_are_named() -> None:
    # MyCat reads <system> when it starts: a reload of either kind leaves it as it was.
    old = _files(server_xml=_with_system(("serverPort", "8066")))
    new = _files(server_xml=_with_system(("serverPort", "8066"), ("useGlobleTableCheck", "0")))
    assert system_changes(old, new) == ("useGlobleTableCheck",)
    moved = _files(server_xml=_with_system(("serverPort", " 8067 ")))
    assert system_changes(old, moved) == ("serverPort",)
    assert system_changes(new, old) == ("useGlobleTableCheck",)
    # Users, formatting and files that are not there are no system change.
    rotated = _files(server_xml=_with_system(("serverPort", "8066")).replace(b"app_pw", b"x"))
    assert system_changes(old, rotated) == ()
    assert system_changes({}, new) == ()
    assert system_changes(old, _files(server_xml=b"<not xml")) == ()
