"""What one ReplicaSet sync should do, decided without I/O.

A sync happens in two steps, as in kube's ``syncReplicaSet``:

1. :func:`claim_pods` sorts the namespace's *active* pods (not Succeeded/Failed, not terminating)
   into those the ReplicaSet already owns and still selects, orphans to **adopt** (selected, no
   controller, not terminating) and owned pods to **release** (their labels stopped matching). A
   ReplicaSet that is being deleted neither adopts nor releases; pods controlled by anyone else are
   never touched. The caller performs the adoptions and releases and keeps the pods whose adoption
   succeeded.
2. :func:`scale` compares the owned pods with ``spec.replicas``: too few gives a number of pods to
   create, too many gives the pods to delete in :mod:`ranking` order. Either is capped at
   :data:`BURST_REPLICAS` per sync (kube's ``burstReplicas``), so a huge change is spread over several
   syncs, each waiting for the informer to observe the previous one (expectations).

Both functions are pure and deterministic; ``now`` only feeds the logarithmic age buckets of the
ranking.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cluster.controllers import pods as podutil
from cluster.controllers.replicaset.ranking import pods_to_delete
from cluster.machinery.labels import LabelSelector, label_selector_from_dict
from cluster.machinery.meta import object_meta

BURST_REPLICAS = 500
API_VERSION = "apps/v1"
KIND = "ReplicaSet"

Pod = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Claims:
    """The namespace's active pods as one ReplicaSet sees them."""

    owned: tuple[Pod, ...]  # controlled by this ReplicaSet and still selected
    adopt: tuple[Pod, ...]  # selected orphans: owned once the adoption PATCH succeeds
    release: tuple[Pod, ...]  # controlled by this ReplicaSet but no longer selected


@dataclass(frozen=True, slots=True)
class ScalePlan:
    create: int = 0
    delete: tuple[Pod, ...] = ()

    @property
    def idle(self) -> bool:
        return self.create == 0 and not self.delete


def selector_of(rs: Mapping[str, Any]) -> LabelSelector:
    """``spec.selector`` as a selector; raises ``SelectorError`` for a malformed one (no selector at
    all selects nothing, as ``LabelSelectorAsSelector(nil)``)."""
    return label_selector_from_dict((rs.get("spec") or {}).get("selector"))


def desired_replicas(rs: Mapping[str, Any]) -> int:
    """``spec.replicas``, defaulting to 1 as the API does."""
    value = (rs.get("spec") or {}).get("replicas")
    return 1 if value is None else max(int(value), 0)


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool(object_meta(obj).get("deletionTimestamp"))


def claim_pods(rs: Mapping[str, Any], pods: Iterable[Pod], selector: LabelSelector | None = None) -> Claims:
    """Sort ``pods`` (the whole namespace, any order) into owned, to-adopt and to-release.

    Inactive pods are ignored entirely: they neither count nor get adopted or released.
    """
    selector = selector if selector is not None else selector_of(rs)
    uid = object_meta(rs).get("uid")
    deleting = is_terminating(rs)
    owned: list[Pod] = []
    adopt: list[Pod] = []
    release: list[Pod] = []
    for pod in pods:
        if not podutil.is_pod_active(pod):
            continue
        ref = podutil.controller_ref(pod)
        matches = selector.matches_object(pod)
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches:
                owned.append(pod)
            elif not deleting:
                release.append(pod)
        elif matches and not deleting and not is_terminating(pod):
            adopt.append(pod)
    return Claims(tuple(owned), tuple(adopt), tuple(release))


def scale(
    rs: Mapping[str, Any],
    owned: Sequence[Pod],
    now: datetime,
    *,
    related: Iterable[Pod] = (),
    burst: int = BURST_REPLICAS,
) -> ScalePlan:
    """Pods to create or delete so ``owned`` (active, claimed pods) reaches ``spec.replicas``.

    ``related`` are the active pods of every ReplicaSet sharing this one's controller; they only
    steer which pods go first (colocation rank). The caller must not act on a ReplicaSet that is
    being deleted or whose expectations are still pending.
    """
    diff = len(owned) - desired_replicas(rs)
    if diff < 0:
        return ScalePlan(create=min(-diff, burst))
    if diff > 0:
        return ScalePlan(delete=tuple(pods_to_delete(owned, min(diff, burst), now, related)))
    return ScalePlan()


def adoption_patch(rs: Mapping[str, Any], pod: Pod) -> list[dict[str, Any]]:
    """A JSON patch making ``rs`` the controller of the orphan ``pod``.

    It first tests the pod's UID, so a pod deleted and recreated under the same name since the cache
    saw it is left alone (the PATCH fails with 422). When the cached pod has owner references the
    patch also tests they are unchanged and appends; when it has none, it tests the resourceVersion
    instead (JSON patch cannot test that a member is absent) and adds the list.
    """
    meta = object_meta(pod)
    ref = podutil.owner_reference(rs, API_VERSION, KIND)
    ops: list[dict[str, Any]] = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")}]
    refs = meta.get("ownerReferences")
    if refs:
        ops += [
            {"op": "test", "path": "/metadata/ownerReferences", "value": refs},
            {"op": "add", "path": "/metadata/ownerReferences/-", "value": ref},
        ]
    else:
        ops += [
            {"op": "test", "path": "/metadata/resourceVersion", "value": meta.get("resourceVersion")},
            {"op": "add", "path": "/metadata/ownerReferences", "value": [ref]},
        ]
    return ops


def release_patch(rs: Mapping[str, Any], pod: Pod) -> list[dict[str, Any]]:
    """A JSON patch removing ``rs``'s owner reference from ``pod`` (tested by the pod's UID and the
    reference's UID at the index the cache shows, so a changed pod makes the PATCH fail with 422)."""
    meta = object_meta(pod)
    rs_uid = object_meta(rs).get("uid")
    refs = meta.get("ownerReferences") or []
    index = next(i for i, r in enumerate(refs) if r.get("uid") == rs_uid)
    return [
        {"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
        {"op": "test", "path": f"/metadata/ownerReferences/{index}/uid", "value": rs_uid},
        {"op": "remove", "path": f"/metadata/ownerReferences/{index}"},
    ]
