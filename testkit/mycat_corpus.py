"""A corpus of MyCat file sets an operator could plausibly write, most of them broken.

Every case starts from the example configs in configs/mycat/ (the backend moved to loopback,
so the real MyCat can be asked about it) and applies one small named mistake. Names say what
the real MyCat 1.6.6.1 is expected to make of them:

- ``valid__...``: MyCat loads it, and so must stackha (over-strictness shows up here);
- ``refused_by_stackha_only__<why>``: MyCat loads it but then misbehaves (a typo read as
  false, a port it cannot bind, a sequence it cannot hand out): stackha refuses on purpose;
- anything else: a mistake; what MyCat makes of it is the oracle's answer, not ours.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "configs" / "mycat"
FILES = ("schema.xml", "server.xml", "rule.xml", "sequence_conf.properties")
STACKHA_ONLY = "refused_by_stackha_only__"
VALID = "valid__"

Files = dict[str, str | None]


def base_files() -> Files:
    files: Files = {name: (EXAMPLES / name).read_text(encoding="utf-8") for name in FILES}
    # The lab's backend address would never be contacted by the loader, but MyCat is only
    # ever shown loopback addresses.
    files["schema.xml"] = (files["schema.xml"] or "").replace("10.77.0.30", "127.0.0.1")
    return files


@dataclass(frozen=True)
class Case:
    name: str
    mutate: Callable[[Files], None]

    def files(self) -> Files:
        files = base_files()
        self.mutate(files)
        return files


# -- the text the mutations edit (from configs/mycat/) -------------------------------------

SCHEMA_OPEN = '<schema name="shop" checkSQLschema="true" sqlMaxLimit="1000">'
REGION = '<table name="region" dataNode="dn$0-2" type="global" primaryKey="id"/>'
ORDERS = '<table name="orders" dataNode="dn$0-2" rule="orders-by-id" primaryKey="id">'
CHILD = '<childTable name="order_items" joinKey="order_id" parentKey="id" primaryKey="id"/>'
CUSTOMERS = '<table name="customers" dataNode="dn0" primaryKey="id"/>'
DATA_NODE = '<dataNode name="dn$0-2" dataHost="backend" database="db$0-2"/>'
DATA_HOST = ('<dataHost name="backend" balance="0" maxCon="100" minCon="5" writeType="0"\n'
             '              switchType="1" slaveThreshold="100" dbType="mysql" dbDriver="native">')
HEARTBEAT = "<heartbeat>select user()</heartbeat>"
WRITE_HOST = ('<writeHost host="hostM1" url="127.0.0.1:3306" user="mycat" '
              'password="mycat_backend_pw"/>')
READ_HOST = '<readHost host="hostS1" url="127.0.0.1:3307" user="mycat" password="pw" weight="1"/>'
DATA_HOST_CLOSE = "</dataHost>"
SCHEMA_ROOT = '<mycat:schema xmlns:mycat="http://io.mycat/">'

SYSTEM_OPEN = "<system>"
SERVER_PORT = '<property name="serverPort">8066</property>'
MANAGER_PORT = '<property name="managerPort">9066</property>'
BIND_IP = '<property name="bindIp">0.0.0.0</property>'
CHARSET = '<property name="charset">utf8</property>'
SEQUENCE_TYPE = '<property name="sequnceHandlerType">0</property>'
APP_USER = '<user name="app">'
APP_PASSWORD = '<property name="password">app_pw</property>'
APP_SCHEMAS = '<property name="schemas">shop</property>'
APP_DEFAULT = '<property name="defaultSchema">shop</property>'
REPORT_USER = '<user name="report">'
REPORT_SCHEMAS = ('<property name="password">report_pw</property>\n'
                  '        <property name="schemas">shop</property>')
READ_ONLY = '<property name="readOnly">true</property>'
SERVER_CLOSE = "</mycat:server>"

ORDERS_RULE = '<tableRule name="orders-by-id">'
COLUMNS = "<columns>id</columns>"
ALGORITHM = "<algorithm>mod3</algorithm>"
FUNCTION = '<function name="mod3" class="io.mycat.route.function.PartitionByMod">'
COUNT = '<property name="count">3</property>'
FUNCTION_CLOSE = "</function>"
RULE_CLOSE = "</mycat:rule>"

USER_BLOCK = """    <user name="report">
        <property name="password">report_pw</property>
        <property name="schemas">shop</property>
        <property name="readOnly">true</property>
    </user>
"""
FUNCTION_BLOCK = """    <function name="mod3" class="io.mycat.route.function.PartitionByMod">
        <property name="count">3</property>
    </function>
