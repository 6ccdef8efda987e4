"""Real sharding through the MyCat VIP (the lab's real MyCat 1.6.6.1; skipped on the stand-in,
which shards nothing): each order lands in the database its rule names, a global table is on
every dataNode. Rows are checked in MariaDB directly (10.77.0.30, the lab's backend).

Traffic goes only to the lab's private compose network (10.77.0.0/24 on this machine).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Lab, needs_mycat_release, query
from tests.e2e.test_stack import sql

pytestmark = pytest.mark.e2e

BACKEND = ("10.77.0.30", 3306, "mycat", "mycat_backend_pw")  # configs/mycat/schema.xml
DATABASES = ("db0", "db1", "db2")  # dn0..dn2
ORDER_IDS = range(101, 113)


def backend(database: str, statement: str) -> list[tuple]:
    return query(*BACKEND, database, statement)


@pytest.fixture
def tables(lab: Lab):
    needs_mycat_release(lab, "it does not shard (give `stackha up --mycat-tarball` a MyCat "
                             "1.6 release)")
    for ddl in ("create table if not exists region (id int primary key, name varchar(20))",
                "create table if not exists orders (id int primary key, customer_id int, "
                "total int)",
                "create table if not exists order_items (id int primary key, order_id int, "
                "sku varchar(20))"):
        sql(ddl)  # MyCat sends a sharded or global table's DDL to each of its dataNodes
    yield
    for table in ("order_items", "orders", "region"):
        sql(f"delete from {table}")


def test_the_example_tables_exist_on_every_datanode(tables):
    for database in DATABASES:
        names = {row[0] for row in backend(database, "show tables")}
        assert {"region", "orders", "order_items"} <= names, (database, names)


def test_each_order_lands_in_the_database_its_rule_names(tables):
    # rule.xml: orders-by-id, PartitionByMod count 3: id mod 3 picks dn0, dn1 or dn2.
    for order_id in ORDER_IDS:
        sql(f"insert into orders (id, customer_id, total) values ({order_id}, 7, "
            f"{order_id * 10})")
    for order_id in ORDER_IDS:
        home = DATABASES[order_id % 3]
        for database in DATABASES:
            found = backend(database, f"select total from orders where id = {order_id}")
            assert found == ([(order_id * 10,)] if database == home else []), \
                (order_id, database, found)
    # Read back through MyCat: it merges the three dataNodes' rows.
    assert sql("select count(*) from orders") == [(len(ORDER_IDS),)]
    assert sql("select total from orders where id = 105") == [(1050,)]


def test_child_rows_follow_their_order(tables):
    sql("insert into orders (id, customer_id, total) values (202, 1, 5)")
    sql("insert into order_items (id, order_id, sku) values (1, 202, 'pen')")
    # 202 mod 3 = 1: the item is in db1 with its order (ER sharding by joinKey).
    assert backend("db1", "select sku from order_items where order_id = 202") == [("pen",)]
    assert backend("db0", "select sku from order_items") == []
    assert backend("db2", "select sku from order_items") == []


def test_a_global_table_row_is_on_every_datanode(tables):
    sql("insert into region (id, name) values (1, 'north')")
    for database in DATABASES:
        assert backend(database, "select name from region where id = 1") == [("north",)]
