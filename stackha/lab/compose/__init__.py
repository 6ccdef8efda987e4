"""The docker compose lab: the whole stack of a spec on one machine (`stackha up`).

- ``render`` (pure): spec + backend + lab options -> the compose YAML.
- ``backend`` (pure): the MariaDB behind MyCat's dataHost, read from ``schema.xml``.
- ``secrets``: the lab's ZooKeeper credentials, generated once and kept in compose/.stackha/.
- ``engine``: the compose CLI and the Docker SDK (the only code here touching the system).
- ``progress`` (pure): how far the agents are, from their status nodes.
- ``commands``: `stackha up | down | logs` and the container part of `stackha status`.
"""
