"""The autoscaler's decisions, without I/O: what to ask Ray's autoscaler for, and which nodes to release.

Scale-up. Ray's ``request_resources(bundles=...)`` is a floor on the cluster's *total* resources: Ray
bin-packs the bundles onto every node's total (not its free) resources and launches nodes for what
does not fit, and each call replaces the previous request. So the request is the whole demand: one
bundle per pod already bound to a node (pinned to that node with a ``ray.io/node-id`` selector, so it
counts against the capacity it really uses) plus one per pod the scheduler found ``Unschedulable``.
It is made only while such a pod exists and is cleared (an empty request) otherwise, so a request
never keeps an idle node alive. Pods pinned to one node (``spec.nodeName``, or a hostname / node-name
affinity) never ask: a new node would not help them, as in Kubernetes' cluster-autoscaler.

Scale-down follows cluster-autoscaler: a node (not a protected one: Ray's head and the control-plane
nodes hosting store replicas) that runs no pods but DaemonSet, mirror and control-plane ones, Ready,
for ``unneeded`` seconds while no pod waits for a scale-up, is released: tainted
``ToBeDeletedByClusterAutoscaler`` and cordoned, drained through the Eviction API, then its node
agents stop so Ray sees it idle and removes it after ``idle_timeout_minutes``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cluster.scheduler.framework.types import pod_requests

TO_BE_DELETED_TAINT = "ToBeDeletedByClusterAutoscaler"  # cluster-autoscaler's own taint key
SCALE_DOWN_DISABLED = "cluster-autoscaler.kubernetes.io/scale-down-disabled"
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CONTROL_PLANE_ANNOTATION = "raykube.io/ray-actor"  # the kube-system pods standing for our actors
RAY_NODE_TYPE_LABEL = "raykube.io/ray-node-type"  # on Nodes: the Ray node type (autoscaler node group)
RAY_NODE_GROUP = "ray.io/node-group"  # Ray's own label for the same (RAY_NODE_TYPE_NAME)
RAY_NODE_ID = "ray.io/node-id"
HOSTNAME_LABEL = "kubernetes.io/hostname"
# Labels every node has (or no Ray node type decides): dropped from a pod's selector, not mapped.
_UNIVERSAL_PREFIXES = (
    "kubernetes.io/",
    "beta.kubernetes.io/",
    "node.kubernetes.io/",
    "node-role.kubernetes.io/",
)
_TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True, slots=True)
class Bundle:
    """One pod's share of a ``request_resources`` call: Ray resources and a Ray label selector."""

    resources: Mapping[str, float]
    label_selector: Mapping[str, str] = field(default_factory=dict)


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def pod_ref(pod: Mapping[str, Any]) -> str:
    meta = _meta(pod)
    return f"{meta.get('namespace') or 'default'}/{meta.get('name', '')}"


def is_unschedulable(pod: Mapping[str, Any]) -> bool:
    """Pending, unbound, and the scheduler said ``PodScheduled=False reason Unschedulable``."""
    status = pod.get("status") or {}
    if (pod.get("spec") or {}).get("nodeName") or status.get("phase", "Pending") != "Pending":
        return False
    if _meta(pod).get("deletionTimestamp"):
        return False
    return any(
        c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable"
        for c in status.get("conditions") or []
    )


def ray_resources(pod: Mapping[str, Any]) -> dict[str, float]:
    """The pod's effective requests as Ray resources: cpu -> ``CPU``, memory -> ``memory`` (bytes),
    ``nvidia.com/gpu`` -> ``GPU``. Other extended resources have no Ray counterpart and are left out."""
    requests = pod_requests(dict(pod))
    out: dict[str, float] = {}
    if requests.milli_cpu:
        out["CPU"] = requests.milli_cpu / 1000
    if requests.memory:
        out["memory"] = float(requests.memory)
    gpus = requests.scalar.get("nvidia.com/gpu", 0)
    if gpus:
        out["GPU"] = float(gpus)
    return out


def _selector_value(operator: str, values: list[str]) -> str | None:
    """A Kubernetes match expression as a Ray label-selector value, or None when Ray has no such one."""
    if operator == "In" and len(values) == 1:
        return values[0]
    if operator == "In" and values:
        return f"in({','.join(values)})"
    if operator == "NotIn" and values:
        return f"!in({','.join(values)})"
    return None  # Exists, DoesNotExist, Gt, Lt: no Ray equivalent; the request goes without it


def _ray_key(key: str) -> str | None:
    if key == RAY_NODE_TYPE_LABEL:
        return RAY_NODE_GROUP
    if key.startswith(_UNIVERSAL_PREFIXES):
        return None
    return key  # our Nodes carry their Ray node's labels under the same keys


