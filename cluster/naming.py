"""Names every raykube part agrees on: the Ray namespace of a control plane and the Kubernetes name
of each Ray node.

A leaf (no raykube or Ray imports): the bootstrap, the controller manager and the node-agent
deployment all name nodes the same way, and none of them has to import another for it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_NAMESPACE = "raykube"


def default_namespace() -> str:
    """The Ray namespace when none is given: ``$RAYKUBE_NAMESPACE`` or ``raykube``."""
    return os.environ.get("RAYKUBE_NAMESPACE", DEFAULT_NAMESPACE)


def node_names(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Ray node id -> Kubernetes node name: the host name, made unique with the Ray node id's first
    eight characters when several Ray nodes share a host (``ray.cluster_utils`` test clusters).
    ``nodes`` are ``ray.nodes()`` entries (``NodeID``, ``NodeManagerHostname``)."""
    nodes = list(nodes)
    hosts: dict[str, int] = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        hosts[host] = hosts.get(host, 0) + 1
    names = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        names[node["NodeID"]] = host if hosts[host] == 1 else f"{host}-{node['NodeID'][:8]}"
    return names
