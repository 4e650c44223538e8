"""Which nodes a DaemonSet's pod belongs on, and the pod spec changes that pin a pod to its node.

kube-controller-manager's ``NodeShouldRunDaemonPod`` answers two questions per (node, DaemonSet):

* **should run**: the node has no pod yet and one should be created there: the template's ``nodeName``
  (if any) is this node, its ``nodeSelector`` and required node affinity match the node, and every
  ``NoSchedule``/``NoExecute`` taint of the node is tolerated;
* **should continue running**: a pod already there may stay: the same, except that only untolerated
  ``NoExecute`` taints evict (a new ``NoSchedule`` taint keeps new pods off, not running ones).

Both are judged with the pod the controller would create, i.e. the template plus kube's default
DaemonSet tolerations (:data:`DEFAULT_TOLERATIONS`: not-ready and unreachable NoExecute forever, the
pressure and unschedulable NoSchedule taints, and network-unavailable for ``hostNetwork`` pods), so a
cordoned or NotReady node keeps its daemon pod.

Since kube 1.12 the default scheduler binds daemon pods: each pod is created with a required node
affinity ``matchFields metadata.name In [<node>]`` (:func:`pin_to_node`, kube's
``ReplaceDaemonSetPodNodeNameNodeAffinity``) and :func:`target_node_name` reads it back for pods
not yet bound; :func:`new_daemon_pod` builds the whole pod. Pure: no I/O; inputs are wire-form
dicts and are never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.controllers.history import POD_REVISION_LABEL
from cluster.controllers.pods import pod_from_template
from cluster.machinery.taints import NO_EXECUTE, NO_SCHEDULE, find_untolerated_taint

Obj = Mapping[str, Any]

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


def _exists(key: str, effect: str) -> dict[str, Any]:
    return {"key": key, "operator": "Exists", "effect": effect}


# In the order kube adds them; none has tolerationSeconds, so NoExecute taints never evict.
DEFAULT_TOLERATIONS: tuple[dict[str, Any], ...] = (
    _exists(NOT_READY, "NoExecute"),
    _exists(UNREACHABLE, "NoExecute"),
    _exists(DISK_PRESSURE, "NoSchedule"),
    _exists(MEMORY_PRESSURE, "NoSchedule"),
    _exists(PID_PRESSURE, "NoSchedule"),
    _exists(UNSCHEDULABLE, "NoSchedule"),
)
HOST_NETWORK_TOLERATIONS: tuple[dict[str, Any], ...] = (_exists(NETWORK_UNAVAILABLE, "NoSchedule"),)

NODE_NAME_FIELD = "metadata.name"


@dataclass(frozen=True, slots=True)
class Eligibility:
    should_run: bool
    should_continue_running: bool


# -- tolerations ----------------------------------------------------------------------------------


def _same_toleration(a: Obj, b: Obj) -> bool:
    """v1 ``Toleration.MatchToleration``: the same key, operator, value and effect."""
    return all((a.get(f) or "") == (b.get(f) or "") for f in ("key", "operator", "value", "effect"))


def with_daemon_tolerations(spec: Obj) -> dict[str, Any]:
    """A copy of a pod spec with the default DaemonSet tolerations added; a toleration the spec already
    has with the same key/operator/value/effect is replaced in place (dropping its tolerationSeconds),
    as kube's ``AddOrUpdateTolerationInPodSpec`` does."""
    out = copy.deepcopy(dict(spec))
    tolerations: list[dict[str, Any]] = list(out.get("tolerations") or [])
    wanted = DEFAULT_TOLERATIONS + (HOST_NETWORK_TOLERATIONS if out.get("hostNetwork") else ())
    for toleration in wanted:
        at = next((i for i, t in enumerate(tolerations) if _same_toleration(t, toleration)), None)
        if at is None:
            tolerations.append(dict(toleration))
        else:
            tolerations[at] = dict(toleration)
    out["tolerations"] = tolerations
    return out


# -- node affinity ----------------------------------------------------------------------------------


class _Invalid(ValueError):
    """A requirement kube refuses to parse; its term then matches no node."""


def _label_requirement(req: Obj, labels: Mapping[str, str]) -> bool:
    key, operator = str(req.get("key") or ""), str(req.get("operator") or "")
    values = [str(v) for v in req.get("values") or []]
    if operator in ("In", "NotIn"):
        if not values:
            raise _Invalid(key)
        found = key in labels and labels[key] in values
        return found if operator == "In" else not found
    if operator in ("Exists", "DoesNotExist"):
        if values:
            raise _Invalid(key)
        return (key in labels) == (operator == "Exists")
    if operator in ("Gt", "Lt"):
        if len(values) != 1:
            raise _Invalid(key)
        try:
            bound = int(values[0])
        except ValueError:
            raise _Invalid(key) from None
        try:
            have = int(labels[key])
        except (KeyError, ValueError):
            return False
        return have > bound if operator == "Gt" else have < bound
    raise _Invalid(key)


