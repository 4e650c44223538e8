"""StatefulSet pod identity and storage: names, ordinals, labels, claims (pure).

A StatefulSet ``db`` owns pods ``db-<ordinal>`` for ordinals ``start .. start+replicas-1`` (``start``
is ``spec.ordinals.start``, 0 by default). Each pod's identity is fixed by its ordinal, whatever
revision it runs: its name, ``spec.hostname`` (the name), ``spec.subdomain`` (``spec.serviceName``) and
the labels ``statefulset.kubernetes.io/pod-name`` and ``apps.kubernetes.io/pod-index``. A deleted pod
is recreated with the same identity. Each volumeClaimTemplate ``data`` gives the pod a claim
``data-db-<ordinal>``, created before the pod and never deleted with it (retention.py decides when the
garbage collector may).

Objects are wire-form dicts; no function mutates its arguments.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from cluster.controllers.history import POD_REVISION_LABEL
from cluster.controllers.pods import pod_from_template

API_VERSION = "apps/v1"
KIND = "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

_ORDINAL_RE = re.compile(r"^(.*)-([0-9]+)$")

Obj = Mapping[str, Any]


def meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def spec(obj: Obj) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def parent_and_ordinal(pod: Obj) -> tuple[str, int]:
    """The StatefulSet name and ordinal a pod's name encodes; ``("", -1)`` when it encodes none."""
    match = _ORDINAL_RE.match(str(meta(pod).get("name") or ""))
    if match is None:
        return "", -1
    ordinal = int(match.group(2))
    if ordinal >= 2**31:
        return match.group(1), -1
    return match.group(1), ordinal


def ordinal_of(pod: Obj) -> int:
    return parent_and_ordinal(pod)[1]


def pod_name(sts: Obj, ordinal: int) -> str:
    return f"{meta(sts).get('name')}-{ordinal}"


def replicas_of(sts: Obj) -> int:
    value = spec(sts).get("replicas")
    return 1 if value is None else int(value)


def start_ordinal(sts: Obj) -> int:
    ordinals = spec(sts).get("ordinals") or {}
    return int(ordinals.get("start") or 0)


def end_ordinal(sts: Obj) -> int:
    """The highest ordinal in range (``start - 1`` when there are no replicas)."""
    return start_ordinal(sts) + replicas_of(sts) - 1


def in_ordinal_range(pod: Obj, sts: Obj) -> bool:
    ordinal = ordinal_of(pod)
    return start_ordinal(sts) <= ordinal <= end_ordinal(sts)


def is_member_of(sts: Obj, pod: Obj) -> bool:
    """The pod's name says it belongs to ``sts`` (``<sts>-<ordinal>``)."""
    parent, ordinal = parent_and_ordinal(pod)
    return ordinal >= 0 and parent == meta(sts).get("name")


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    """``<template>-<statefulset>-<ordinal>``."""
    return f"{meta(template).get('name')}-{meta(sts).get('name')}-{ordinal}"


def claim_templates(sts: Obj) -> list[Mapping[str, Any]]:
    return list(spec(sts).get("volumeClaimTemplates") or [])


def claims_for(sts: Obj, ordinal: int) -> dict[str, dict[str, Any]]:
    """The claims the pod at ``ordinal`` needs, by template name: the template with its name, the
    set's namespace and the selector's matchLabels added to its labels."""
    selector_labels = dict((spec(sts).get("selector") or {}).get("matchLabels") or {})
    claims: dict[str, dict[str, Any]] = {}
    for template in claim_templates(sts):
        claim = copy.deepcopy(dict(template))
        claim.pop("status", None)
        claim["apiVersion"] = "v1"
        claim["kind"] = "PersistentVolumeClaim"
        cmeta = dict(claim.get("metadata") or {})
        cmeta["name"] = claim_name(template, sts, ordinal)
        cmeta["namespace"] = meta(sts).get("namespace")
        cmeta["labels"] = {**(cmeta.get("labels") or {}), **selector_labels}
        claim["metadata"] = cmeta
        claims[str(meta(template).get("name"))] = claim
    return claims


def identity_matches(sts: Obj, pod: Obj) -> bool:
    """Name, namespace and identity labels agree with the pod's ordinal (kube's identityMatches)."""
    parent, ordinal = parent_and_ordinal(pod)
    labels = meta(pod).get("labels") or {}
    name = meta(pod).get("name")
    return (
        ordinal >= 0
        and parent == meta(sts).get("name")
        and meta(pod).get("namespace") == meta(sts).get("namespace")
        and labels.get(POD_NAME_LABEL) == name
        and labels.get(POD_INDEX_LABEL) == str(ordinal)
    )


def identity_labels(pod: Obj) -> dict[str, str]:
    name = str(meta(pod).get("name") or "")
    return {POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal_of(pod))}


def storage_matches(sts: Obj, pod: Obj) -> bool:
    """Every claim template is mounted as its per-ordinal claim."""
    ordinal = ordinal_of(pod)
    if ordinal < 0:
        return False
    volumes = {v.get("name"): v for v in spec(pod).get("volumes") or []}
    for template_name, claim in claims_for(sts, ordinal).items():
        source = (volumes.get(template_name) or {}).get("persistentVolumeClaim") or {}
        if source.get("claimName") != claim["metadata"]["name"]:
            return False
    return True


def revision_of(pod: Obj) -> str:
    """The ControllerRevision name the pod was made from (its ``controller-revision-hash`` label)."""
    return str((meta(pod).get("labels") or {}).get(POD_REVISION_LABEL) or "")


def new_pod(sts: Obj, template: Obj, ordinal: int, revision_name: str) -> dict[str, Any]:
    """The pod at ``ordinal`` built from ``template`` (a revision's pod template) with its identity,
    its claims as volumes (replacing template volumes of the same name) and its revision label."""
    pod = pod_from_template(template, sts, API_VERSION, KIND, name=pod_name(sts, ordinal))
    pod["metadata"]["namespace"] = meta(sts).get("namespace")
    labels = dict(pod["metadata"].get("labels") or {})
    labels.update(identity_labels(pod))
    if revision_name:
        labels[POD_REVISION_LABEL] = revision_name
    pod["metadata"]["labels"] = labels
    pod_spec = pod["spec"]
    pod_spec["hostname"] = pod["metadata"]["name"]
    service = spec(sts).get("serviceName")
    if service:
        pod_spec["subdomain"] = service
    claims = claims_for(sts, ordinal)
    volumes = [
        {"name": name, "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
        for name, claim in claims.items()
    ]
    volumes += [v for v in pod_spec.get("volumes") or [] if v.get("name") not in claims]
    if volumes:
        pod_spec["volumes"] = volumes
    return pod
