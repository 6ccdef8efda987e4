"""Test and benchmark harnesses (not shipped): a local ZooKeeper, network namespaces with
keepalived and LVS, real agents against real nginx. Used by tests/ and bench/."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_CONFIGS = ROOT / "configs"
# The digest credentials the harnesses' ZooKeeper trees are made with.
COORDINATOR = "coordinator:coordinator-secret"
AGENT = "agent:agent-secret"

# What nginx serves before an agent's first version: it must run for `nginx -s reload`.
BOOTSTRAP_CONF = """
pid nginx.pid;
error_log stderr warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "bootstrap\\n"; }}
    }}
}}
"""
