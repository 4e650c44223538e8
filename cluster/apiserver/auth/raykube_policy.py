"""ClusterRoles and bindings for raykube's own components beyond Kubernetes' bootstrap policy (the DNS
and Ingress add-ons, the network plugin, controllers Kubernetes does not have). The RBAC bootstrap
(``bootstrap_policy``) reconciles these with Kubernetes' own at every API server start."""

from __future__ import annotations

from typing import Any


def cluster_roles() -> list[dict[str, Any]]:
    return []


def cluster_role_bindings() -> list[dict[str, Any]]:
    return []