def _field_requirement(req: Obj, node_name: str) -> bool:
    operator = req.get("operator")
    values = [str(v) for v in req.get("values") or []]
    if req.get("key") != NODE_NAME_FIELD or operator not in ("In", "NotIn") or len(values) != 1:
        raise _Invalid(str(req.get("key")))
    return (node_name == values[0]) == (str(operator) == "In")


def _term_matches(term: Obj, labels: Mapping[str, str], node_name: str) -> bool:
    expressions, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not expressions and not fields:
        return False  # an empty term selects nothing
    try:
        return all(_label_requirement(r, labels) for r in expressions) and all(
            _field_requirement(r, node_name) for r in fields
        )
    except _Invalid:
        return False


def matches_node(pod_spec: Obj, node: Obj) -> bool:
    """The spec's ``nodeSelector`` and required node affinity (terms ORed) both match ``node``."""
    meta = node.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    name = str(meta.get("name") or "")
    selector: Mapping[str, str] = pod_spec.get("nodeSelector") or {}
    if any(labels.get(key) != value for key, value in selector.items()):
        return False
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if affinity is None:
        return True
    return any(_term_matches(term, labels, name) for term in affinity.get("nodeSelectorTerms") or [])


# -- the decision ----------------------------------------------------------------------------------


def daemon_pod_spec(daemon_set: Obj) -> dict[str, Any]:
    """The pod spec the controller creates from: the template's spec plus the default tolerations."""
    template = (daemon_set.get("spec") or {}).get("template") or {}
    return with_daemon_tolerations(template.get("spec") or {})


def node_should_run(node: Obj, daemon_set: Obj, pod_spec: Obj | None = None) -> Eligibility:
    """kube's ``NodeShouldRunDaemonPod``; pass ``pod_spec`` (``daemon_pod_spec``) to avoid recomputing it
    for every node."""
    spec = daemon_pod_spec(daemon_set) if pod_spec is None else pod_spec
    name = str((node.get("metadata") or {}).get("name") or "")
    if spec.get("nodeName") and spec.get("nodeName") != name:
        return Eligibility(False, False)
    if not matches_node(spec, node):
        return Eligibility(False, False)
    taints: Sequence[Obj] = (node.get("spec") or {}).get("taints") or []
    tolerations: Sequence[Obj] = spec.get("tolerations") or []
    if find_untolerated_taint(taints, tolerations, (NO_SCHEDULE, NO_EXECUTE)) is None:
        return Eligibility(True, True)
    return Eligibility(False, find_untolerated_taint(taints, tolerations, (NO_EXECUTE,)) is None)


# -- pinning pods to nodes ---------------------------------------------------------------------------


def _name_term(node_name: str) -> dict[str, Any]:
    return {"matchFields": [{"key": NODE_NAME_FIELD, "operator": "In", "values": [node_name]}]}


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def pin_to_node(pod_spec: Obj, node_name: str) -> dict[str, Any]:
    """A copy of ``pod_spec`` whose required node affinity selects only ``node_name``: the required
    terms are replaced by one ``matchFields metadata.name In [node]`` term; preferred terms and pod
    (anti-)affinity are kept. Safe because the node already matched the replaced terms."""
    out = copy.deepcopy(dict(pod_spec))
    affinity = _dict(out.get("affinity"))
    node_affinity = _dict(affinity.get("nodeAffinity"))
    required = _dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution"))
    required["nodeSelectorTerms"] = [_name_term(node_name)]
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    out["affinity"] = affinity
    return out


def target_node_name(pod: Obj) -> str | None:
    """The node a daemon pod is for: ``spec.nodeName`` once bound, else the first required term's
    ``metadata.name In [node]`` (kube's ``GetTargetNodeName``); None when neither says (or the value
    is not unique)."""
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for req in term.get("matchFields") or []:
            if req.get("key") == NODE_NAME_FIELD and req.get("operator") == "In":
                values = req.get("values") or []
                return str(values[0]) if len(values) == 1 else None
    return None


def new_daemon_pod(daemon_set: Obj, node_name: str, hash_: str) -> dict[str, Any]:
    """The pod to create for ``node_name`` (kube's ``CreatePodTemplate`` + the node affinity): the
    template with the default tolerations, the ``controller-revision-hash`` label, a controller
    reference to the DaemonSet, ``generateName: <ds>-`` and the pin to the node."""
    template = copy.deepcopy(dict((daemon_set.get("spec") or {}).get("template") or {}))
    meta = dict(template.get("metadata") or {})
    labels = dict(meta.get("labels") or {})
    if hash_:
        labels[POD_REVISION_LABEL] = hash_
    meta["labels"] = labels
    template["metadata"] = meta
    template["spec"] = pin_to_node(daemon_pod_spec(daemon_set), node_name)
    return pod_from_template(template, daemon_set, "apps/v1", "DaemonSet")
