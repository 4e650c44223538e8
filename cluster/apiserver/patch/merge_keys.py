"""Structural knowledge of the built-in kinds that strategic merge patch and server-side apply need.

Kubernetes declares it on Go struct fields: `patchStrategy`/`patchMergeKey` for strategic merge, and
`listType`/`listMapKey`/`structType`/`mapType` for server-side apply. This module restates those facts
(not the code) as a table keyed by (parent type, field), so a pod template resolves the same wherever it
is embedded: `spec.containers` of a Pod and `spec.jobTemplate.spec.template.spec.containers` of a
CronJob both reach (PodSpec, containers).

Invariants: a field that is not in the table has no strategy (lists are replaced whole by strategic merge
and are atomic for apply; maps merge key by key); `FieldSpec.elem` names the struct type of the field's
value or of its list elements, None when unknown.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """What a field's declarations say about patching it."""

    elem: str | None = None  # struct type of the value (or of each list element)
    strategies: frozenset[str] = frozenset()  # strategic merge: "merge", "retainKeys", "replace"
    merge_key: str | None = None  # strategic merge key of a list of objects
    list_type: str = "atomic"  # apply: "map" (associative by list_keys), "set" (primitives) or "atomic"
    list_keys: tuple[str, ...] = ()  # apply: the keys of a "map" list
    key_defaults: tuple[tuple[str, object], ...] = ()  # apply: defaults for omitted key fields
    atomic: bool = False  # apply: a struct or map owned and replaced as a whole

    @property
    def merges(self) -> bool:
        return "merge" in self.strategies


NO_SPEC = FieldSpec()


def _keyed(
    elem: str | None, key: str, *more_keys: str, retain: bool = False, **defaults: object
) -> FieldSpec:
    strategies = {"merge", "retainKeys"} if retain else {"merge"}
    return FieldSpec(
        elem=elem,
        strategies=frozenset(strategies),
        merge_key=key,
        list_type="map",
        list_keys=(key, *more_keys),
        key_defaults=tuple(sorted(defaults.items())),
    )


def _struct(elem: str, *, atomic: bool = False, strategies: frozenset[str] = frozenset()) -> FieldSpec:
    return FieldSpec(elem=elem, atomic=atomic, strategies=strategies)


_SET = FieldSpec(strategies=frozenset({"merge"}), list_type="set")
_ATOMIC_MAP = FieldSpec(atomic=True)
_RETAIN_KEYS = frozenset({"retainKeys"})
_CONDITIONS = _keyed(None, "type")


# (parent type, field) -> FieldSpec. Only fields that matter for merging or for nesting are listed.
FIELDS: dict[str, dict[str, FieldSpec]] = {
    "ObjectMeta": {
        "finalizers": _SET,
        "ownerReferences": _keyed(None, "uid"),
    },
    "PodTemplateSpec": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec")},
    "PodSpec": {
        "volumes": _keyed("Volume", "name", retain=True),
        "initContainers": _keyed("Container", "name"),
        "containers": _keyed("Container", "name"),
        "ephemeralContainers": _keyed("Container", "name"),
        "imagePullSecrets": _keyed(None, "name"),
        "hostAliases": _keyed(None, "ip"),
        "topologySpreadConstraints": FieldSpec(
            strategies=frozenset({"merge"}),
            merge_key="topologyKey",
            list_type="map",
            list_keys=("topologyKey", "whenUnsatisfiable"),
        ),
        "schedulingGates": _keyed(None, "name"),
        "resourceClaims": _keyed(None, "name", retain=True),
        "nodeSelector": _ATOMIC_MAP,
        "securityContext": _struct("PodSecurityContext"),
    },
    "PodSecurityContext": {},
    "Container": {
        "ports": _keyed(None, "containerPort", "protocol", protocol="TCP"),
        "env": _keyed(None, "name"),
        "volumeMounts": _keyed(None, "mountPath"),
        "volumeDevices": _keyed(None, "devicePath"),
        "resources": _struct("ResourceRequirements"),
    },
    "ResourceRequirements": {"claims": _keyed(None, "name")},
    "Volume": {},
    "PodStatus": {
        "conditions": _CONDITIONS,
        "podIPs": _keyed(None, "ip"),
        "hostIPs": _keyed(None, "ip"),
        "resourceClaimStatuses": _keyed(None, "name", retain=True),
    },
    "Pod": {"metadata": _struct("ObjectMeta"), "spec": _struct("PodSpec"), "status": _struct("PodStatus")},
    "PodTemplate": {"metadata": _struct("ObjectMeta"), "template": _struct("PodTemplateSpec")},
    "LabelSelector": {},
    "WorkloadStatus": {"conditions": _CONDITIONS},
    "DeploymentSpec": {
        "selector": _struct("LabelSelector", atomic=True),
        "template": _struct("PodTemplateSpec"),
        "strategy": _struct("DeploymentStrategy", strategies=_RETAIN_KEYS),
    },
    "DeploymentStrategy": {},
    "ReplicaSetSpec": {
        "selector": _struct("LabelSelector", atomic=True),
        "template": _struct("PodTemplateSpec"),
    },
    "StatefulSetSpec": {
        "selector": _struct("LabelSelector", atomic=True),
        "template": _struct("PodTemplateSpec"),
    },
    "DaemonSetSpec": {
        "selector": _struct("LabelSelector", atomic=True),
        "template": _struct("PodTemplateSpec"),
    },
    "ReplicationControllerSpec": {"selector": _ATOMIC_MAP, "template": _struct("PodTemplateSpec")},
    "JobSpec": {"selector": _struct("LabelSelector", atomic=True), "template": _struct("PodTemplateSpec")},
    "JobTemplateSpec": {"metadata": _struct("ObjectMeta"), "spec": _struct("JobSpec")},
    "CronJobSpec": {"jobTemplate": _struct("JobTemplateSpec")},
    "ServiceSpec": {
        "ports": _keyed(None, "port", "protocol", protocol="TCP"),
        "selector": _ATOMIC_MAP,
    },
    "NodeSpec": {"podCIDRs": _SET},
    "NodeStatus": {"conditions": _CONDITIONS, "addresses": _keyed(None, "type")},
    "PodDisruptionBudgetSpec": {"selector": _struct("LabelSelector", atomic=True)},
}


