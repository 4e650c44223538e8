"""Defaulting of built-in kinds: what the API server fills in before validation and storage.

`apply_defaults(obj)` returns a new dict (the input is never mutated) with the fields Kubernetes'
defaulting functions set for the object's (group, kind); it is idempotent, so an object read back
and applied again by kubectl produces no patch. Admission-time additions that a stock cluster makes
to Pods (service account, priority) live apart in `admission_defaults_pod`.
Kinds without defaults are returned as a plain copy.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from cluster.apiserver.defaults import core, pod, storage, workloads

__all__ = ["DEFAULTERS", "admission_defaults_pod", "apply_defaults"]

Defaulter = Callable[[dict[str, Any]], None]

DEFAULTERS: dict[tuple[str, str], Defaulter] = {
    ("", "Pod"): pod.default_pod,
    ("", "PodTemplate"): lambda obj: pod.default_pod_template(obj.get("template")),
    ("", "ReplicationController"): workloads.default_replica_set,
    ("", "Service"): core.default_service,
    ("", "Namespace"): core.default_namespace,
    ("", "Secret"): core.default_secret,
    ("", "PersistentVolumeClaim"): core.default_persistent_volume_claim,
    ("", "PersistentVolume"): core.default_persistent_volume,
    ("", "Node"): core.default_node,
    ("", "Endpoints"): core.default_endpoints,
    ("", "LimitRange"): core.default_limit_range,
    ("apps", "Deployment"): workloads.default_deployment,
    ("apps", "ReplicaSet"): workloads.default_replica_set,
    ("apps", "StatefulSet"): workloads.default_stateful_set,
    ("apps", "DaemonSet"): workloads.default_daemon_set,
    ("batch", "Job"): workloads.default_job,
    ("batch", "CronJob"): workloads.default_cron_job,
    ("networking.k8s.io", "Ingress"): core.default_ingress,
    ("networking.k8s.io", "IngressClass"): core.default_ingress_class,
    ("networking.k8s.io", "NetworkPolicy"): core.default_network_policy,
    ("discovery.k8s.io", "EndpointSlice"): core.default_endpoint_slice,
    ("scheduling.k8s.io", "PriorityClass"): core.default_priority_class,
    ("storage.k8s.io", "StorageClass"): core.default_storage_class,
    ("storage.k8s.io", "CSIDriver"): storage.default_csi_driver,
    ("storage.k8s.io", "VolumeAttachment"): storage.default_volume_attachment,
    ("rbac.authorization.k8s.io", "RoleBinding"): core.default_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): core.default_binding,
}


def _group(api_version: Any) -> str:
    text = str(api_version or "")
    return text.rpartition("/")[0] if "/" in text else ""


def apply_defaults(obj: dict[str, Any]) -> dict[str, Any]:
    """A defaulted deep copy of `obj`, dispatching on apiVersion's group and kind."""
    result = copy.deepcopy(obj)
    defaulter = DEFAULTERS.get((_group(obj.get("apiVersion")), str(obj.get("kind") or "")))
    if defaulter is not None:
        defaulter(result)
    return result


def admission_defaults_pod(pod_obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a Pod with the ServiceAccount and Priority admission additions applied. Call on
    create only, after `apply_defaults`."""
    result = copy.deepcopy(pod_obj)
    pod.admission_defaults(result)
    return result
