"""The Node authorizer (``--authorization-mode Node``, kube's ``plugin/pkg/auth/authorizer/node``):
what a node agent, as ``system:node:<name>`` in ``system:nodes``, may do.

Reads of Secrets, ConfigMaps, PersistentVolumeClaims, PersistentVolumes, ResourceClaims and
VolumeAttachments, and creating ServiceAccount tokens, are allowed only for objects related to the
node through the pods bound to it (``node_graph``); its Lease and CSINode only under its own name.
Everything else a node does is checked against the static node rules (``bootstrap_policy.node_rules``:
list and watch pods, services and nodes, its node's status, events, CSRs ...). When this authorizer
does not allow, it has no opinion: the next authorizer (RBAC) may still allow, as in Kubernetes.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.auth.authorizer import Decision, RequestAttributes, Rules
from cluster.apiserver.auth.bootstrap_policy import node_rules
from cluster.apiserver.auth.node_graph import NodeGraph
from cluster.apiserver.auth.rbac_rules import compile_rules, rules_allow
from cluster.apiserver.auth.user import NODE_PREFIX, UserInfo, node_of
from cluster.apiserver.resources import lookup
from cluster.apiserver.storage import list_prefix

NODE_LEASE_NAMESPACE = "kube-node-lease"
_GRAPH_KINDS = {
    ("", "secrets"): "secret",
    ("", "configmaps"): "configmap",
    ("", "persistentvolumeclaims"): "pvc",
    ("", "persistentvolumes"): "persistentvolume",
    ("resource.k8s.io", "resourceclaims"): "resourceclaim",
    ("storage.k8s.io", "volumeattachments"): "volumeattachment",
}
FOLLOWED = (("", "pods"), ("", "persistentvolumes"), ("storage.k8s.io", "volumeattachments"))

NO_OPINION = Decision.NO_OPINION


class NodeAuthorizer:
    def __init__(self, graph: NodeGraph | None = None) -> None:
        self.graph = graph or NodeGraph()
        self.rules = compile_rules(node_rules())

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        user = attrs.user
        if not user.name.startswith(NODE_PREFIX) or "system:nodes" not in user.groups:
            return NO_OPINION, ""
        node = node_of(user)
        if node is None:
            return NO_OPINION, f'unknown node for user "{user.name}"'
        if attrs.resource_request:
            key = (attrs.api_group, attrs.resource)
            kind = _GRAPH_KINDS.get(key)
            if kind in ("secret", "configmap"):
                return self._read_namespaced(node, kind, attrs)
            if kind == "pvc":
                if attrs.subresource == "status":
                    return self._status_update(node, kind, attrs)
                return self._get(node, kind, attrs)
            if kind is not None:
                return self._get(node, kind, attrs)
            if key == ("", "serviceaccounts"):
                return self._create_token(node, attrs)
            if key == ("coordination.k8s.io", "leases"):
                return self._lease(node, attrs)
            if key == ("storage.k8s.io", "csinodes"):
                return self._csinode(node, attrs)
        if rules_allow(attrs, self.rules):
            return Decision.ALLOW, ""
        return NO_OPINION, ""

    def rules_for(self, user: UserInfo, namespace: str) -> Rules:
        """Nodes' permissions cannot be listed (they depend on the pods bound to them)."""
        if node_of(user) is not None:
            return Rules(incomplete=True, error="node authorizer does not support user rule resolution")
        return Rules()

    # ---------------------------------------------------------------- kinds of requests

    def _related(self, node: str, kind: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if not attrs.name:
            return NO_OPINION, "No Object name found"
        if self.graph.related(node, kind, attrs.namespace, attrs.name):
            return Decision.ALLOW, ""
        return NO_OPINION, f"no relationship found between node '{node}' and this object"

    def _read_namespaced(self, node: str, kind: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "list", "watch"):
            return NO_OPINION, "can only read resources of this type"
        if attrs.subresource:
            return NO_OPINION, "cannot read subresource"
        if not attrs.namespace:
            return NO_OPINION, "can only read namespaced object of this type"
        return self._related(node, kind, attrs)

    def _get(self, node: str, kind: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb != "get":
            return NO_OPINION, "can only get individual resources of this type"
        if attrs.subresource:
            return NO_OPINION, "cannot get subresource"
        return self._related(node, kind, attrs)

    def _status_update(self, node: str, kind: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in ("update", "patch"):
            return NO_OPINION, "can only get/update/patch this type"
        return self._related(node, kind, attrs)

    def _create_token(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb != "create" or not attrs.name:
            return NO_OPINION, "can only create tokens for individual service accounts"
        if attrs.subresource != "token":
            return NO_OPINION, "can only create token subresource of serviceaccount"
        return self._related(node, "serviceaccount", attrs)

    def _lease(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return NO_OPINION, "can only get, create, update, patch, or delete a node lease"
        if attrs.namespace != NODE_LEASE_NAMESPACE:
            return NO_OPINION, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
        if attrs.verb != "create" and attrs.name != node:
            return NO_OPINION, "can only access node lease with the same name as the requesting node"
        return Decision.ALLOW, ""

    def _csinode(self, node: str, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb not in ("get", "create", "update", "patch", "delete"):
            return NO_OPINION, "can only get, create, update, patch, or delete a CSINode"
        if attrs.verb != "create" and attrs.name != node:
            return NO_OPINION, "can only access CSINode with the same name as the requesting node"
        return Decision.ALLOW, ""


def follow(graph: NodeGraph, caches: Any) -> list[Any]:
    """Keep ``graph`` current from the watch cache; returns (kind, cache) pairs for ``loaded``."""

    followed = []
    for group, plural in FOLLOWED:
        info = lookup(group, "v1", plural)
        assert info is not None
        cache = caches.for_prefix(list_prefix(info, None))

        def listener(event: Any, plural: str = plural, cache: Any = cache) -> None:
            if event is None:
                graph.reload(plural, list(cache.objects.items()))
            elif plural == "pods":
                if event.type == "DELETED":
                    graph.remove_pod(event.key)
                else:
                    graph.put_pod(event.key, event.obj)
            elif plural == "persistentvolumes":
                graph.remove_pv(event.prev) if event.type == "DELETED" else graph.put_pv(event.obj)
            elif event.type == "DELETED":
                graph.remove_attachment(event.prev)
            else:
                graph.put_attachment(event.obj)

        cache.listeners.append(listener)
        followed.append((plural, cache))
    return followed


async def loaded(graph: NodeGraph, followed: list[Any]) -> None:
    for plural, cache in followed:
        await cache.wait_ready()
        graph.reload(plural, list(cache.objects.items()))