def _workload(spec_type: str) -> dict[str, FieldSpec]:
    return {
        "metadata": _struct("ObjectMeta"),
        "spec": _struct(spec_type),
        "status": _struct("WorkloadStatus"),
    }


for _kind, _spec in (
    ("Deployment", "DeploymentSpec"),
    ("ReplicaSet", "ReplicaSetSpec"),
    ("StatefulSet", "StatefulSetSpec"),
    ("DaemonSet", "DaemonSetSpec"),
    ("ReplicationController", "ReplicationControllerSpec"),
    ("Job", "JobSpec"),
    ("CronJob", "CronJobSpec"),
    ("Service", "ServiceSpec"),
    ("Node", "NodeSpec"),
    ("Namespace", "NamespaceSpec"),
    ("PersistentVolumeClaim", "PersistentVolumeClaimSpec"),
    ("PersistentVolume", "PersistentVolumeSpec"),
    ("PodDisruptionBudget", "PodDisruptionBudgetSpec"),
):
    FIELDS[_kind] = _workload(_spec)
    FIELDS.setdefault(_spec, {})
FIELDS["Node"]["status"] = _struct("NodeStatus")

# (API group, kind) -> root type, for the built-in kinds strategic merge patch supports.
ROOT_TYPES: dict[tuple[str, str], str] = {
    ("", "Pod"): "Pod",
    ("", "PodTemplate"): "PodTemplate",
    ("", "ReplicationController"): "ReplicationController",
    ("", "Service"): "Service",
    ("", "Node"): "Node",
    ("", "Namespace"): "Namespace",
    ("", "PersistentVolumeClaim"): "PersistentVolumeClaim",
    ("", "PersistentVolume"): "PersistentVolume",
    ("apps", "Deployment"): "Deployment",
    ("apps", "ReplicaSet"): "ReplicaSet",
    ("apps", "StatefulSet"): "StatefulSet",
    ("apps", "DaemonSet"): "DaemonSet",
    ("batch", "Job"): "Job",
    ("batch", "CronJob"): "CronJob",
    ("policy", "PodDisruptionBudget"): "PodDisruptionBudget",
}

# Built-in kinds with no special fields below metadata; objects of unknown kinds get this root too.
GENERIC_ROOT = "Object"
FIELDS[GENERIC_ROOT] = {"metadata": _struct("ObjectMeta")}

BUILTIN_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "scheduling.k8s.io",
        "node.k8s.io",
        "certificates.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
        "authorization.k8s.io",
        "authentication.k8s.io",
        "flowcontrol.apiserver.k8s.io",
    }
)


def api_group(api_version: str) -> str:
    """The group part of an apiVersion: 'apps/v1' -> 'apps', 'v1' -> ''."""
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def root_type(kind_key: tuple[str, str]) -> str:
    """The root type for (apiVersion, kind); unknown kinds get the generic root (metadata only)."""
    api_version, kind = kind_key
    return ROOT_TYPES.get((api_group(api_version), kind), GENERIC_ROOT)


def supports_strategic_merge(kind_key: tuple[str, str]) -> bool:
    """Whether Kubernetes accepts strategic merge patches for the kind (built-in groups only; custom
    resources answer 415 Unsupported Media Type)."""
    return api_group(kind_key[0]) in BUILTIN_GROUPS


def field_spec(parent_type: str | None, field: str) -> FieldSpec:
    """The declarations of `field` inside a value of `parent_type` (NO_SPEC when unknown)."""
    if parent_type is None:
        return NO_SPEC
    return FIELDS.get(parent_type, {}).get(field, NO_SPEC)
