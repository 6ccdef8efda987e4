"""Does the running MyCat run the files it was given? Asked on its manager port.

MyCat 1.6 can answer a reload with OK and keep running the old configuration: in ZooKeeper
mode a full reload that fails its backend check updates conf/ and leaves the old schema in
place without a word. So after each reload the agent compares what MyCat reports with what
the new files define:

- schemas: ``show @@database`` (one row per logical schema, column DATABASE);
- dataNodes: ``show @@datasource`` (column DATANODE: every dataNode with its hosts) and
  ``show @@datanode where schema = S`` (NAME, DATHOST as ``dataHost/database``; 1.6.6.1
  answers the bare ``show @@datanode`` with no rows);
- users: a login on the manager port as every user with the new password (MyCat checks
  manager logins against the loaded server.xml; there is no ``show @@user`` in 1.6).

``compare`` is pure; ``verify`` runs the commands.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stackha.model.retry import Retryable
from stackha.mycat.manager import ManagerClient, ManagerError, ManagerUnavailable
from stackha.mycat.validate.model import MycatModel


@dataclass(frozen=True)
class Expected:
    """What a MyCat that loaded the files reports: schemas, dataNodes, users' passwords."""

    schemas: frozenset[str]
    data_nodes: Mapping[str, str]  # name -> "dataHost/database", as show @@datanode says
    passwords: Mapping[str, str]

    @classmethod
    def of(cls, model: MycatModel) -> Expected:
        return cls(schemas=frozenset(model.schemas),
                   data_nodes={name: f"{host}/{database}"
                               for name, (host, database) in model.data_nodes.items()},
                   passwords={name: props.get("password", "")
                              for name, props in model.users.items()})


def _column(row: Mapping[str, Any], name: str) -> str:
    for key, value in row.items():
        if key.upper() == name:
            return "" if value is None else str(value)
    return ""


def _names(items: Iterable[str]) -> str:
    return ", ".join(sorted(items)) or "none"


def compare(expected: Expected, databases: list[Mapping[str, Any]],
            datasources: list[Mapping[str, Any]],
            datanodes: list[Mapping[str, Any]]) -> list[str]:
    """Pure: one line per difference between the rows MyCat sent and ``expected``:
    ``databases`` from show @@database, ``datasources`` from show @@datasource, ``datanodes``
    from show @@datanode where schema = ... (of every expected schema)."""
    problems = []
    running = {_column(r, "DATABASE") for r in databases} - {""}
    if running != set(expected.schemas):
        problems.append(f"MyCat runs schemas {_names(running)}, the files define "
                        f"{_names(expected.schemas)}")
    names = {_column(r, "DATANODE") for r in datasources} - {""}
    where_of = {_column(r, "NAME"): _column(r, "DATHOST") for r in datanodes}
    if names != set(expected.data_nodes):
        problems.append(f"MyCat runs dataNodes {_names(names)}, the files define "
                        f"{_names(expected.data_nodes)}")
    else:
        for name, where in sorted(expected.data_nodes.items()):
            # Only dataNodes a schema uses are listed with their dataHost/database.
            if where_of.get(name) and where_of[name] != where:
                problems.append(f"MyCat runs dataNode {name} on {where_of[name]}, the files "
                                f"say {where}")
    return problems


Client = Callable[[str, str], ManagerClient]


def verify(client: Client, expected: Expected, admin: str) -> str | None:
    """None when MyCat runs ``expected``; otherwise the reason, in one line. ``client(user,
    password)`` makes a manager client; ``admin`` is the user whose new password it uses for
    the show commands."""
    try:
        manager = client(admin, expected.passwords.get(admin, ""))
        problems = compare(expected, manager.databases(), manager.datasource(),
                           [row for schema in sorted(expected.schemas)
                            for row in manager.datanodes(schema)])
    except ManagerUnavailable as exc:
        # Not an answer: MyCat could not be asked (still starting, or busy), not "it runs
        # something else".
        return Retryable(f"MyCat did not say what it runs: {exc.message}")
    except ManagerError as exc:
        return f"MyCat did not say what it runs: {exc.message}"
    for user, password in sorted(expected.passwords.items()):
        if user == admin:
            continue  # it just logged in
        try:
            client(user, password).version()
        except ManagerUnavailable as exc:
            problems.append(f"user {user}: the manager port broke off: {exc.message}")
        except ManagerError as exc:
            problems.append(f"user {user} cannot log in with its new password "
                            f"(MyCat: {exc.message})")
    return "; ".join(problems) or None
