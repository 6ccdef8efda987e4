"""What MyCat's three files define, as the validator hands it to the rest of stackha."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from stackha.mycat.validate.grammar import split_list


@dataclass(frozen=True)
class DbInstance:
    """One backend database server of a dataHost: a writeHost with its readHosts, or a readHost."""

    host: str
    url: str
    user: str
    password: str
    weight: int | None = None
    read_hosts: tuple[DbInstance, ...] = ()


@dataclass(frozen=True)
class MycatModel:
    """What the three files define, after range expansion. Read-only all the way down."""

    # schema name -> table names (childTables included) in document order
    schemas: Mapping[str, tuple[str, ...]]
    # schema name -> table name -> the dataNodes it lives on (childTables inherit their root's)
    table_data_nodes: Mapping[str, Mapping[str, tuple[str, ...]]]
    # dataNode name -> (dataHost name, database)
    data_nodes: Mapping[str, tuple[str, str]]
    # dataHost name -> its writeHosts, each carrying its readHosts
    data_hosts: Mapping[str, tuple[DbInstance, ...]]
    # dataHost name -> its attributes (balance, maxCon, dbType, ...) plus "heartbeat"
    data_host_settings: Mapping[str, Mapping[str, str]]
    # user name -> its properties (password, schemas, readOnly, defaultSchema, ...)
    users: Mapping[str, Mapping[str, str]]
    # tableRule name -> (column, function name)
    table_rules: Mapping[str, tuple[str, str]]
    # function name -> (Java class, its properties)
    functions: Mapping[str, tuple[str, Mapping[str, str]]]
    # <system> properties of server.xml
    system: Mapping[str, str]
    has_firewall: bool
    has_privileges: bool

    def user_schemas(self, user: str) -> tuple[str, ...]:
        return split_list(self.users.get(user, {}).get("schemas", ""))
