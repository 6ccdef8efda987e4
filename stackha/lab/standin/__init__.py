"""mycat-standin: a small MySQL-protocol server that stands in for MyCat 1.6.

MyCat itself cannot be downloaded where stackha is developed and tested, so this package
provides an honest substitute for the parts of MyCat that stackha depends on: logins from
``server.xml``, the SQL port passing queries to the ``writeHost`` of ``schema.xml``, and the
manager port commands stackha sends (``show @@heartbeat``, ``reload @@config``,
``reload @@config_all``, ``offline``, ``online``). It does not shard, route or merge: it is
not MyCat and never claims to be. Start it with ``python -m stackha.lab.standin --conf DIR``.

What it does, read from a MyCat conf directory (``server.xml`` and ``schema.xml``):

* Logins: only the ``<user>`` accounts of ``server.xml`` with their passwords
  (mysql_native_password); anything else is refused with "access denied".
* SQL port (MyCat's 8066): every statement is passed unchanged to the first ``writeHost`` of
  the ``dataHost`` behind the **first dataNode** of the session's logical schema, using that
  dataNode's database. The stand-in does **not** shard: no routing by rule, no fan-out to the
  other dataNodes, no merging of results, no global sequences. ``show databases`` lists the
  user's schemas, ``use``/COM_INIT_DB switch between them, ``select user()`` and
  ``select database()`` are answered locally as MyCat does, and ``readOnly`` users cannot run
  writes (INSERT, UPDATE, DELETE, REPLACE, CREATE, DROP, ALTER, TRUNCATE, ...).
* Manager port (MyCat's 9066), same accounts: ``show @@heartbeat`` (runs each dataHost's
  heartbeat SQL against every writeHost now), ``show @@datasource``, ``show @@version``,
  ``reload @@config`` (users and schemas; dataHosts and dataNodes are kept, and so are backend
  connections), ``reload @@config_all`` (everything; refused while any SQL-port session is
  inside an open backend transaction), ``offline`` (SQL-port COM_PING fails and new SQL-port
  logins are refused; sessions already open keep working) and ``online``.

Limits worth knowing: prepared statements (COM_STMT_EXECUTE) only return string-typed columns
correctly, because rows are relayed as the backend's text bytes; column flags (UNSIGNED, ...)
are not relayed; ``usingDecrypt`` passwords are not supported.

The modules, bottom up: ``config`` (server.xml and schema.xml), ``sql`` (statement text and
answers), ``backends`` (MariaDB connections), ``sessions`` (shared state and one session per
client) and ``server`` (the ports, start and stop).
"""

from stackha.lab.standin.config import (
    NAME,
    ConfError,
    StandinConfig,
    StandinUser,
    expand_names,
    load_conf,
    parse_schema_xml,
    parse_server_xml,
)
from stackha.lab.standin.server import StandinServer, run

__all__ = [
    "NAME",
    "ConfError",
    "StandinConfig",
    "StandinServer",
    "StandinUser",
    "expand_names",
    "load_conf",
    "parse_schema_xml",
    "parse_server_xml",
    "run",
]
