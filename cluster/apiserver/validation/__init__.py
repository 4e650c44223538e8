"""Validation of built-in kinds: the entry points the API server calls before storing an object.

`validate_create(obj)` and `validate_update(new, old)` take wire-form dicts (after `apply_defaults`)
and return the field errors Kubernetes would return, in Kubernetes' order and wording; an empty list
means the object may be stored. `invalid_message` builds the 422 Status message
('Deployment.apps "web" is invalid: [...]'). Dispatch is on (API group, kind); kinds not in the table
get ObjectMeta validation only. Functions are pure and never raise on malformed input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cluster.apiserver.validation import (
    apps,
    batch,
    certificates,
    cluster_policy,
    core,
    networking,
    pod,
    rbac,
    service,
    storage,
    volumes,
)
from cluster.apiserver.validation import names as _names
from cluster.apiserver.validation.fields import Cause, as_dict, go_quote, required
from cluster.apiserver.validation.meta import NameRule, validate_object_meta, validate_object_meta_update

__all__ = [
    "Cause",
    "KindRules",
    "group_of",
    "invalid_message",
    "qualified_kind",
    "status_details",
    "validate_create",
    "validate_update",
]

Validator = Callable[[dict[str, Any]], list[Cause]]
UpdateValidator = Callable[[dict[str, Any], dict[str, Any]], list[Cause]]


@dataclass(frozen=True, slots=True)
class KindRules:
    """How one kind is validated: its name syntax, create checks and extra update checks.

    `update` runs in addition to `create` on the new object, unless `update_replaces_create`.
    """

    name_rule: NameRule = _names.subdomain_name
    create: Validator | None = None
    update: UpdateValidator | None = None
    update_replaces_create: bool = False


_RULES: dict[tuple[str, str], KindRules] = {
    ("", "Namespace"): KindRules(_names.label_name, core.validate_namespace),
    ("", "Pod"): KindRules(
        create=pod.validate_pod, update=pod.validate_pod_update, update_replaces_create=True
    ),
    ("", "Node"): KindRules(
        create=core.validate_node, update=core.validate_node_update, update_replaces_create=True
    ),
    ("", "Service"): KindRules(
        _names.dns1035_name,
        service.validate_service,
        service.validate_service_update,
        update_replaces_create=True,
    ),
    ("", "Endpoints"): KindRules(create=service.validate_endpoints),
    ("", "ConfigMap"): KindRules(
        create=core.validate_config_map, update=core.validate_config_map_update, update_replaces_create=True
    ),
    ("", "Secret"): KindRules(
        create=core.validate_secret, update=core.validate_secret_update, update_replaces_create=True
    ),
    ("", "ServiceAccount"): KindRules(create=core.validate_service_account),
    ("", "Event"): KindRules(create=core.validate_event),
    ("", "PersistentVolume"): KindRules(
        create=volumes.validate_persistent_volume,
        update=volumes.validate_persistent_volume_update,
        update_replaces_create=True,
    ),
    ("", "PersistentVolumeClaim"): KindRules(
        create=volumes.validate_persistent_volume_claim,
        update=volumes.validate_persistent_volume_claim_update,
        update_replaces_create=True,
    ),
    ("", "ResourceQuota"): KindRules(create=core.validate_resource_quota),
    ("", "LimitRange"): KindRules(create=core.validate_limit_range),
    ("apps", "Deployment"): KindRules(create=apps.validate_deployment, update=apps.validate_selector_update),
    ("apps", "ReplicaSet"): KindRules(create=apps.validate_replica_set, update=apps.validate_selector_update),
    ("apps", "StatefulSet"): KindRules(
        create=apps.validate_stateful_set, update=apps.validate_stateful_set_update
    ),
    ("apps", "DaemonSet"): KindRules(create=apps.validate_daemon_set, update=apps.validate_selector_update),
    ("apps", "ControllerRevision"): KindRules(
        create=apps.validate_controller_revision, update=apps.validate_controller_revision_update
    ),
    ("batch", "Job"): KindRules(create=batch.validate_job, update=batch.validate_job_update),
    ("batch", "CronJob"): KindRules(create=batch.validate_cron_job),
    ("networking.k8s.io", "Ingress"): KindRules(create=networking.validate_ingress),
    ("networking.k8s.io", "IngressClass"): KindRules(
        create=networking.validate_ingress_class, update=networking.validate_ingress_class_update
    ),
    ("networking.k8s.io", "NetworkPolicy"): KindRules(create=networking.validate_network_policy),
    ("rbac.authorization.k8s.io", "Role"): KindRules(_names.path_segment_name, rbac.validate_role),
    ("rbac.authorization.k8s.io", "ClusterRole"): KindRules(
        _names.path_segment_name, rbac.validate_cluster_role
    ),
    ("rbac.authorization.k8s.io", "RoleBinding"): KindRules(
        _names.path_segment_name, rbac.validate_role_binding, rbac.validate_binding_update
    ),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): KindRules(
        _names.path_segment_name, rbac.validate_cluster_role_binding, rbac.validate_binding_update
    ),
    ("coordination.k8s.io", "Lease"): KindRules(create=cluster_policy.validate_lease),
    ("discovery.k8s.io", "EndpointSlice"): KindRules(create=service.validate_endpoint_slice),
    ("storage.k8s.io", "StorageClass"): KindRules(
        create=storage.validate_storage_class, update=storage.validate_storage_class_update
    ),
    ("storage.k8s.io", "CSIDriver"): KindRules(
        create=storage.validate_csi_driver, update=storage.validate_csi_driver_update
    ),
    ("storage.k8s.io", "CSINode"): KindRules(
        create=storage.validate_csi_node, update=storage.validate_csi_node_update
    ),
    ("storage.k8s.io", "VolumeAttachment"): KindRules(
        create=storage.validate_volume_attachment, update=storage.validate_volume_attachment_update
    ),
    ("storage.k8s.io", "CSIStorageCapacity"): KindRules(
        create=storage.validate_csi_storage_capacity, update=storage.validate_csi_storage_capacity_update
    ),
    ("scheduling.k8s.io", "PriorityClass"): KindRules(
        create=cluster_policy.validate_priority_class, update=cluster_policy.validate_priority_class_update
    ),
    ("policy", "PodDisruptionBudget"): KindRules(create=cluster_policy.validate_pod_disruption_budget),
    ("events.k8s.io", "Event"): KindRules(create=core.validate_events_v1_event),
    ("certificates.k8s.io", "CertificateSigningRequest"): KindRules(
        create=certificates.validate_csr, update=certificates.validate_csr_update
    ),
}

# The group a bare kind name belongs to, for qualifying it in messages (core wins for "Event").
_DEFAULT_GROUP: dict[str, str] = {}
for _group, _kind in _RULES:
    _DEFAULT_GROUP.setdefault(_kind, _group)
_DEFAULT_GROUP.update({"Binding": "", "Eviction": "policy", "Scale": "autoscaling", "PodTemplate": ""})
_DEFAULT_GROUP.update(
    {"HorizontalPodAutoscaler": "autoscaling", "CustomResourceDefinition": "apiextensions.k8s.io"}
)


def group_of(api_version: str) -> str:
    """ "apps/v1" -> "apps"; "v1" -> ""."""
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def qualified_kind(api_version: str, kind: str) -> str:
    """GroupKind.String(): "Pod", "Deployment.apps"."""
    group = group_of(api_version)
    return f"{kind}.{group}" if group else kind


def _rules_for(obj: dict[str, Any]) -> KindRules:
    key = (group_of(str(obj.get("apiVersion") or "")), str(obj.get("kind") or ""))
    return _RULES.get(key, KindRules())


def validate_create(obj: dict[str, Any], *, namespaced: bool) -> list[Cause]:
    """All field errors for creating `obj` (metadata first, then the kind's rules)."""
    rules = _rules_for(obj)
    causes = validate_object_meta(obj, namespaced, rules.name_rule)
    if rules.create is not None:
        causes += rules.create(obj)
    return causes


def validate_update(new: dict[str, Any], old: dict[str, Any], *, namespaced: bool) -> list[Cause]:
    """All field errors for replacing `old` by `new`: identity, immutability and the kind's rules.

    Callers fill in what the registry owns before calling (resourceVersion, allocated clusterIP).
    """
    rules = _rules_for(new)
    causes = validate_object_meta_update(new, old)
    nmeta = as_dict(new.get("metadata"))
    if namespaced and not nmeta.get("namespace") and not as_dict(old.get("metadata")).get("namespace"):
        causes.append(required("metadata.namespace"))
    if rules.create is not None and not (rules.update_replaces_create and rules.update is not None):
        causes += rules.create(new)
    if rules.update is not None:
        causes += rules.update(new, old)
    return causes


def _qualify(kind: str) -> str:
    if "." in kind or kind not in _DEFAULT_GROUP:
        return kind
    group = _DEFAULT_GROUP[kind]
    return f"{kind}.{group}" if group else kind


def invalid_message(kind: str, name: str, causes: list[Cause]) -> str:
    """apimachinery's NewInvalid message. `kind` may be bare ("Deployment") or qualified.

    One distinct cause prints bare; several print as "[a, b]" with duplicates dropped.
    """
    qualified = _qualify(kind)
    details: list[str] = []
    for cause in causes:
        text = cause.detail()
        if text not in details:
            details.append(text)
    head = f"{qualified} {go_quote(name)} is invalid"
    if not details:
        return head
    if len(details) == 1:
        return f"{head}: {details[0]}"
    return f"{head}: [{', '.join(details)}]"


def status_details(kind: str, name: str, causes: list[Cause]) -> dict[str, Any]:
    """`Status.details` for a 422 Invalid: group, kind, name and causes in wire form."""
    qualified = _qualify(kind)
    bare, _, group = qualified.partition(".")
    return {"name": name, "group": group, "kind": bare, "causes": [c.as_status_cause() for c in causes]}
