"""Who may do what in stackha's tree: the designed ACL of every znode, and what differs.

::

    <base>, config, config/current, config/versions, config/versions/<n>, status
        coordinator ALL; every registered node READ
    config/versions/<n>/<role>     coordinator ALL; the nodes that have <role> READ
    status/<node>                  coordinator ALL; <node> READ|CREATE|DELETE
    status/<node>/report           ephemeral, made by <node>: <node> READ|WRITE; the
                                   coordinator and every other node READ
    control, control/switchover, control/maintenance and their children (one request per
    group or node)           coordinator ALL; every registered node READ (agents obey
                             them, so nobody else may write one)

ZooKeeper's CREATE on a parent allows any child name, so a node's status lives below a
parent that only that node may create in; the coordinator makes one per node and nobody
can report for a node that is not theirs. Pure: kazoo's ACL values, no client calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from kazoo.security import ACL, Id, Permissions

READ, WRITE = Permissions.READ, Permissions.WRITE
CREATE, DELETE, ADMIN = Permissions.CREATE, Permissions.DELETE, Permissions.ADMIN
ALL = Permissions.ALL
REPORT = "report"
_LETTERS = ((READ, "r"), (WRITE, "w"), (CREATE, "c"), (DELETE, "d"), (ADMIN, "a"))


def perms_text(perms: int) -> str:
    return "".join(letter for bit, letter in _LETTERS if perms & bit) or "none"


def acl_text(acl: ACL) -> str:
    return f"{acl.id.scheme}:{acl.id.id}:{perms_text(acl.perms)}"


@dataclass(frozen=True)
class TreeAccess:
    """The identities of one cluster: the coordinator's digest id and each node's."""

    coordinator: str                    # "user:base64digest"
    nodes: Mapping[str, str]            # node -> digest id (nodes of the spec, registered)
    roles: Mapping[str, tuple[str, ...]]  # node -> its roles in the spec

    def _acl(self, grants: Mapping[str, int]) -> list[ACL]:
        return [ACL(perms, Id("digest", who)) for who, perms in grants.items()]

    def grants_config(self) -> dict[str, int]:
        return {self.coordinator: ALL, **{d: READ for d in self.nodes.values()}}

    def grants_role(self, role: str) -> dict[str, int]:
        return {self.coordinator: ALL, **{d: READ for n, d in self.nodes.items()
                                          if role in self.roles.get(n, ())}}

    def grants_node_status(self, node: str) -> dict[str, int]:
        return {self.coordinator: ALL, self.nodes[node]: READ | CREATE | DELETE}

    def grants_report(self, node: str) -> dict[str, int]:
        return {self.coordinator: READ, **{d: READ for d in self.nodes.values()},
                self.nodes[node]: READ | WRITE}

    def config_acl(self) -> list[ACL]:
        return self._acl(self.grants_config())

    def role_acl(self, role: str) -> list[ACL]:
        return self._acl(self.grants_role(role))

    def node_status_acl(self, node: str) -> list[ACL]:
        return self._acl(self.grants_node_status(node))

    def report_plan(self, node: str) -> bytes:
        """status/<node>'s data: the ACL its agent gives its report. Agents cannot learn
        other identities from getACL (ZooKeeper 3.8 shows digests as ``user:x`` to a client
        without ADMIN on the node), so the coordinator writes them down; a digest is a
        hash, not a password."""
        return json.dumps({"report_acl": [{"id": who, "perms": perms_text(p)}
                                          for who, p in self.grants_report(node).items()]},
                          sort_keys=True).encode()


def report_acl_from_plan(data: bytes | None, own: str) -> list[ACL] | None:
    """The ACL an agent gives its report, from its status parent's data; None: no plan.
    Whatever the plan says, only the agent's own identity gets more than READ."""
    try:
        raw = json.loads((data or b"").decode("utf-8") or "{}").get("report_acl")
    except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(raw, list):
        return None
    acl = [ACL(READ | WRITE, Id("digest", own))]
    for entry in raw:
        who = entry.get("id") if isinstance(entry, dict) else None
        if isinstance(who, str) and ":" in who and who != own:
            acl.append(ACL(READ, Id("digest", who)))
    return acl


@dataclass(frozen=True)
class AclFinding:
    path: str
    found: tuple[ACL, ...]
    foreign: tuple[ACL, ...]   # grants to someone not designed, or more than designed
    stale: tuple[ACL, ...]     # a known user's old digest (rotation) with no more rights
    missing: tuple[str, ...]   # designed identities without their rights

    @property
    def owned(self) -> bool:
        return not self.foreign

    def line(self) -> str:
        shown = ", ".join(acl_text(a) for a in self.foreign)
        return (f"{self.path}: ACL grants {shown}, which stackha did not design; nothing "
                "published (run `stackha init` as the coordinator to take the tree over)")


def compare(path: str, found: list[ACL], designed: Mapping[str, int],
            known_users: frozenset[str]) -> AclFinding | None:
    """How ``found`` differs from ``designed`` (digest id -> perms); None: as designed."""
    foreign: list[ACL] = []
    stale: list[ACL] = []
    have: dict[str, int] = {}
    by_user = {who.split(":", 1)[0]: perms for who, perms in designed.items()}
    for acl in found:
        who = acl.id.id
        if acl.id.scheme != "digest":
            foreign.append(acl)
        elif who in designed:
            have[who] = have.get(who, 0) | acl.perms
            if acl.perms & ~designed[who]:
                foreign.append(acl)
        elif not acl.perms & ~by_user.get(who.split(":", 1)[0],
                                          READ if who.split(":", 1)[0] in known_users else 0):
            stale.append(acl)
        else:
            foreign.append(acl)
    missing = tuple(who for who, perms in designed.items() if have.get(who, 0) != perms)
    if not foreign and not stale and not missing:
        return None
    return AclFinding(path, tuple(found), tuple(foreign), tuple(stale), missing)