"""


def _edit(file: str, old: str, new: str) -> Callable[[Files], None]:
    """Replace the first occurrence of ``old``, which must be there."""
    def mutate(files: Files) -> None:
        text = files[file] or ""
        if old not in text:
            raise AssertionError(f"{file}: {old!r} not found")
        files[file] = text.replace(old, new, 1)  # the first: app's user, dataHost backend
    return mutate


def _edits(*steps: Callable[[Files], None]) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        for step in steps:
            step(files)
    return mutate


def _set(file: str, text: str | None) -> Callable[[Files], None]:
    def mutate(files: Files) -> None:
        files[file] = text
    return mutate


def _nothing(_files: Files) -> None:
    return None


def schema(old: str, new: str) -> Callable[[Files], None]:
    return _edit("schema.xml", old, new)


def server(old: str, new: str) -> Callable[[Files], None]:
    return _edit("server.xml", old, new)


def rule(old: str, new: str) -> Callable[[Files], None]:
    return _edit("rule.xml", old, new)


def attr(tag_text: str, extra: str) -> str:
    """The start tag with one more attribute."""
    if tag_text.endswith("/>"):
        return tag_text[:-2] + f" {extra}/>"
    return tag_text[:-1] + f" {extra}>"


def system_property(name: str, value: str) -> Callable[[Files], None]:
    return server(SYSTEM_OPEN, f'{SYSTEM_OPEN}\n        <property name="{name}">{value}</property>')


def function(name: str, cls: str, props: Mapping[str, str]) -> str:
    body = "".join(f'\n        <property name="{k}">{v}</property>' for k, v in props.items())
    return f'    <function name="{name}" class="{cls}">{body}\n    </function>\n'


def with_function(cls: str, props: Mapping[str, str]) -> Callable[[Files], None]:
    """mod3 replaced by another function class with these properties."""
    return rule(FUNCTION_BLOCK, function("mod3", cls, props))


def _drop_user(files: Files, name: str) -> str:
    text = files["server.xml"] or ""
    start = text.index(f'<user name="{name}">')
    end = text.index("</user>", start) + len("</user>")
    return text[:start] + text[end:]


def _move_system_to_end(files: Files) -> None:
    text = files["server.xml"] or ""
    start = text.index("<system>")
    end = text.index("</system>") + len("</system>")
    block = text[start:end]
    text = text[:start] + text[end:]
    files["server.xml"] = text.replace(SERVER_CLOSE, block + "\n" + SERVER_CLOSE)


_F = "io.mycat.route.function."

CASES: tuple[Case, ...] = tuple(Case(name, mutate) for name, mutate in (
    # ---- files as shipped, and variants MyCat loads ------------------------------------------
    ("valid__examples_as_shipped", _nothing),
    ("valid__read_host_with_weight", schema(WRITE_HOST, WRITE_HOST[:-2] + ">"
                                            + READ_HOST + "</writeHost>")),
    ("valid__data_host_max_retry_count", schema(DATA_HOST, attr(DATA_HOST, 'maxRetryCount="3"'))),
    ("valid__data_host_filters_and_log_time",
     schema(DATA_HOST, attr(DATA_HOST, 'filters="mergeStat" logTime="300000"'))),
    ("valid__temp_read_host_available", schema(DATA_HOST,
                                                attr(DATA_HOST, 'tempReadHostAvailable="1"'))),
    ("valid__table_with_two_names", schema(CUSTOMERS, '<table name="customers,suppliers" '
                                                      'dataNode="dn0" primaryKey="id"/>')),
    ("valid__table_type_global_upper_case", schema(REGION, REGION.replace("global", "GLOBAL"))),
    ("valid__schema_with_default_data_node_only",
     schema(SCHEMA_OPEN, '<schema name="logs" dataNode="dn1"/>\n    ' + SCHEMA_OPEN)),
    ("valid__murmur_hash_over_three_nodes",
     with_function(_F + "PartitionByMurmurHash", {"seed": "0", "count": "3",
                                                  "virtualBucketTimes": "160"})),
    ("long_partition_lengths_under_1024",
     with_function(_F + "PartitionByLong", {"partitionCount": "3",
                                            "partitionLength": "256"})),
    ("valid__user_default_account", server(APP_USER, '<user name="app" defaultAccount="true">')),
    ("valid__firewall_white_host",
     server(APP_USER, '<firewall><whitehost><host host="127.0.0.1" user="app"/></whitehost>'
                      '</firewall>\n    ' + APP_USER)),
    ("valid__privileges", server(APP_DEFAULT, APP_DEFAULT + '\n        <privileges check="true">'
                                 '<schema name="shop" dml="0110"><table name="orders" '
                                 'dml="0000"/></schema></privileges>')),
    ("valid__sequence_file_removed_falls_back_to_jar", _set("sequence_conf.properties", None)),
    ("valid__empty_heartbeat", schema(HEARTBEAT, "<heartbeat></heartbeat>")),
    ("valid__partitions_fewer_than_nodes", rule(COUNT, '<property name="count">2</property>')),
    ("table_property_element_undeclared",
     schema(CUSTOMERS, CUSTOMERS[:-2] + '><property name="x">1</property></table>')),
    ("valid__connection_init_sql", schema(HEARTBEAT, HEARTBEAT + "\n        <connectionInitSql>"
                                                                 "set names utf8"
                                                                 "</connectionInitSql>")),

    # ---- attributes the 1.6.6.1 grammar does not declare (some from 1.6.7) -----------------
    ("schema_random_data_node", schema(SCHEMA_OPEN, attr(SCHEMA_OPEN, 'randomDataNode="dn0"'))),
    ("data_host_not_switch_from_1_6_7", schema(DATA_HOST, attr(DATA_HOST, 'notSwitch="-1"'))),
    ("data_host_balance_type_from_1_6_7", schema(DATA_HOST, attr(DATA_HOST, 'balanceType="0"'))),
    ("child_table_need_add_limit_from_1_6_7",
     schema(CHILD, attr(CHILD, 'needAddLimit="true"'))),
    ("schema_unknown_attribute", schema(SCHEMA_OPEN, attr(SCHEMA_OPEN, 'version="1.6"'))),
    ("table_unknown_attribute", schema(CUSTOMERS, attr(CUSTOMERS, 'shardingKey="id"'))),
    ("data_node_weight", schema(DATA_NODE, attr(DATA_NODE, 'weight="1"'))),
    ("write_host_weight", schema(WRITE_HOST, attr(WRITE_HOST, 'weight="1"'))),
    ("write_host_port_attribute", schema(WRITE_HOST, attr(WRITE_HOST, 'port="3306"'))),
    ("read_host_slave_attribute", schema(WRITE_HOST, WRITE_HOST[:-2] + ">" + READ_HOST.replace(
        'weight="1"', 'slave="1"') + "</writeHost>")),
    ("root_unknown_attribute", schema(SCHEMA_ROOT, attr(SCHEMA_ROOT, 'version="1.6"'))),
    ("root_wrong_namespace", schema(SCHEMA_ROOT, '<mycat:schema xmlns:mycat="http://mycat.io/">')),
    ("server_root_old_namespace", server('<mycat:server xmlns:mycat="http://io.mycat/">',
                                         '<mycat:server xmlns:mycat="http://org.opencloudb/">')),
    ("user_unknown_attribute", server(APP_USER, '<user name="app" readOnly="false">')),
    ("function_unknown_attribute", rule(FUNCTION, attr(FUNCTION, 'type="mod"'))),
    ("table_rule_unknown_attribute", rule(ORDERS_RULE, attr(ORDERS_RULE, 'column="id"'))),
    ("child_table_need_add_limit_typo", schema(CHILD, attr(CHILD, 'needAddlimit="true"'))),
    ("data_host_slave_ids_declared", schema(DATA_HOST, attr(DATA_HOST, 'slaveIDs="1,2"'))),

    # ---- elements: unknown, missing, misplaced -------------------------------------------
    ("unknown_element_in_schema_root", schema(DATA_NODE, "<sequence name='x'/>\n    "
                                              + DATA_NODE)),
    ("unknown_element_in_data_host", schema(HEARTBEAT, HEARTBEAT + "<timeout>5</timeout>")),
    ("quarantine_from_1_5", server(APP_USER, "<quarantine><whitehost/></quarantine>\n    "
                                   + APP_USER)),
    ("heartbeat_missing", schema(HEARTBEAT, "")),
    ("heartbeat_twice", schema(HEARTBEAT, HEARTBEAT + HEARTBEAT)),
    ("write_host_missing", schema(WRITE_HOST, "")),
    ("connection_init_sql_after_write_host",
     schema(WRITE_HOST, WRITE_HOST + "<connectionInitSql>set names utf8</connectionInitSql>")),
    ("data_host_before_data_node", _edits(schema(DATA_NODE, ""), schema(
        DATA_HOST_CLOSE, DATA_HOST_CLOSE + "\n    " + DATA_NODE))),
    ("schema_after_data_node", _edits(schema(DATA_NODE, DATA_NODE + "\n    "
                                             + '<schema name="logs" dataNode="dn1"/>'))),
    ("function_before_table_rule", _edits(rule(FUNCTION_BLOCK, ""), rule(
        ORDERS_RULE, FUNCTION_BLOCK.strip() + "\n    " + ORDERS_RULE))),
    ("two_rules_in_table_rule", rule("</rule>\n    </tableRule>\n\n    <!-- Spare",
                                     "</rule><rule><columns>x</columns><algorithm>mod3"
                                     "</algorithm></rule>\n    </tableRule>\n\n    <!-- Spare")),
    ("system_after_user", _move_system_to_end),
    ("firewall_after_user", server(SERVER_CLOSE, "<firewall/>" + SERVER_CLOSE)),
    ("privileges_before_properties", server(APP_PASSWORD, '<privileges check="true"/>'
                                            + APP_PASSWORD)),
    ("server_without_users", _edits(server(USER_BLOCK, ""),
                                    lambda f: f.__setitem__("server.xml", _drop_user(f, "app")))),
    ("rule_element_text_outside", rule(COLUMNS, "id" + COLUMNS)),
    ("text_inside_schema", schema(CUSTOMERS, "shop tables " + CUSTOMERS)),
    ("element_in_heartbeat", schema(HEARTBEAT, "<heartbeat><sql>select 1</sql></heartbeat>")),
    ("root_without_prefix", _edits(schema(SCHEMA_ROOT, '<schema xmlns:mycat="http://io.mycat/">'),
                                   schema("</mycat:schema>", "</schema>"))),
    ("doctype_missing", schema('<!DOCTYPE mycat:schema SYSTEM "schema.dtd">\n', "")),
    ("not_well_formed_unclosed_tag", schema(CUSTOMERS, CUSTOMERS[:-2] + ">")),
    ("ampersand_in_password", schema('password="mycat_backend_pw"', 'password="pw&co"')),
    ("user_without_property", _edits(server(APP_PASSWORD, ""), server(APP_SCHEMAS, ""),
                                     server(APP_DEFAULT, ""))),
    ("cluster_node_without_property", server(SERVER_CLOSE, '<cluster><node name="m1"/>'
                                             '</cluster>' + SERVER_CLOSE)),

    # ---- required attributes, name tokens ----------------------------------------------
    ("table_without_data_node", schema(CUSTOMERS, '<table name="customers" primaryKey="id"/>')),
    ("table_without_name", schema(CUSTOMERS, '<table dataNode="dn0" primaryKey="id"/>')),
    ("child_table_without_join_key", schema(CHILD, CHILD.replace(' joinKey="order_id"', ""))),
    ("data_node_without_database", schema(DATA_NODE, DATA_NODE.replace(' database="db$0-2"', ""))),
    ("data_host_without_db_driver", schema(DATA_HOST, DATA_HOST.replace(' dbDriver="native"', ""))),
    ("data_host_without_balance", schema(DATA_HOST, DATA_HOST.replace(' balance="0"', ""))),
    ("write_host_without_password", schema(WRITE_HOST, WRITE_HOST.replace(
        ' password="mycat_backend_pw"', ""))),
    ("write_host_without_host", schema(WRITE_HOST, WRITE_HOST.replace(' host="hostM1"', ""))),
    ("function_without_class", rule(FUNCTION, '<function name="mod3">')),
    ("table_rule_without_name", rule(ORDERS_RULE, "<tableRule>")),
    ("schema_name_with_space", _edits(
        schema(SCHEMA_OPEN, SCHEMA_OPEN.replace('"shop"', '"my shop"')),
                                      server(APP_SCHEMAS, APP_SCHEMAS.replace("shop", "my shop")))),
    ("table_rule_reference_with_space", schema(ORDERS, ORDERS.replace('"orders-by-id"',
                                                                      '"orders by id"'))),
    ("data_host_name_empty", _edits(schema(DATA_HOST, DATA_HOST.replace('"backend"', '""')),
                                    schema(DATA_NODE, DATA_NODE.replace('"backend"', '""')))),
    ("user_name_with_space", server(APP_USER, '<user name="app user">')),
    ("privileges_check_missing", server(APP_DEFAULT, APP_DEFAULT + "<privileges/>")),

    # ---- names that refer to nothing, duplicates --------------------------------------
    ("table_rule_not_defined", schema(ORDERS, ORDERS.replace("orders-by-id", "orders-by-ID"))),
    ("table_data_node_not_defined", schema(CUSTOMERS, CUSTOMERS.replace('"dn0"', '"dn3"'))),
    ("table_data_node_range_too_long", schema(REGION, REGION.replace("dn$0-2", "dn$0-3"))),
    ("data_node_names_missing_data_host", schema(DATA_NODE, DATA_NODE.replace('"backend"',
                                                                               '"backend2"'))),
    ("data_node_count_mismatch", schema(DATA_NODE, DATA_NODE.replace("db$0-2", "db$0-1"))),
    ("data_node_range_reversed", schema(DATA_NODE, DATA_NODE.replace("dn$0-2", "dn$2-0"))),
    ("duplicate_data_host", schema(DATA_HOST_CLOSE, DATA_HOST_CLOSE + "\n    " + DATA_HOST
                                   + HEARTBEAT + WRITE_HOST + DATA_HOST_CLOSE)),
    ("duplicate_data_node", schema(DATA_NODE, DATA_NODE + '\n    <dataNode name="dn1" '
                                   'dataHost="backend" database="db9"/>')),
    ("duplicate_schema", schema(SCHEMA_OPEN, '<schema name="shop" dataNode="dn1"/>\n    '
                                + SCHEMA_OPEN)),
    ("duplicate_table_other_case", schema(CUSTOMERS, CUSTOMERS + '\n        <table '
                                          'name="Customers" dataNode="dn1"/>')),
    ("duplicate_write_host_name", schema(WRITE_HOST, WRITE_HOST + "\n        "
                                         + WRITE_HOST.replace("3306", "3307"))),
    ("read_host_same_name_as_write_host", schema(WRITE_HOST, WRITE_HOST[:-2] + ">" + READ_HOST
                                                 .replace("hostS1", "hostM1") + "</writeHost>")),
    ("duplicate_table_rule", rule("<!-- Spare rule", "<tableRule name=\"orders-by-id\"><rule>"
                                  "<columns>id</columns><algorithm>mod3</algorithm></rule>"
                                  "</tableRule>\n    <!-- Spare rule")),
    ("duplicate_function", rule(FUNCTION_BLOCK, FUNCTION_BLOCK + FUNCTION_BLOCK)),
    ("duplicate_user", server(USER_BLOCK, USER_BLOCK + USER_BLOCK)),
    ("schema_without_tables_or_data_node",
     schema(SCHEMA_OPEN, '<schema name="logs"/>\n    ' + SCHEMA_OPEN)),
    ("schema_default_data_node_not_defined",
     schema(SCHEMA_OPEN, SCHEMA_OPEN.replace('sqlMaxLimit', 'dataNode="dn7" sqlMaxLimit'))),
    ("algorithm_not_defined", rule(ALGORITHM, "<algorithm>mod4</algorithm>")),
    ("user_without_schemas", server(REPORT_SCHEMAS, '<property name="password">report_pw'
                                                    '</property>')),
    ("user_schema_not_defined", server(APP_SCHEMAS, APP_SCHEMAS.replace("shop", "shop,crm"))),
    ("user_schemas_empty", server(APP_SCHEMAS, '<property name="schemas"></property>')),
    (STACKHA_ONLY + "user_without_password_an_account_nobody_meant", server(APP_PASSWORD, "")),
    (STACKHA_ONLY + "default_schema_the_user_cannot_use",
     server(APP_DEFAULT, APP_DEFAULT.replace("shop", "crm"))),
    ("white_host_user_not_defined",
     server(APP_USER, '<firewall><whitehost><host host="127.0.0.1" user="nobody"/></whitehost>'
                      '</firewall>\n    ' + APP_USER)),
    (STACKHA_ONLY + "white_host_listed_twice_one_entry_is_lost",
     server(APP_USER, '<firewall><whitehost><host host="127.0.0.1" user="app"/>'
                      '<host host="127.0.0.1" user="report"/></whitehost></firewall>\n    '
            + APP_USER)),
    ("privileges_schema_not_users", server(APP_DEFAULT, APP_DEFAULT + '<privileges check="true">'
                                           '<schema name="crm" dml="1111"/></privileges>')),
    (STACKHA_ONLY + "privileges_dml_needs_four_flags",
     server(APP_DEFAULT, APP_DEFAULT + '<privileges check="true">'
                                        '<schema name="shop" dml="11"/></privileges>')),
    (STACKHA_ONLY + "privileges_check_yes_read_as_false",
     server(APP_DEFAULT, APP_DEFAULT + '<privileges check="yes">'
                                    '<schema name="shop" dml="1111"/></privileges>')),
    ("table_data_node_listed_twice", schema(REGION, REGION.replace("dn$0-2", "dn$0-2,dn0"))),
    ("table_name_empty_item", schema(CUSTOMERS, CUSTOMERS.replace('"customers"',
                                                                  '"customers,"'))),

    # ---- values: types and ranges -------------------------------------------------------
    ("balance_not_a_number", schema(DATA_HOST, DATA_HOST.replace('balance="0"',
                                                                 'balance="roundrobin"'))),
    (STACKHA_ONLY + "balance_7_falls_back_silently",
     schema(DATA_HOST, DATA_HOST.replace('balance="0"', 'balance="7"'))),
    ("balance_empty", schema(DATA_HOST, DATA_HOST.replace('balance="0"', 'balance=""'))),
    ("write_type_not_a_number", schema(DATA_HOST, DATA_HOST.replace('writeType="0"',
                                                                    'writeType="first"'))),
    (STACKHA_ONLY + "write_type_5_falls_back_silently",
     schema(DATA_HOST, DATA_HOST.replace('writeType="0"',
                                                                    'writeType="5"'))),
    ("switch_type_not_a_number", schema(DATA_HOST, DATA_HOST.replace('switchType="1"',
                                                                     'switchType="auto"'))),
    (STACKHA_ONLY + "switch_type_9_falls_back_silently",
     schema(DATA_HOST, DATA_HOST.replace('switchType="1"',
                                                                     'switchType="9"'))),
    ("max_con_not_a_number", schema(DATA_HOST, DATA_HOST.replace('maxCon="100"',
                                                                 'maxCon="many"'))),
    ("min_con_larger_than_max_con", schema(DATA_HOST, DATA_HOST.replace('minCon="5"',
                                                                        'minCon="500"'))),
    ("slave_threshold_not_a_number", schema(DATA_HOST, DATA_HOST.replace(
        'slaveThreshold="100"', 'slaveThreshold="high"'))),
    ("max_con_with_spaces", schema(DATA_HOST, DATA_HOST.replace('maxCon="100"',
                                                                'maxCon=" 100 "'))),
    ("db_type_oracle_with_native_driver", schema(DATA_HOST, DATA_HOST.replace(
        'dbType="mysql"', 'dbType="oracle"'))),
    ("db_type_upper_case_mysql", schema(DATA_HOST, DATA_HOST.replace('dbType="mysql"',
                                                                     'dbType="MySQL"'))),
    ("db_driver_unknown", schema(DATA_HOST, DATA_HOST.replace('dbDriver="native"',
                                                              'dbDriver="odbc"'))),
    ("db_driver_upper_case", schema(DATA_HOST, DATA_HOST.replace('dbDriver="native"',
                                                                 'dbDriver="Native"'))),
    ("sql_max_limit_not_a_number", schema(SCHEMA_OPEN, SCHEMA_OPEN.replace('"1000"', '"all"'))),
    (STACKHA_ONLY + "check_sql_schema_typo_read_as_false",
     schema(SCHEMA_OPEN, SCHEMA_OPEN.replace('checkSQLschema="true"', 'checkSQLschema="ture"'))),
    (STACKHA_ONLY + "table_type_typo_read_as_normal",
     schema(REGION, REGION.replace("global", "globle"))),
    (STACKHA_ONLY + "need_add_limit_yes_read_as_false",
     schema(CUSTOMERS, attr(CUSTOMERS, 'needAddLimit="yes"'))),
    (STACKHA_ONLY + "auto_increment_one_read_as_false",
     schema(CUSTOMERS, attr(CUSTOMERS, 'autoIncrement="1"'))),
    (STACKHA_ONLY + "read_only_yes_read_as_false",
     server(READ_ONLY, READ_ONLY.replace("true", "yes"))),
    ("rule_required_without_rule", schema(CUSTOMERS, attr(CUSTOMERS, 'ruleRequired="true"'))),
    ("benchmark_not_a_number", server(APP_DEFAULT, APP_DEFAULT + '<property name="benchmark">'
                                      'lots</property>')),
    ("using_decrypt_with_plain_password",
     server(APP_DEFAULT, APP_DEFAULT + '<property name="usingDecrypt">1</property>')),
    ("write_host_using_decrypt_with_plain_password",
     schema(WRITE_HOST, attr(WRITE_HOST, 'usingDecrypt="1"'))),
    (STACKHA_ONLY + "user_property_typo_is_ignored",
     server(APP_DEFAULT, APP_DEFAULT + '<property name="passwd">x'
                                                               '</property>')),
    ("server_port_not_a_number", server(SERVER_PORT, SERVER_PORT.replace("8066", "eighty"))),
    (STACKHA_ONLY + "server_port_out_of_range_cannot_bind",
     server(SERVER_PORT, SERVER_PORT.replace("8066", "80660"))),
    (STACKHA_ONLY + "manager_port_equals_server_port_cannot_bind",
     server(MANAGER_PORT, MANAGER_PORT.replace("9066", "8066"))),
    (STACKHA_ONLY + "system_property_typo_is_ignored", system_property("serverport", "8066")),
    ("system_property_processors_not_a_number", system_property("processors", "four")),
    ("system_property_idle_timeout_not_a_number", system_property("idleTimeout", "30m")),
    ("system_property_tx_isolation_not_a_number", system_property("txIsolation",
                                                                  "REPEATABLE_READ")),
    ("system_property_use_sql_stat_boolean", system_property("useSqlStat", "true")),
    (STACKHA_ONLY + "bind_ip_not_an_address_cannot_listen",
     server(BIND_IP, BIND_IP.replace("0.0.0.0",
                                                                               "any"))),
    ("system_property_charset_unknown", server(CHARSET, CHARSET.replace("utf8", "utf9"))),
    ("sequence_handler_type_not_a_number", server(SEQUENCE_TYPE, SEQUENCE_TYPE.replace(
        ">0<", ">local<"))),
    (STACKHA_ONLY + "sequence_handler_type_9_hands_out_nothing",
     server(SEQUENCE_TYPE, SEQUENCE_TYPE.replace(">0<", ">9<"))),
    ("sequence_time_worker_id_not_a_number", _edits(
        server(SEQUENCE_TYPE, SEQUENCE_TYPE.replace(">0<", ">2<")),
        _set("sequence_time_conf.properties", "WORKID=one\nDATAACENTERID=01\n"))),
    ("sequence_time_file_empty", _edits(
        server(SEQUENCE_TYPE, SEQUENCE_TYPE.replace(">0<", ">2<")),
        _set("sequence_time_conf.properties", "# nothing\n"))),
    (STACKHA_ONLY + "sequence_min_id_not_a_number_fails_on_first_insert",
     _edit("sequence_conf.properties", "ORDERS.MINID=1001", "ORDERS.MINID=one")),
    (STACKHA_ONLY + "sequence_max_below_min_fails_on_first_insert",
     _edit("sequence_conf.properties", "ORDERS.MAXID=2000000", "ORDERS.MAXID=10")),
    (STACKHA_ONLY + "blacklist_check_maybe_read_as_false",
     server(APP_USER, '<firewall><blacklist check="maybe"/></firewall>\n    ' + APP_USER)),

    # ---- whitespace MyCat keeps -----------------------------------------------------------
    ("table_data_node_leading_space", schema(CUSTOMERS, CUSTOMERS.replace('"dn0"', '" dn0"'))),
    ("schema_default_data_node_trailing_space",
     schema(SCHEMA_OPEN, '<schema name="logs" dataNode="dn1 "/>\n    ' + SCHEMA_OPEN)),
    ("data_node_data_host_leading_space", schema(DATA_NODE, DATA_NODE.replace('"backend"',
                                                                              '" backend"'))),
    ("data_node_name_trailing_space", schema(DATA_NODE, DATA_NODE.replace('"dn$0-2"',
                                                                          '"dn$0-2 "'))),
    ("user_schemas_with_space_after_comma", _edits(
        schema(SCHEMA_OPEN, '<schema name="logs" dataNode="dn1"/>\n    ' + SCHEMA_OPEN),
        server(APP_SCHEMAS, APP_SCHEMAS.replace("shop", "shop, logs")))),
    ("user_schemas_padded", server(APP_SCHEMAS, APP_SCHEMAS.replace(">shop<", "> shop <"))),
    ("columns_padded", rule(COLUMNS, "<columns> id </columns>")),
    ("algorithm_padded", rule(ALGORITHM, "<algorithm> mod3 </algorithm>")),
    ("function_count_padded", rule(COUNT, '<property name="count"> 3 </property>')),
    ("function_class_padded", rule(FUNCTION, FUNCTION.replace('class="io', 'class=" io'))),
    ("table_rule_padded", schema(ORDERS, ORDERS.replace('"orders-by-id"', '" orders-by-id "'))),
    ("table_type_padded", schema(REGION, REGION.replace('"global"', '" global "'))),
    ("url_padded", schema(WRITE_HOST, WRITE_HOST.replace('"127.0.0.1:3306"',
                                                         '" 127.0.0.1:3306"'))),
    ("balance_padded", schema(DATA_HOST, DATA_HOST.replace('balance="0"', 'balance=" 0"'))),
    ("password_padded_property", server(APP_PASSWORD, APP_PASSWORD.replace(">app_pw<",
                                                                           "> app_pw<"))),

    # ---- backend urls -------------------------------------------------------------------
    ("url_without_port", schema(WRITE_HOST, WRITE_HOST.replace(":3306", ""))),
    ("url_port_not_a_number", schema(WRITE_HOST, WRITE_HOST.replace(":3306", ":mysql"))),
    ("url_jdbc_form_with_native_driver", schema(WRITE_HOST, WRITE_HOST.replace(
        '"127.0.0.1:3306"', '"jdbc:mysql://127.0.0.1:3306"'))),
    ("url_host_port_with_jdbc_driver", schema(DATA_HOST, DATA_HOST.replace(
        'dbDriver="native"', 'dbDriver="jdbc"'))),
    ("valid__url_jdbc_with_jdbc_driver", _edits(
        schema(DATA_HOST, DATA_HOST.replace('dbDriver="native"', 'dbDriver="jdbc"')),
        schema(WRITE_HOST, WRITE_HOST.replace('"127.0.0.1:3306"',
                                              '"jdbc:mysql://127.0.0.1:3306"')))),
    ("url_empty", schema(WRITE_HOST, WRITE_HOST.replace('"127.0.0.1:3306"', '""'))),
    ("url_two_colons", schema(WRITE_HOST, WRITE_HOST.replace(":3306", ":3306:1"))),
    (STACKHA_ONLY + "url_port_99999_never_connects",
     schema(WRITE_HOST, WRITE_HOST.replace(":3306", ":99999"))),

    # ---- partition functions ------------------------------------------------------------
    ("function_class_does_not_exist", rule(FUNCTION, FUNCTION.replace("PartitionByMod",
                                                                      "PartitionByModulo"))),
    ("function_class_from_mycat_1_5", rule(FUNCTION, FUNCTION.replace(
        "io.mycat.route.function.", "org.opencloudb.route.function."))),
    ("function_class_not_a_partition_function", rule(FUNCTION, FUNCTION.replace(
        "io.mycat.route.function.PartitionByMod", "java.lang.String"))),
    ("function_class_short_name", rule(FUNCTION, FUNCTION.replace("io.mycat.route.function.",
                                                                  ""))),
    (STACKHA_ONLY + "mod_count_missing_divides_by_zero", rule(COUNT, "")),
    ("mod_count_not_a_number", rule(COUNT, COUNT.replace(">3<", ">three<"))),
    (STACKHA_ONLY + "mod_count_zero_divides_by_zero", rule(COUNT, COUNT.replace(">3<", ">0<"))),
    (STACKHA_ONLY + "mod_count_negative_routes_nowhere", rule(COUNT, COUNT.replace(">3<", ">-1<"))),
    ("mod_count_more_than_data_nodes", rule(COUNT, COUNT.replace(">3<", ">4<"))),
    ("mod_count_decimal", rule(COUNT, COUNT.replace(">3<", ">3.0<"))),
    ("function_unknown_property", rule(COUNT, COUNT + '<property name="counts">3</property>')),
    ("hash_mod_count_more_than_data_nodes",
     with_function(_F + "PartitionByHashMod", {"count": "4"})),
    ("murmur_count_more_than_data_nodes",
     with_function(_F + "PartitionByMurmurHash", {"seed": "0", "count": "4"})),
    ("long_partition_lengths_over_1024",
     with_function(_F + "PartitionByLong", {"partitionCount": "3", "partitionLength": "512"})),
    (STACKHA_ONLY + "long_partitions_beyond_data_nodes_fail_inserts",
     with_function(_F + "PartitionByLong", {"partitionCount": "4", "partitionLength": "256"})),
    ("file_map_without_map_file",
     with_function(_F + "PartitionByFileMap", {"mapFile": "no-such-map.txt"})),
    ("auto_partition_map_file_missing",
     with_function(_F + "AutoPartitionByLong", {"mapFile": "no-such-range.txt"})),
    ("date_partition_bad_date", with_function(_F + "PartitionByDate", {
        "dateFormat": "yyyy-MM-dd", "sBeginDate": "someday", "sPartionDay": "10"})),
    ("jump_hash_total_buckets_not_a_number",
     with_function(_F + "PartitionByJumpConsistentHash", {"totalBuckets": "three"})),
    ("valid__jump_hash_three_buckets",
     with_function(_F + "PartitionByJumpConsistentHash", {"totalBuckets": "3"})),
    ("columns_two_columns", rule(COLUMNS, "<columns>id,customer_id</columns>")),
    ("columns_empty", rule(COLUMNS, "<columns></columns>")),
    ("algorithm_empty", rule(ALGORITHM, "<algorithm></algorithm>")),
    ("property_name_with_space", rule(COUNT, '<property name="the count">3</property>')),
))


def corpus() -> dict[str, Files]:
    """Every case's files, by name (names are unique)."""
    result: dict[str, Files] = {}
    for case in CASES:
        if case.name in result:
            raise AssertionError(f"case {case.name} defined twice")
        result[case.name] = case.files()
    return result
