"""This node's keepalived: where it lives, and the one function that renders its file.

``stackha render keepalived`` and the agent both call ``keepalived_conf`` with the same
``VrrpSettings``, so what the command prints is what the agent writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stackha.keepalived.render import SCRIPT_USER, RenderOptions, render_keepalived
from stackha.model.spec import StackSpec

FIFO_NAME = "keepalived.fifo"


@dataclass(frozen=True)
class VrrpSettings:
    """Where this node's keepalived lives; the spec says everything else."""

    conf_dir: Path
    run_dir: Path
    stackha_command: str
    script_user: str = SCRIPT_USER
    interface: str | None = None
    ipvs: bool = False
    watch_vrids: bool = True
    # curl for keepalived's HTTP backstop probe; None runs `stackha check` (see render.py).
    curl: str | None = None

    @property
    def fifo(self) -> Path:
        return self.run_dir / FIFO_NAME


def render_options(vrrp: VrrpSettings) -> RenderOptions:
    return RenderOptions(stackha_command=vrrp.stackha_command, notify_fifo=str(vrrp.fifo),
                         script_user=vrrp.script_user, interface_override=vrrp.interface,
                         track_dir=str(vrrp.run_dir), curl=vrrp.curl)


def keepalived_conf(spec: StackSpec, node: str, vrrp: VrrpSettings, ipvs: bool = False) -> str:
    """The keepalived.conf this node runs; ``ipvs`` adds the director's virtual_server blocks
    (also when ``vrrp.ipvs`` says so)."""
    return render_keepalived(spec, node, render_options(vrrp), ipvs or vrrp.ipvs)
