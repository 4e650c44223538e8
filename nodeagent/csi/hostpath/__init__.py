"""The built-in CSI driver ``hostpath.csi.raykube.io``: node-local volumes (plugin.py)."""

from nodeagent.csi.hostpath.plugin import HostPathPlugin
from nodeagent.csi.hostpath.rules import DRIVER_NAME, TOPOLOGY_NODE_KEY

__all__ = ["DRIVER_NAME", "TOPOLOGY_NODE_KEY", "HostPathPlugin"]
