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
HEAD_RESOURCE = "node:__internal_head__"  # a resource only Ray's head node has


def default_namespace() -> str:
    """The Ray namespace when none is given: ``$RAYKUBE_NAMESPACE`` or ``raykube``."""
    return os.environ.get("RAYKUBE_NAMESPACE", DEFAULT_NAMESPACE)


def node_names(nodes: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Ray node id -> Kubernetes node name: the host name, made unique with a short node id when
    several Ray nodes share a host (test clusters: ``ray.cluster_utils``, Ray's fake multi-node
    provider). Ray's head keeps the plain host name even then, so its Node keeps its name when a node
    joins on its host (the fake provider starts workers next to a head that was alone).
    ``nodes`` are ``ray.nodes()`` entries (``NodeID``, ``NodeManagerHostname``, ``Resources``)."""
    nodes = list(nodes)
    hosts: dict[str, int] = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        hosts[host] = hosts.get(host, 0) + 1
    names = {}
    for node in nodes:
        host = str(node.get("NodeManagerHostname") or socket.gethostname()).lower()
        alone = hosts[host] == 1 or HEAD_RESOURCE in (node.get("Resources") or {})
        names[node["NodeID"]] = host if alone else f"{host}-{short_node_id(node['NodeID'])}"
    return names


def short_node_id(node_id: str) -> str:
    """Eight characters that tell Ray node ids apart: the first eight, except for ids Ray makes for
    tests (``RAY_OVERRIDE_NODE_ID_FOR_TESTING``, the fake provider's ``fff...f0000<n>``), padded with
    ``f`` in front, whose last eight differ."""
    return node_id[-8:] if node_id.startswith("ffffffff") else node_id[:8]
