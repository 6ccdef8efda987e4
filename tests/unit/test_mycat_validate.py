"""The MyCat 1.6 validator: the example configs pass, and every rule names file, element and
reason when broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackha.model.problems import ERROR, WARNING, Problem, errors, warnings
from stackha.mycat.validate import (
    MAX_EXPANDED_NAMES,
    DbInstance,
    MycatModel,
    expand_names,
    validate_mycat,
    validate_mycat_dir,
)
from tests.conftest import EXAMPLE_CONFIGS

EXAMPLE_DIR = EXAMPLE_CONFIGS / "mycat"
SCHEMA, SERVER, RULE = "mycat/schema.xml", "mycat/server.xml", "mycat/rule.xml"


def example_files() -> dict[str, bytes]:
    return {f"mycat/{p.name}": p.read_bytes() for p in EXAMPLE_DIR.iterdir() if p.is_file()}


def mutated(path: str, edits: list[tuple[str, str]]) -> dict[str, bytes]:
    """The example files with ``edits`` applied to ``path``; each old text must be present,
    so a change to the examples cannot silently turn a case into a no-op."""
    files = example_files()
    text = files[path].decode()
    for old, new in edits:
        assert old in text, f"{old!r} is not in {path}"
        text = text.replace(old, new)
    files[path] = text.encode()
    return files


def shown(problems: list[Problem]) -> str:
    return "\n".join(str(p) for p in problems) or "(no problems)"


def find(problems: list[Problem], path: str, expected: tuple[str, ...],
         severity: str = ERROR) -> Problem | None:
    return next((p for p in problems if p.file == path and p.severity == severity
                 and all(part in str(p) for part in expected)), None)


# ----------------------------------------------------------------------------------------------
# The example


def test_example_configs_are_valid_without_warnings():
    model, problems = validate_mycat_dir(EXAMPLE_DIR)
    assert problems == [], shown(problems)
    assert isinstance(model, MycatModel)
    assert model.schemas["shop"] == ("region", "orders", "order_items", "customers")
    assert model.table_data_nodes["shop"]["orders"] == ("dn0", "dn1", "dn2")
    assert model.table_data_nodes["shop"]["order_items"] == ("dn0", "dn1", "dn2")
    assert model.table_data_nodes["shop"]["customers"] == ("dn0",)
    assert dict(model.data_nodes) == {"dn0": ("backend", "db0"), "dn1": ("backend", "db1"),
                                      "dn2": ("backend", "db2")}
    assert model.data_hosts["backend"] == (
        DbInstance("hostM1", "10.77.0.30:3306", "mycat", "mycat_backend_pw"),)
    assert model.data_host_settings["backend"]["heartbeat"] == "select user()"
    assert model.data_host_settings["backend"]["dbDriver"] == "native"
    assert model.users["app"]["password"] == "app_pw"
    assert model.users["report"]["readOnly"] == "true"
    assert model.user_schemas("report") == ("shop",)
    assert model.table_rules["orders-by-id"] == ("id", "mod3")
    assert model.functions["mod3"] == ("io.mycat.route.function.PartitionByMod", {"count": "3"})
    assert model.system["serverPort"] == "8066" and model.system["managerPort"] == "9066"
    assert not model.has_firewall and not model.has_privileges


def test_model_is_read_only():
    model, _ = validate_mycat(example_files())
    assert model is not None
    with pytest.raises(TypeError):
        model.users["app"]["password"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        model.schemas["other"] = ()  # type: ignore[index]
    with pytest.raises(AttributeError):
        model.has_firewall = True  # type: ignore[misc]


def test_other_files_are_ignored_and_prefix_is_honoured():
    files = {f"conf/{p.removeprefix('mycat/')}": c for p, c in example_files().items()}
    files["conf/myid.properties"] = b"loadZk=false\n"
    files["conf/log4j2.xml"] = b"<not mycat"
    model, problems = validate_mycat(files, prefix="conf/")
    assert model is not None and problems == [], shown(problems)


# ----------------------------------------------------------------------------------------------
# One case per rule: (file, edits, parts the one-line problem must contain)

HEARTBEAT = "<heartbeat>select user()</heartbeat>"
WRITE_HOST = ('<writeHost host="hostM1" url="10.77.0.30:3306" user="mycat" '
              'password="mycat_backend_pw"/>')
READ_HOST = ('<readHost host="hostS1" url="10.77.0.31:3306" user="mycat" password="pw"'
             ' weight="1"/>')
WITH_READ_HOST = WRITE_HOST[:-2] + ">" + READ_HOST + "</writeHost>"
DATA_NODE = '<dataNode name="dn$0-2" dataHost="backend" database="db$0-2"/>'
ORDERS = '<table name="orders" dataNode="dn$0-2" rule="orders-by-id" primaryKey="id">'
CHILD = '<childTable name="order_items" joinKey="order_id" parentKey="id" primaryKey="id"/>'
CUSTOMERS = '<table name="customers" dataNode="dn0" primaryKey="id"/>'
REGION = '<table name="region" dataNode="dn$0-2" type="global" primaryKey="id"/>'
SCHEMA_OPEN = '<schema name="shop" checkSQLschema="true" sqlMaxLimit="1000">'
DATA_HOST_OPEN = '<dataHost name="backend" balance="0" maxCon="100" minCon="5" writeType="0"'
APP = '<user name="app">'
APP_PASSWORD = '<property name="password">app_pw</property>'
APP_SCHEMAS = '<property name="schemas">shop</property>\n        <property name="defaultSchema">'
REPORT_END = '<property name="readOnly">true</property>\n    </user>'
SYSTEM = "<system>"
TABLE_RULE = '<tableRule name="orders-by-id">'
COLUMNS = "<columns>id</columns>"
ALGORITHM = "<algorithm>mod3</algorithm>"
FUNCTION = '<function name="mod3" class="io.mycat.route.function.PartitionByMod">'
COUNT = '<property name="count">3</property>'
FIREWALL = ('<firewall><whitehost><host host="10.77.0.40" user="app"/></whitehost>'
            '<blacklist check="true"/></firewall>')

CASES = [
    # --- well-formedness and document shape (all three files share this code) ---
    pytest.param(SCHEMA, [("</schema>", "</schemas>")],
                 ("mycat/schema.xml: line 18", "not well-formed XML", "mismatched tag"),
                 id="not-well-formed"),
    pytest.param(RULE, [("mycat:rule", "rule")],
                 ("line 4: rule", "root element must be <mycat:rule>"), id="root-element"),
    pytest.param(SERVER, [('<!DOCTYPE mycat:server SYSTEM "server.dtd">\n', "")],
                 ("line 3", "missing <!DOCTYPE mycat:server"), id="doctype-missing"),
    pytest.param(SCHEMA, [("<!DOCTYPE mycat:schema", "<!DOCTYPE mycat:server")],
                 ("line 2", "DOCTYPE names <mycat:server>"), id="doctype-root-mismatch"),
    pytest.param(RULE, [('<!DOCTYPE mycat:rule SYSTEM "rule.dtd">', "<!DOCTYPE mycat:rule>")],
                 ("line 2", "no SYSTEM", "grammar"), id="doctype-without-dtd"),
    pytest.param(SCHEMA, [('xmlns:mycat="http://io.mycat/"', 'xmlns:mycat="http://org.opencloudb/"')],
                 ("mycat:schema", "attribute 'xmlns:mycat'", "http://io.mycat/"),
                 id="namespace-value"),
    pytest.param(SCHEMA, [('<mycat:schema xmlns', '<mycat:schema version="1.6" xmlns')],
                 ("mycat:schema", "unknown attribute 'version'"), id="root-unknown-attribute"),
    # --- schema.xml grammar ---
    pytest.param(SCHEMA, [(DATA_NODE, DATA_NODE + '\n<dataSource name="x"/>')],
                 ("dataSource[name=x]", "unknown element <dataSource>", "allowed"),
                 id="schema-root-unknown-child"),
    pytest.param(SCHEMA, [(DATA_NODE, ""), ("</mycat:schema>", DATA_NODE + "</mycat:schema>")],
                 ("dataNode[name=dn$0-2]", "<dataNode> must come before <dataHost>"),
                 id="schema-root-order"),
    pytest.param(SCHEMA, [(SCHEMA_OPEN, SCHEMA_OPEN.replace('name="shop" ', ""))],
                 ("line 9: schema", "missing required attribute 'name'"),
                 id="schema-name-required"),
    pytest.param(SCHEMA, [('name="shop"', 'name="my shop"')],
                 ("schema[name=my shop]", "attribute 'name'", "single name token"),
                 id="schema-name-token"),
    pytest.param(SCHEMA, [('checkSQLschema="true"', 'checkSQLschema="yes"')],
                 ("schema[name=shop]", "checkSQLschema", "true or false"),
                 id="schema-checksqlschema-boolean"),
    pytest.param(SCHEMA, [('sqlMaxLimit="1000"', 'sqlMaxLimit="lots"')],
                 ("schema[name=shop]", "sqlMaxLimit", "must be an integer"),
                 id="schema-sqlmaxlimit-integer"),
    pytest.param(SCHEMA, [(SCHEMA_OPEN, SCHEMA_OPEN[:-1] + ' readOnly="true">')],
                 ("schema[name=shop]", "unknown attribute 'readOnly'"),
                 id="schema-unknown-attribute"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS + '<view name="v"/>')],
                 ("schema[name=shop]/view[name=v]", "unknown element <view>"),
                 id="schema-unknown-child"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS + "stray words")],
                 ("schema[name=shop]", "text 'stray words' is not allowed"),
                 id="element-only-text"),
    pytest.param(SCHEMA, [(CUSTOMERS, '<table name="customers" primaryKey="id"/>')],
                 ("table[name=customers]", "missing required attribute 'dataNode'"),
                 id="table-datanode-required"),
    pytest.param(SCHEMA, [(CUSTOMERS, '<table dataNode="dn0"/>')],
                 ("schema[name=shop]/table", "missing required attribute 'name'"),
                 id="table-name-required"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS[:-2] + ' shardBy="id"/>')],
                 ("table[name=customers]", "unknown attribute 'shardBy'"),
                 id="table-unknown-attribute"),
    pytest.param(SCHEMA, [('type="global"', 'type="globl"')],
                 ("table[name=region]", "attribute 'type'", "global, normal"),
                 id="table-type-choice"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS[:-2] + ' autoIncrement="1"/>')],
                 ("table[name=customers]", "autoIncrement", "true or false"),
                 id="table-boolean-attribute"),
    pytest.param(SCHEMA, [(CHILD, CHILD + '<column name="id"/>')],
                 ("table[name=orders]/column[name=id]", "unknown element <column>",
                  "allowed: childTable"), id="table-unknown-child"),
    pytest.param(SCHEMA, [(CHILD, CHILD.replace('joinKey="order_id" ', ""))],
                 ("childTable[name=order_items]", "missing required attribute 'joinKey'"),
                 id="childtable-joinkey-required"),
    pytest.param(SCHEMA, [(CHILD, CHILD.replace('parentKey="id" ', ""))],
                 ("childTable[name=order_items]", "missing required attribute 'parentKey'"),
                 id="childtable-parentkey-required"),
    pytest.param(SCHEMA, [(CHILD, CHILD[:-2] + ' rule="orders-by-id"/>')],
                 ("childTable[name=order_items]", "unknown attribute 'rule'"),
                 id="childtable-unknown-attribute"),
    pytest.param(SCHEMA, [(CHILD, CHILD[:-2] + '><table name="x" dataNode="dn0"/></childTable>')],
                 ("childTable[name=order_items]/table[name=x]", "unknown element <table>"),
                 id="childtable-unknown-child"),
    pytest.param(SCHEMA, [(DATA_NODE, '<dataNode name="dn$0-2" dataHost="backend"/>')],
                 ("dataNode[name=dn$0-2]", "missing required attribute 'database'"),
                 id="datanode-database-required"),
    pytest.param(SCHEMA, [(DATA_NODE, DATA_NODE.replace('dataHost="backend" ', ""))],
                 ("dataNode[name=dn$0-2]", "missing required attribute 'dataHost'"),
                 id="datanode-datahost-required"),
    pytest.param(SCHEMA, [(DATA_NODE, DATA_NODE[:-2] + ' weight="1"/>')],
                 ("dataNode[name=dn$0-2]", "unknown attribute 'weight'"),
                 id="datanode-unknown-attribute"),
    pytest.param(SCHEMA, [(DATA_NODE, DATA_NODE[:-2] + '><property name="x">1</property>'
                                                     '</dataNode>')],
                 ("dataNode[name=dn$0-2]/property[name=x]", "must be empty"),
                 id="datanode-no-children"),
    pytest.param(SCHEMA, [('database="db$0-2"', 'database="db$0-1"')],
                 ("dataNode[name=dn$0-2]", "expands to 3 dataNode(s)", "1 x 2 = 2",
                  "counts must match"), id="datanode-range-count"),
    pytest.param(SCHEMA, [('name="dn$0-2"', 'name="dn$2-0"')],
                 ("dataNode[name=dn$2-0]", "attribute 'name'", "ends before it starts"),
                 id="datanode-range-reversed"),
    pytest.param(SCHEMA, [('database="db$0-2"', 'database="db$a-c"')],
                 ("dataNode[name=dn$0-2]", "attribute 'database'", "prefix$start-end"),
                 id="datanode-range-malformed"),
    pytest.param(SCHEMA, [(DATA_HOST_OPEN, DATA_HOST_OPEN.replace('balance="0" ', ""))],
                 ("dataHost[name=backend]", "missing required attribute 'balance'"),
                 id="datahost-balance-required"),
    pytest.param(SCHEMA, [('dbDriver="native"', "")],
                 ("dataHost[name=backend]", "missing required attribute 'dbDriver'"),
                 id="datahost-dbdriver-required"),
    pytest.param(SCHEMA, [('dbType="mysql" ', "")],
                 ("dataHost[name=backend]", "missing required attribute 'dbType'"),
                 id="datahost-dbtype-required"),
    pytest.param(SCHEMA, [('maxCon="100"', 'maxCon="100.5"')],
                 ("dataHost[name=backend]", "attribute 'maxCon' must be an integer"),
                 id="datahost-maxcon-integer"),
    pytest.param(SCHEMA, [('minCon="5"', 'minCon=""')],
                 ("dataHost[name=backend]", "attribute 'minCon' must not be empty"),
                 id="datahost-mincon-empty"),
    pytest.param(SCHEMA, [('balance="0"', 'balance="none"')],
                 ("dataHost[name=backend]", "attribute 'balance' must be an integer"),
                 id="datahost-balance-integer"),
    pytest.param(SCHEMA, [('switchType="1"', 'switchType="auto"')],
                 ("dataHost[name=backend]", "attribute 'switchType' must be an integer"),
                 id="datahost-switchtype-integer"),
    pytest.param(SCHEMA, [(DATA_HOST_OPEN, DATA_HOST_OPEN + ' maxIdle="3"')],
                 ("dataHost[name=backend]", "unknown attribute 'maxIdle'"),
                 id="datahost-unknown-attribute"),
    pytest.param(SCHEMA, [('dbDriver="native"', 'dbDriver="odbc"')],
                 ("dataHost[name=backend]", "dbDriver must be native or jdbc"),
                 id="datahost-dbdriver-value"),
    pytest.param(SCHEMA, [('dbType="mysql"', 'dbType="oracle"')],
                 ("dataHost[name=backend]", "dbDriver native", "use dbDriver jdbc"),
                 id="datahost-native-needs-mysql"),
    pytest.param(SCHEMA, [(HEARTBEAT, "")],
                 ("dataHost[name=backend]", "missing <heartbeat>"), id="heartbeat-required"),
    pytest.param(SCHEMA, [(HEARTBEAT, ""), (WRITE_HOST, WRITE_HOST + HEARTBEAT)],
                 ("dataHost[name=backend]/heartbeat", "<heartbeat> must come before <writeHost>"),
                 id="heartbeat-first"),
    pytest.param(SCHEMA, [(HEARTBEAT, HEARTBEAT * 2)],
                 ("dataHost[name=backend]/heartbeat", "only one <heartbeat>"),
                 id="heartbeat-once"),
    pytest.param(SCHEMA, [(HEARTBEAT, "<heartbeat><sql>select 1</sql></heartbeat>")],
                 ("heartbeat/sql", "not allowed inside <heartbeat>", "text only"),
                 id="heartbeat-text-only"),
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST + "<connectionInitSql>set x=1"
                                                    "</connectionInitSql>")],
                 ("connectionInitSql", "<connectionInitSql> must come before <writeHost>"),
                 id="connectioninitsql-order"),
    pytest.param(SCHEMA, [(HEARTBEAT, HEARTBEAT
                           + "<connectionInitSql>set a=1</connectionInitSql>"
                           + "<connectionInitSql>set b=1</connectionInitSql>")],
                 ("connectionInitSql", "only one <connectionInitSql>"),
                 id="connectioninitsql-once"),
    pytest.param(SCHEMA, [(WRITE_HOST, "")],
                 ("dataHost[name=backend]", "needs at least one <writeHost>"),
                 id="writehost-required"),
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST.replace(' password="mycat_backend_pw"', ""))],
                 ("writeHost[host=hostM1]", "missing required attribute 'password'"),
                 id="writehost-password-required"),
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST.replace('url="10.77.0.30:3306" ', ""))],
                 ("writeHost[host=hostM1]", "missing required attribute 'url'"),
                 id="writehost-url-required"),
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST[:-2] + ' port="3306"/>')],
                 ("dataHost[name=backend]/writeHost[host=hostM1]", "unknown attribute 'port'"),
                 id="writehost-unknown-attribute"),
    # 1.6.6.1's schema.dtd declares weight on readHost only (the real MyCat refuses it here).
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST[:-2] + ' weight="1"/>')],
                 ("writeHost[host=hostM1]", "unknown attribute 'weight' on <writeHost>"),
                 id="writehost-weight-undeclared"),
    pytest.param(SCHEMA, [('url="10.77.0.30:3306"', 'url="10.77.0.30"')],
                 ("writeHost[host=hostM1]", "must be host:port for dbDriver native"),
                 id="writehost-native-url"),
    pytest.param(SCHEMA, [(WRITE_HOST, WRITE_HOST[:-2] + "><writeHost host='x' url='a:1' "
                                                         "user='u' password=''/></writeHost>")],
                 ("writeHost[host=x]", "unknown element <writeHost>", "allowed: readHost"),
                 id="writehost-children"),
    pytest.param(SCHEMA, [(WRITE_HOST, WITH_READ_HOST.replace(' user="mycat" password="pw"',
                                                              ' password="pw"'))],
                 ("writeHost[host=hostM1]/readHost[host=hostS1]",
                  "missing required attribute 'user'"), id="readhost-user-required"),
    pytest.param(SCHEMA, [(WRITE_HOST, WITH_READ_HOST.replace('weight="1"', 'weight="x"'))],
                 ("readHost[host=hostS1]", "attribute 'weight' must be an integer"),
                 id="readhost-weight-integer"),
    pytest.param(SCHEMA, [(WRITE_HOST, WITH_READ_HOST.replace('weight="1"', 'slave="1"'))],
                 ("readHost[host=hostS1]", "unknown attribute 'slave'"),
                 id="readhost-unknown-attribute"),
    # --- schema.xml names and references ---
    pytest.param(SCHEMA, [("</schema>", '</schema><schema name="shop" dataNode="dn0"/>')],
                 ("schema[name=shop]", "duplicate schema name 'shop'"), id="duplicate-schema"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS + CUSTOMERS)],
                 ("table[name=customers]", "duplicate table name 'customers'"),
                 id="duplicate-table"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS + CUSTOMERS.replace("customers", "REGION"))],
                 ("table[name=REGION]", "duplicate table name 'REGION'", "line 11"),
                 id="duplicate-table-ignores-case"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS.replace("customers", "order_items"))],
                 ("table[name=order_items]", "duplicate table name 'order_items'"),
                 id="duplicate-table-with-childtable"),
    pytest.param(SCHEMA, [(DATA_NODE, DATA_NODE + '<dataNode name="dn1" dataHost="backend" '
                                                  'database="db9"/>')],
                 ("dataNode[name=dn1]", "duplicate dataNode name 'dn1'"),
                 id="duplicate-datanode"),
    pytest.param(SCHEMA, [("</dataHost>", "</dataHost>" + DATA_HOST_OPEN + ' dbType="mysql" '
                           'dbDriver="native">' + HEARTBEAT + WRITE_HOST + "</dataHost>")],
                 ("dataHost[name=backend]", "duplicate dataHost name 'backend'"),
                 id="duplicate-datahost"),
    pytest.param(SCHEMA, [(REGION, REGION.replace("dn$0-2", "dn$0-3"))],
                 ("table[name=region]", "dataNode 'dn3' is not defined"),
                 id="table-datanode-exists"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS.replace("dn0", "dn0,dn7"))],
                 ("table[name=customers]", "dataNode 'dn7' is not defined"),
                 id="table-datanode-list-exists"),
    pytest.param(SCHEMA, [(SCHEMA_OPEN, SCHEMA_OPEN[:-1] + ' dataNode="dn9">')],
                 ("schema[name=shop]", "dataNode 'dn9' is not defined"),
                 id="schema-datanode-exists"),
    # No MyCat 1.6 DTD declares randomDataNode: the real 1.6.6.1 refuses the file.
    pytest.param(SCHEMA, [(SCHEMA_OPEN, SCHEMA_OPEN[:-1] + ' randomDataNode="dn$1-3">')],
                 ("schema[name=shop]", "unknown attribute 'randomDataNode'"),
                 id="schema-randomdatanode-undeclared"),
    # MyCat 1.6.6.1 stops with ClassNotFoundException (it was a warning until the fidelity
    # suite met the real MyCat).
    pytest.param(RULE, [("PartitionByMod", "PartitionByModulo")],
                 ("function[name=mod3]", "not a partition function of MyCat 1.6"),
                 id="function-class-unknown"),
    pytest.param(SCHEMA, [('dataHost="backend"', 'dataHost="backend2"')],
                 ("dataNode[name=dn$0-2]", "dataHost 'backend2' is not defined"),
                 id="datanode-datahost-exists"),
    pytest.param(SCHEMA, [('rule="orders-by-id"', 'rule="orders-by-date"')],
                 ("table[name=orders]", "rule 'orders-by-date' is not a tableRule"),
                 id="table-rule-exists"),
    pytest.param(SCHEMA, [(CUSTOMERS, CUSTOMERS[:-2] + ' ruleRequired="true"/>')],
                 ("table[name=customers]", "ruleRequired is true but no rule"),
                 id="rule-required"),
    pytest.param(SCHEMA, [(ORDERS, ORDERS.replace("dn$0-2", "dn$0-1"))],
                 ("table[name=orders]", "routes to 3 partitions", "only 2 dataNode(s)"),
                 id="partitions-exceed-datanodes"),
    pytest.param(SCHEMA, [(SCHEMA_OPEN, '<schema name="empty"/>' + SCHEMA_OPEN)],
                 ("schema[name=empty]", "without tables needs a dataNode"),
                 id="schema-without-tables"),
    # --- server.xml ---
    pytest.param(SERVER, [("<system>", "<quarantine/><system>")],
                 ("line 6: quarantine", "replaced by <firewall>"), id="server-quarantine"),
    pytest.param(SERVER, [("</mycat:server>", "<mycat><x/></mycat></mycat:server>")],
                 ("line 34: mycat", "unknown element <mycat>", "allowed: system, firewall"),
                 id="server-unknown-child"),
    pytest.param(SERVER, [("</mycat:server>", "<system/></mycat:server>")],
                 ("system", "<system> must come before <user>"), id="server-order"),
    pytest.param(SERVER, [("<system>", "<system/><system>")],
                 ("system", "only one <system>"), id="system-once"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL * 2)],
                 ("firewall", "only one <firewall>"), id="firewall-once"),
    pytest.param(SERVER, [("<user", "<!--user"), ("</user>", "</user-->")],
                 ("line 4: mycat:server", "needs at least one <user>"), id="server-user-required"),
    pytest.param(SERVER, [('<user name="report">', '<user name="report" class="x">')],
                 ("user[name=report]", "unknown attribute 'class'"),
                 id="user-unknown-attribute"),
    pytest.param(SERVER, [(APP, "<user>")],
                 ("line 21: user", "missing required attribute 'name'"),
                 id="user-name-required"),
    pytest.param(SERVER, [(APP, '<user name="app">\n<property>x</property>')],
                 ("user[name=app]/property", "missing required attribute 'name'"),
                 id="property-name-required"),
    pytest.param(SERVER, [(APP_PASSWORD, '<property name="password"><b>app_pw</b></property>')],
                 ("property[name=password]/b", "not allowed inside <property>"),
                 id="property-text-only"),
    pytest.param(SERVER, [(APP_PASSWORD, "")],
                 ("user[name=app]", "user has no password property"),
                 id="user-password-required"),
    pytest.param(SERVER, [(APP_PASSWORD, APP_PASSWORD + '<property name="passwd">x</property>')],
                 ("user[name=app]/property[name=passwd]", "unknown user property 'passwd'"),
                 id="user-unknown-property"),
    pytest.param(SERVER, [('<property name="schemas">shop</property>\n        <property '
                           'name="defaultSchema">', '<property name="schemas">shop,shop2'
                           '</property><property name="defaultSchema">')],
                 ("user[name=app]/property[name=schemas]", "schema 'shop2' is not defined"),
                 id="user-schemas-exist"),
    pytest.param(SERVER, [('<property name="defaultSchema">shop</property>',
                           '<property name="defaultSchema">sales</property>')],
                 ("property[name=defaultSchema]", "defaultSchema 'sales' is not one of"),
                 id="user-defaultschema-in-schemas"),
    pytest.param(SERVER, [('<property name="readOnly">true</property>',
                           '<property name="readOnly">yes</property>')],
                 ("user[name=report]/property[name=readOnly]", "must be true or false"),
                 id="user-readonly-boolean"),
    pytest.param(SERVER, [('<user name="report">', '<user name="app">')],
                 ("user[name=app]", "duplicate user name 'app'"), id="duplicate-user"),
    pytest.param(SERVER, [(REPORT_END, '<property name="readOnly">true</property>'
                           '<privileges check="true"><schema name="shop" dml="0110">'
                           '<table name="orders" dml="01"/></schema></privileges></user>')],
                 ("table[name=orders]", "dml must be four 0/1 flags"), id="privileges-dml"),
    pytest.param(SERVER, [(REPORT_END, '<property name="readOnly">true</property>'
                           '<privileges><schema name="shop" dml="0110"/></privileges></user>')],
                 ("privileges", "missing required attribute 'check'"),
                 id="privileges-check-required"),
    pytest.param(SERVER, [(REPORT_END, '<privileges check="true"/>'
                           '<property name="readOnly">true</property></user>')],
                 ("user[name=report]/property[name=readOnly]",
                  "<property> must come before <privileges>"), id="privileges-after-properties"),
    pytest.param(SERVER, [(REPORT_END, '<property name="readOnly">true</property>'
                           '<privileges check="true"><table name="t" dml="0000"/>'
                           '</privileges></user>')],
                 ("privileges/table[name=t]", "unknown element <table>", "allowed: schema"),
                 id="privileges-children"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL.replace(' user="app"', ""))],
                 ("host[host=10.77.0.40]", "missing required attribute 'user'"),
                 id="firewall-host-user-required"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL.replace('"app"', '"app,ops"'))],
                 ("host[host=10.77.0.40]", "user 'ops' is not defined"),
                 id="firewall-host-user-exists"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL.replace('"app"', '"report"')),
                          ('<property name="schemas">shop</property>\n        <property '
                           'name="readOnly">', '<property name="readOnly">')],
                 ("host[host=10.77.0.40]", "user 'report' has no schemas"),
                 id="firewall-host-user-needs-schemas"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL.replace(' check="true"', ""))],
                 ("blacklist", "missing required attribute 'check'"),
                 id="firewall-blacklist-check"),
    pytest.param(SERVER, [("</system>", "</system>" + FIREWALL.replace("<whitehost>",
                                                                       "<whitelist/><whitehost>"))],
                 ("whitelist", "unknown element <whitelist>", "allowed: whitehost, blacklist"),
                 id="firewall-children"),
    pytest.param(SERVER, [("</mycat:server>", '<cluster><node name="m1"/></cluster>'
                                              "</mycat:server>")],
                 ("node[name=m1]", "needs at least one <property>"), id="cluster-node"),
    pytest.param(SERVER, [('<property name="serverPort">8066</property>',
                           '<property name="serverPort">80 66</property>')],
                 ("system/property[name=serverPort]", "must be an integer"),
                 id="system-integer-property"),
    pytest.param(SERVER, [('<property name="managerPort">9066</property>',
                           '<property name="managerPort">8066</property>')],
                 ("property[name=managerPort]", "managerPort equals serverPort"),
                 id="system-port-clash"),
    pytest.param(SERVER, [(SYSTEM, "<system>text")],
                 ("line 6: system", "text 'text' is not allowed"), id="system-text"),
    # --- rule.xml ---
    pytest.param(RULE, [("</mycat:rule>", '<rule name="x"/></mycat:rule>')],
                 ("rule[name=x]", "unknown element <rule> inside <mycat:rule>"),
                 id="rule-root-unknown-child"),
    pytest.param(RULE, [("</mycat:rule>", '<tableRule name="late"><rule><columns>id</columns>'
                         "<algorithm>mod3</algorithm></rule></tableRule></mycat:rule>")],
                 ("tableRule[name=late]", "<tableRule> must come before <function>"),
                 id="rule-root-order"),
    pytest.param(RULE, [(TABLE_RULE, "<tableRule>")],
                 ("line 7: tableRule", "missing required attribute 'name'"),
                 id="tablerule-name-required"),
    pytest.param(RULE, [(TABLE_RULE, '<tableRule name="orders-by-id" type="x">')],
                 ("tableRule[name=orders-by-id]", "unknown attribute 'type'"),
                 id="tablerule-unknown-attribute"),
    pytest.param(RULE, [("</rule>\n    </tableRule>\n\n    <!-- Spare",
                         "</rule><rule><columns>x</columns><algorithm>mod3</algorithm></rule>"
                         "\n    </tableRule>\n\n    <!-- Spare")],
                 ("tableRule[name=orders-by-id]/rule", "only one <rule>"), id="tablerule-one-rule"),
    pytest.param(RULE, [('<tableRule name="by-customer-id">', '<tableRule name="by-customer-id">'
                         '<columns>id</columns>')],
                 ("tableRule[name=by-customer-id]/columns", "unknown element <columns>"),
                 id="tablerule-children"),
    pytest.param(RULE, [(ALGORITHM, "")],
                 ("tableRule[name=orders-by-id]/rule", "missing <algorithm>"),
                 id="rule-algorithm-required"),
    pytest.param(RULE, [(COLUMNS, "")],
                 ("tableRule[name=orders-by-id]/rule", "missing <columns>"),
                 id="rule-columns-required"),
    pytest.param(RULE, [(COLUMNS, ""), (ALGORITHM, ALGORITHM + COLUMNS)],
                 ("rule/columns", "<columns> must come before <algorithm>"), id="rule-order"),
    pytest.param(RULE, [(COLUMNS, "<columns> </columns>")],
                 ("tableRule[name=orders-by-id]/rule/columns", "columns is empty"),
                 id="columns-empty"),
    pytest.param(RULE, [(COLUMNS, "<columns>id,created</columns>")],
                 ("columns", "must name one column"), id="columns-single"),
    pytest.param(RULE, [(ALGORITHM, "<algorithm></algorithm>")],
                 ("tableRule[name=orders-by-id]/rule/algorithm", "algorithm is empty"),
                 id="algorithm-empty"),
    pytest.param(RULE, [(ALGORITHM, "<algorithm>mod4</algorithm>")],
                 ("tableRule[name=orders-by-id]/rule/algorithm",
                  "algorithm 'mod4' is not a defined"),
                 id="algorithm-function-exists"),
    pytest.param(RULE, [('<tableRule name="by-customer-id">', '<tableRule name="orders-by-id">')],
                 ("tableRule[name=orders-by-id]", "duplicate tableRule name 'orders-by-id'"),
                 id="duplicate-tablerule"),
    pytest.param(RULE, [(FUNCTION, '<function name="mod3">')],
                 ("function[name=mod3]", "missing required attribute 'class'"),
                 id="function-class-required"),
    pytest.param(RULE, [(FUNCTION, '<function class="io.mycat.route.function.PartitionByMod">')],
                 ("line 22: function", "missing required attribute 'name'"),
                 id="function-name-required"),
    pytest.param(RULE, [(COUNT, COUNT + "<count>3</count>")],
                 ("function[name=mod3]/count", "unknown element <count>", "allowed: property"),
                 id="function-children"),
    pytest.param(RULE, [(COUNT, '<property>3</property>')],
                 ("function[name=mod3]/property", "missing required attribute 'name'"),
                 id="function-property-name"),
    pytest.param(RULE, [("</function>", "</function>" + FUNCTION + COUNT + "</function>")],
                 ("function[name=mod3]", "duplicate function name 'mod3'"),
                 id="duplicate-function"),
    pytest.param(RULE, [("io.mycat.route.function.PartitionByMod",
                         "org.opencloudb.route.function.PartitionByMod")],
                 ("function[name=mod3]", "from MyCat 1.5", "io.mycat.route.function."),
                 id="function-class-package"),
    pytest.param(RULE, [(COUNT, '<property name="count">three</property>')],
                 ("function[name=mod3]/property[name=count]", "needs property count"),
                 id="function-mod-count"),
]


@pytest.mark.parametrize(("path", "edits", "expected"), CASES)
def test_each_rule_is_reported(path: str, edits: list[tuple[str, str]],
                               expected: tuple[str, ...]):
    _, problems = validate_mycat(mutated(path, edits))
    assert find(problems, path, expected), (
        f"expected an error in {path} containing {expected}, got:\n{shown(problems)}")
    assert all("\n" not in str(p) for p in problems)


WARNING_CASES = [
    pytest.param(SCHEMA, [('rule="orders-by-id" ', "")],
                 ("table[name=orders]", "sharded over 3 dataNodes without a rule"),
                 id="sharded-without-rule"),
    pytest.param(RULE, [(COUNT, '<property name="count">2</property>')],
                 ("mycat/schema.xml", "table[name=orders]", "routes to 2 partitions",
                  "1 of 3 dataNodes stay unused"), id="partitions-fewer-than-datanodes"),
    pytest.param(SCHEMA, [(HEARTBEAT, "<heartbeat> </heartbeat>")],
                 ("dataHost[name=backend]/heartbeat", "heartbeat is empty"),
                 id="heartbeat-empty"),
    pytest.param(SERVER, [(APP_PASSWORD, APP_PASSWORD + APP_PASSWORD)],
                 ("user[name=app]/property[name=password]", "set twice"),
                 id="property-twice"),
]


@pytest.mark.parametrize(("path", "edits", "expected"), WARNING_CASES)
def test_doubtful_things_are_warnings(path: str, edits: list[tuple[str, str]],
                                      expected: tuple[str, ...]):
    _, problems = validate_mycat(mutated(path, edits))
    shown_in = expected[0] if expected[0].startswith("mycat/") else path
    assert find(problems, shown_in, expected, WARNING), shown(problems)
    assert not errors(problems), shown(problems)


# ----------------------------------------------------------------------------------------------
# Ranges


@pytest.mark.parametrize(("spec", "names"), [
    ("dn$0-2", ("dn0", "dn1", "dn2")),
    ("dn1,dn2", ("dn1", "dn2")),
    ("dn1, dn$3-4 ,x", ("dn1", "dn3", "dn4", "x")),
    ("h$7-7", ("h7",)),
    ("db", ("db",)),
])
def test_expand_names(spec: str, names: tuple[str, ...]):
    assert expand_names(spec) == names


@pytest.mark.parametrize("spec", ["dn$2-0", "dn$0", "$0-2", "dn$a-b", "dn1,,dn2", "",
                                  f"dn$0-{MAX_EXPANDED_NAMES}"])
def test_expand_names_rejects(spec: str):
    with pytest.raises(ValueError):
        expand_names(spec)


def test_data_node_ranges_pair_every_host_with_every_database():
    files = mutated(SCHEMA, [
        (DATA_NODE, '<dataNode name="dn$0-3" dataHost="backend,backend2" database="db$0-1"/>'),
        ("</dataHost>", "</dataHost>" + DATA_HOST_OPEN.replace("backend", "backend2")
         + ' dbType="mysql" dbDriver="native">' + HEARTBEAT + WRITE_HOST + "</dataHost>"),
        (REGION, REGION.replace("dn$0-2", "dn$0-3")),
    ])
    model, problems = validate_mycat(files)
    assert model is not None and not errors(problems), shown(problems)
    assert dict(model.data_nodes) == {"dn0": ("backend", "db0"), "dn1": ("backend", "db1"),
                                      "dn2": ("backend2", "db0"), "dn3": ("backend2", "db1")}
    assert model.table_data_nodes["shop"]["region"] == ("dn0", "dn1", "dn2", "dn3")


def test_range_count_mismatch_defines_no_data_nodes():
    files = mutated(SCHEMA, [('name="dn$0-2"', 'name="dn$0-3"')])
    model, problems = validate_mycat(files)
    assert find(problems, SCHEMA, ("line 21: dataNode[name=dn$0-3]", "expands to 4",
                                   "1 x 3 = 3"))
    # The names stay known, so the tables using them are not reported a second time.
    assert len(problems) == 1, shown(problems)
    assert model is not None and dict(model.data_nodes) == {}


# ----------------------------------------------------------------------------------------------
# Reporting everything at once, files missing or unparsable, safety of the parser


def test_all_problems_are_reported_at_once():
    files = mutated(SCHEMA, [('maxCon="100"', 'maxCon="many"'),
                             ('rule="orders-by-id"', 'rule="nope"')])
    text = files[SERVER].decode().replace(APP_PASSWORD, "")
    files[SERVER] = text.encode()
    _, problems = validate_mycat(files)
    found = errors(problems)
    assert len(found) == 3, shown(problems)
    assert find(found, SCHEMA, ("dataHost[name=backend]", "maxCon"))
    assert find(found, SCHEMA, ("table[name=orders]", "rule 'nope'"))
    assert find(found, SERVER, ("user[name=app]", "no password"))


def test_two_broken_things_in_one_element_give_two_errors():
    files = mutated(SCHEMA, [(DATA_HOST_OPEN, DATA_HOST_OPEN.replace('balance="0" ', "")
                              + ' colour="red"')])
    _, problems = validate_mycat(files)
    assert [p.reason for p in errors(problems)] == [
        "unknown attribute 'colour' on <dataHost>",
        "missing required attribute 'balance' on <dataHost>"], shown(problems)
    assert all(p.where == "line 23: dataHost[name=backend]" for p in problems)


def test_problems_are_sorted_by_file_and_line():
    files = mutated(SCHEMA, [('sqlMaxLimit="1000"', 'sqlMaxLimit="x"'),
                             ('maxCon="100"', 'maxCon="x"')])
    files[RULE] = files[RULE].replace(b"<columns>id</columns>", b"<columns></columns>")
    _, problems = validate_mycat(files)
    assert [(p.file, p.where.split(":")[0]) for p in problems] == [
        (RULE, "line 9"), (SCHEMA, "line 9"), (SCHEMA, "line 23")], shown(problems)


@pytest.mark.parametrize("missing", [SCHEMA, SERVER, RULE])
def test_missing_file(missing: str):
    files = example_files()
    del files[missing]
    model, problems = validate_mycat(files)
    assert model is None
    assert [str(p) for p in problems] == [
        f"{missing}: missing: MyCat 1.6 does not start without it"]


def test_nothing_at_all():
    model, problems = validate_mycat({})
    assert model is None and len(errors(problems)) == 3


def test_unparsable_file_gives_no_model_but_other_files_are_still_checked():
    files = mutated(RULE, [("</mycat:rule>", "")])
    files[SERVER] = files[SERVER].replace(APP_PASSWORD.encode(), b"")
    model, problems = validate_mycat(files)
    assert model is None
    assert find(problems, RULE, ("not well-formed XML", "no element found"))
    assert find(problems, SERVER, ("user[name=app]", "no password"))
    # Without rule.xml there is no way to tell whether orders' rule exists: no guess is made.
    assert not find(problems, SCHEMA, ("rule",))


def test_findings_stay_on_one_line():
    files = mutated(RULE, [(ALGORITHM, "<algorithm>mod\n4</algorithm>")])
    _, problems = validate_mycat(files)
    assert find(problems, RULE, ("algorithm 'mod\\n4' is not a defined function",))


def test_unknown_encoding_is_reported():
    files = mutated(SCHEMA, [('encoding="UTF-8"', 'encoding="no-such-charset"')])
    model, problems = validate_mycat(files)
    assert model is None
    assert find(problems, SCHEMA, ("line 1", "not well-formed XML", "no-such-charset"))


def test_external_entities_are_never_read(tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET")
    files = mutated(SERVER, [('<!DOCTYPE mycat:server SYSTEM "server.dtd">',
                              f'<!DOCTYPE mycat:server SYSTEM "server.dtd" '
                              f'[<!ENTITY pw SYSTEM "file://{secret}">]>'),
                             ("app_pw", "&pw;")])
    model, problems = validate_mycat(files)
    assert model is None
    assert find(problems, SERVER, ("line 2", "entity declaration 'pw' refused"))
    assert "TOP-SECRET" not in shown(problems)


def test_entity_expansion_bombs_are_refused():
    bomb = ('<!DOCTYPE mycat:rule SYSTEM "rule.dtd" [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'
                      for i in range(8)) + "]>")
    files = mutated(RULE, [('<!DOCTYPE mycat:rule SYSTEM "rule.dtd">', bomb),
                           ("<columns>id</columns>", "<columns>&i;</columns>")])
    _, problems = validate_mycat(files)
    assert find(problems, RULE, ("entity declaration 'a' refused",))


def test_dtd_reference_is_not_fetched():
    # A DOCTYPE naming an unreachable URL must neither be fetched nor matter.
    files = mutated(SCHEMA, [('SYSTEM "schema.dtd"', 'SYSTEM "http://10.255.255.1/schema.dtd"')])
    model, problems = validate_mycat(files)
    assert model is not None and problems == [], shown(problems)


def test_undeclared_entity_is_an_error():
    files = mutated(SERVER, [("app_pw", "app&pw;")])
    _, problems = validate_mycat(files)
    assert find(problems, SERVER, ("line 22", "undeclared entity '&pw;'"))


def test_internal_subset_is_refused():
    files = mutated(RULE, [('SYSTEM "rule.dtd">', 'SYSTEM "rule.dtd" [<!ELEMENT extra ANY>]>')])
    _, problems = validate_mycat(files)
    assert find(problems, RULE, ("line 2", "internal DTD subset refused"))


def test_validate_mycat_dir_uses_prefix_in_file_names(tmp_path: Path):
    for name in ("schema.xml", "server.xml", "sequence_conf.properties"):
        (tmp_path / name).write_bytes((EXAMPLE_DIR / name).read_bytes())
    model, problems = validate_mycat_dir(tmp_path, prefix="conf/")
    assert model is None
    assert [str(p) for p in problems] == ["conf/rule.xml: missing: MyCat 1.6 does not start "
                                          "without it"]


def test_sequence_handler_without_its_file_is_a_warning():
    files = example_files()
    del files["mycat/sequence_conf.properties"]
    _, problems = validate_mycat(files)
    assert not errors(problems)
    assert [p.reason for p in warnings(problems)] == [
        "sequnceHandlerType 0 reads sequence_conf.properties, which is missing"]


@pytest.mark.parametrize("edit", [
    ('<property name="useGlobleTableCheck">0</property>', ""),  # MyCat's default: on
    ('<property name="useGlobleTableCheck">0</property>',
     '<property name="useGlobleTableCheck">1</property>'),
])
def test_the_global_table_check_left_on_is_a_warning_naming_the_stalled_reload(edit):
    _, problems = validate_mycat(mutated(SERVER, [edit]))
    assert not errors(problems)
    assert [p.reason for p in warnings(problems)] == [
        "useGlobleTableCheck is on (MyCat's default): every DDL on a global table holds one "
        "of MyCat's business threads for ten minutes, and reload @@config waits behind them; "
        "set it to 0"]
    _, problems = validate_mycat(example_files())
    assert not warnings(problems)


# ----------------------------------------------------------------------------------------------
# The MyCat version the spec names


ADDED_IN_1_6_7 = [
    pytest.param(SCHEMA, [(DATA_HOST_OPEN, DATA_HOST_OPEN + ' notSwitch="-1"')],
                 "notSwitch", id="datahost-notswitch"),
    pytest.param(SCHEMA, [(DATA_HOST_OPEN, DATA_HOST_OPEN + ' balanceType="0"')],
                 "balanceType", id="datahost-balancetype"),
    pytest.param(SCHEMA, [('parentKey="id"', 'parentKey="id" needAddLimit="true"')],
                 "needAddLimit", id="childtable-needaddlimit"),
]


@pytest.mark.parametrize(("path", "edits", "attribute"), ADDED_IN_1_6_7)
def test_1_6_7_attributes_are_refused_for_1_6_6_1(path: str, edits: list[tuple[str, str]],
                                                  attribute: str):
    for version in ((), ("1.6.6.1",)):
        _, problems = validate_mycat(mutated(path, edits), "mycat/", *version)
        assert find(problems, path, (f"unknown attribute '{attribute}'",)), shown(problems)


@pytest.mark.parametrize(("path", "edits", "attribute"), ADDED_IN_1_6_7)
def test_1_6_7_attributes_are_accepted_for_1_6_7(path: str, edits: list[tuple[str, str]],
                                                 attribute: str):
    _, problems = validate_mycat(mutated(path, edits), "mycat/", "1.6.7")
    assert errors(problems) == [], shown(problems)


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match=r"unknown MyCat version '1\.5'"):
        validate_mycat(example_files(), "mycat/", "1.5")
