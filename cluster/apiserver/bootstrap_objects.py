"""Objects every cluster has from its first start: the system namespaces, the ``kubernetes`` Service
and the built-in PriorityClasses (``system-node-critical``, ``system-cluster-critical``)."""

from __future__ import annotations

import logging
from typing import Any

from cluster.apiserver.admission.priority import system_priority_classes
from cluster.apiserver.errors import StatusError
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import lookup

log = logging.getLogger("raykube.apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


async def _ensure(
    registry: Registry, group: str, plural: str, namespace: str | None, obj: dict[str, Any]
) -> None:
    info = lookup(group, "v1", plural)
    assert info is not None
    if await registry.store.exists(registry.key(info, namespace, obj["metadata"]["name"])):
        return
    try:
        await registry.create(info, namespace, obj)
    except StatusError as e:
        if e.code != 409:
            raise


async def ensure_system_objects(registry: Registry) -> None:
    for ns in SYSTEM_NAMESPACES:
        await _ensure(
            registry,
            "",
            "namespaces",
            None,
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        )
    await _ensure(
        registry,
        "",
        "services",
        "default",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": registry.services.kubernetes_ip,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            },
        },
    )
    for priority_class in system_priority_classes():  # system-node-critical, system-cluster-critical
        await _ensure(registry, "scheduling.k8s.io", "priorityclasses", None, priority_class)
