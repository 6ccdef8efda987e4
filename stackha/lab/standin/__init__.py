"""mycat-standin: a small MySQL-protocol server that stands in for MyCat 1.6.

MyCat itself cannot be downloaded where stackha is developed and tested, so this package
provides an honest substitute for the parts of MyCat that stackha depends on: logins from
``server.xml``, the SQL port passing queries to the ``writeHost`` of ``schema.xml``, and the
manager port commands stackha sends (``show @@heartbeat``, ``reload @@config``,
``reload @@config_all``, ``offline``, ``online``). It does not shard, route or merge: it is
not MyCat and never claims to be. Start it with ``python -m stackha.lab.standin --conf DIR``.
"""

from stackha.lab.standin.server import (
    NAME,
    ConfError,
    StandinConfig,
    StandinServer,
    StandinUser,
    expand_names,
    load_conf,
    parse_schema_xml,
    parse_server_xml,
    run,
)

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