def _required_terms(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    affinity = ((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {}
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    return list(required.get("nodeSelectorTerms") or [])


def pinned_to_a_node(pod: Mapping[str, Any]) -> bool:
    """The pod can only run on one named node (``nodeName``, a hostname selector, or required node
    affinity naming hosts or ``metadata.name``): a new node never helps it."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName") or HOSTNAME_LABEL in (spec.get("nodeSelector") or {}):
        return True
    terms = _required_terms(pod)
    return bool(terms) and all(
        any(
            e.get("key") == HOSTNAME_LABEL and e.get("operator") == "In"
            for e in t.get("matchExpressions") or []
        )
        or any(e.get("key") == "metadata.name" for e in t.get("matchFields") or [])
        for t in terms
    )


def label_selector(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's node selector and required node affinity as a Ray label selector: the node type
    label becomes Ray's ``ray.io/node-group``, other non-well-known keys pass through (Ray labels are
    copied onto Nodes under their own keys). Several affinity terms are alternatives, which one Ray
    selector cannot say: then only ``nodeSelector`` is used."""
    selector: dict[str, str] = {}
    for key, value in ((pod.get("spec") or {}).get("nodeSelector") or {}).items():
        ray_key = _ray_key(key)
        if ray_key:
            selector[ray_key] = str(value)
    terms = _required_terms(pod)
    if len(terms) == 1:
        for expression in terms[0].get("matchExpressions") or []:
            ray_key = _ray_key(str(expression.get("key", "")))
            value = _selector_value(str(expression.get("operator")), list(expression.get("values") or []))
            if ray_key and value is not None:
                selector.setdefault(ray_key, value)
    return selector


def scale_up_request(pods: Iterable[Mapping[str, Any]], ray_node_ids: Mapping[str, str]) -> list[Bundle]:
    """The bundles for ``request_resources``: empty when no unpinned pod is unschedulable (clear the
    request), else one bundle per pod bound to a node of ``ray_node_ids`` (Node name -> Ray node
    id), pinned there, followed by one per unschedulable pod with its label selector."""
    pods = list(pods)
    waiting = [p for p in pods if is_unschedulable(p) and not pinned_to_a_node(p)]
    if not waiting:
        return []
    bundles = []
    for pod in pods:
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or node not in ray_node_ids or (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        resources = ray_resources(pod)
        if resources:
            bundles.append(Bundle(resources, {RAY_NODE_ID: ray_node_ids[node]}))
    for pod in waiting:
        bundles.append(Bundle(ray_resources(pod) or {"CPU": 0.001}, label_selector(pod)))
    return bundles


def triggering_pods(pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The pods a scale-up request is made for (those that get a ``TriggeredScaleUp`` event)."""
    return [p for p in pods if is_unschedulable(p) and not pinned_to_a_node(p)]


def _owned_by_daemonset(pod: Mapping[str, Any]) -> bool:
    return any(
        o.get("kind") == "DaemonSet" and o.get("controller") for o in _meta(pod).get("ownerReferences") or []
    )


def stays_on_node(pod: Mapping[str, Any]) -> bool:
    """A pod that does not keep its node needed and is not drained: DaemonSet, mirror (static) and
    control-plane pods, and finished ones."""
    annotations = _meta(pod).get("annotations") or {}
    return (
        _owned_by_daemonset(pod)
        or MIRROR_ANNOTATION in annotations
        or CONTROL_PLANE_ANNOTATION in annotations
        or (pod.get("status") or {}).get("phase") in _TERMINAL
    )


def pods_to_evict(node: str, pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """What draining ``node`` evicts: its pods but those that stay, and not those already going."""
    return [
        p
        for p in pods
        if (p.get("spec") or {}).get("nodeName") == node
        and not stays_on_node(p)
        and not _meta(p).get("deletionTimestamp")
    ]


def is_releasing(node: Mapping[str, Any]) -> bool:
    """The node carries the ``ToBeDeletedByClusterAutoscaler`` taint: it is being released."""
    return any(t.get("key") == TO_BE_DELETED_TAINT for t in (node.get("spec") or {}).get("taints") or [])


def _ready(node: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (node.get("status") or {}).get("conditions") or []
    )


def _blocks_scale_down(pod: Mapping[str, Any]) -> bool:
    return not stays_on_node(pod) or (_meta(pod).get("annotations") or {}).get(SAFE_TO_EVICT) == "false"


@dataclass(frozen=True, slots=True)
class ScaleDownPlan:
    """One pass's outcome: when each candidate node was first seen unneeded (carry it to the next
    pass) and the nodes to release now."""

    unneeded_since: dict[str, float]
    release: list[str]


def plan_scale_down(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    *,
    protected: set[str],
    unneeded_since: Mapping[str, float],
    now: float,
    unneeded: float,
) -> ScaleDownPlan:
    """Which Ready, unprotected, not yet releasing nodes have been unneeded for ``unneeded`` seconds
    (``now`` and the times in ``unneeded_since`` are on one monotonic clock). While a pod waits for
    a scale-up nothing is released (cluster-autoscaler skips scale-down while scaling up), and the
    clocks restart, so a node that just joined for such a pod is not released before it is used."""
    pods = list(pods)
    if any(is_unschedulable(p) and not pinned_to_a_node(p) for p in pods):
        return ScaleDownPlan({}, [])
    busy = {(p.get("spec") or {}).get("nodeName") for p in pods if _blocks_scale_down(p)}
    since: dict[str, float] = {}
    release = []
    for node in nodes:
        meta = _meta(node)
        name = str(meta.get("name", ""))
        if (
            name in protected
            or name in busy
            or not _ready(node)
            or is_releasing(node)
            or (meta.get("annotations") or {}).get(SCALE_DOWN_DISABLED) == "true"
        ):
            continue
        since[name] = unneeded_since.get(name, now)
        if now - since[name] >= unneeded:
            release.append(name)
    return ScaleDownPlan(since, sorted(release))


def release_patch(node: Mapping[str, Any], now_epoch: int) -> dict[str, Any]:
    """The merge patch that marks ``node`` for release: cordoned, and tainted as cluster-autoscaler
    does (value: the Unix time, effect NoSchedule), existing taints kept."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != TO_BE_DELETED_TAINT]
    taints.append({"key": TO_BE_DELETED_TAINT, "value": str(now_epoch), "effect": "NoSchedule"})
    return {"spec": {"unschedulable": True, "taints": taints}}


def restore_patch(node: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that undoes ``release_patch``: the taint goes, the node is schedulable again."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if t.get("key") != TO_BE_DELETED_TAINT]
    return {"spec": {"unschedulable": None, "taints": taints or None}}
