"""Pure: a MyCat node's ``conf/myid.properties``, which turns on MyCat's ZooKeeper mode.

MyCat 1.6 reads these keys from it: ``loadZk`` (read the configuration from ZooKeeper),
``zkURL`` (the connect string), ``clusterId`` (the layout lives in ``/mycat/<clusterId>``),
``myid`` (this node's id: ``command/<myid>`` and per-node files use it), ``clusterSize``,
``clusterNodes`` (every myid, comma separated) and ``type`` (``server``).
"""

from __future__ import annotations

from stackha.model.spec import StackSpec

MYID_FILE = "myid.properties"


def zk_url(spec: StackSpec) -> str:
    """The connect string MyCat uses: the spec's hosts, plus a chroot when the layout's root
    is below ``/mycat`` (MyCat always reads ``/mycat/...`` relative to it). MyCat's own hosts
    win: they name a plain port when stackha's are TLS."""
    settings = spec.mycat_zookeeper
    chroot = settings.chroot if settings is not None else ""
    hosts = settings.hosts if settings is not None and settings.hosts else spec.zookeeper.hosts
    return hosts + chroot


def _escape(value: str) -> str:
    # java.util.Properties: backslash escapes; '=' ':' '#' '!' need one in keys only, but
    # escaping a leading space or a backslash matters in values too.
    value = value.replace("\\", "\\\\")
    return "\\" + value if value.startswith(" ") else value


def render_myid(spec: StackSpec, node: str) -> bytes | None:
    """myid.properties for ``node``, or None when the spec does not enable MyCat's ZooKeeper
    mode or the node has no mycat role."""
    settings = spec.mycat_zookeeper
    found = spec.node(node)
    if settings is None or not settings.enabled or found is None or "mycat" not in found.roles:
        return None
    nodes = spec.mycat_nodes()
    lines = [
        "# Written by the stackha agent from the stack spec (mycat_zookeeper); edits are lost.",
        "loadZk=true",
        f"zkURL={_escape(zk_url(spec))}",
        f"clusterId={_escape(settings.cluster_id)}",
        f"myid={_escape(node)}",
        f"clusterSize={len(nodes)}",
        f"clusterNodes={_escape(','.join(nodes))}",
        "type=server",
    ]
    return ("\n".join(lines) + "\n").encode()
