"""Pure: which files a node gets for each of its roles, from one published bundle."""

from __future__ import annotations

from stackha.model.bundle import ROLE_PREFIXES, Bundle
from stackha.model.spec import StackSpec
from stackha.mycat.myid import MYID_FILE, render_myid


def role_files(bundle: Bundle, role: str) -> dict[str, bytes]:
    """The role's files keyed by their path inside the role's target directory."""
    prefix = ROLE_PREFIXES.get(role, "")
    return {path[len(prefix):]: f.content for path, f in bundle.for_role(role).items()}


def node_files(bundle: Bundle, spec: StackSpec, node: str) -> dict[str, dict[str, bytes]]:
    """Files per role for ``node``; roles without files (director) map to nothing here."""
    found = spec.node(node)
    if found is None:
        return {}
    files = {role: role_files(bundle, role) for role in found.roles if role in ROLE_PREFIXES}
    myid = render_myid(spec, node)
    if myid is not None and "mycat" in files:
        # Per node: MyCat's ZooKeeper mode needs this node's own id next to the shared files.
        files["mycat"][MYID_FILE] = myid
    return files
