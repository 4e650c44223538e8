"""persistentVolumeClaimRetentionPolicy: which ownerReferences a StatefulSet's claims carry (pure).

Claims are never deleted by the StatefulSet controller itself. The policy is carried out by owner
references that the garbage collector follows, as kube-controller-manager does:

=============  ===========  ==========================================================
whenScaled     whenDeleted  ownerReferences on the claim of a pod
=============  ===========  ==========================================================
Retain         Retain       none (the default: claims outlive everything)
Retain         Delete       the StatefulSet (the claim goes when the set is deleted)
Delete         Retain       the pod, only once the pod is scaled down (out of range)
Delete         Delete       the pod when scaled down, the StatefulSet otherwise
=============  ===========  ==========================================================

References are controller references. A claim referring to a previous StatefulSet or pod of the same
name (a different uid: "stale") is left alone; a claim controlled by something else is not given our
references (and ours are removed from it) unless the policy is Retain/Retain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cluster.controllers.pods import owner_reference
from cluster.controllers.statefulset.identity import API_VERSION, KIND, in_ordinal_range, meta, spec

RETAIN = "Retain"
DELETE = "Delete"

Obj = Mapping[str, Any]


def policy(sts: Obj) -> tuple[str, str]:
    """``(whenScaled, whenDeleted)``; anything but ``Delete`` counts as ``Retain``."""
    raw = spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    scaled = DELETE if raw.get("whenScaled") == DELETE else RETAIN
    deleted = DELETE if raw.get("whenDeleted") == DELETE else RETAIN
    return scaled, deleted


def _refs(claim: Obj) -> list[Mapping[str, Any]]:
    return list(meta(claim).get("ownerReferences") or [])


def _matches(ref: Obj, obj: Obj, api_version: str, kind: str) -> bool:
    return (
        ref.get("apiVersion") == api_version
        and ref.get("kind") == kind
        and ref.get("name") == meta(obj).get("name")
    )


def _uid(obj: Obj) -> str:
    return str(meta(obj).get("uid") or "")


def has_owner_ref(claim: Obj, owner: Obj) -> bool:
    uid = _uid(owner)
    return bool(uid) and any(r.get("uid") == uid for r in _refs(claim))


def has_stale_owner_ref(claim: Obj, owner: Obj, api_version: str, kind: str) -> bool:
    """The first reference naming ``owner`` carries another uid (a previous object of that name)."""
    for ref in _refs(claim):
        if _matches(ref, owner, api_version, kind):
            return ref.get("uid") != _uid(owner)
    return False


def has_unexpected_controller(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """Under a deleting policy: a controller that is neither this set nor this pod (or a reference to
    them with the wrong uid)."""
    if policy(sts) == (RETAIN, RETAIN):
        return False
    for ref in _refs(claim):
        if _matches(ref, sts, API_VERSION, KIND):
            if ref.get("uid") != _uid(sts):
                return True
            continue
        if _matches(ref, pod, "v1", "Pod"):
            if ref.get("uid") != _uid(pod):
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def _has_non_controller_owner(claim: Obj, sts: Obj, pod: Obj) -> bool:
    uids = {_uid(sts), _uid(pod)} - {""}
    return any(r.get("uid") in uids and not r.get("controller") for r in _refs(claim))


def claim_owner_up_to_date(claim: Obj, sts: Obj, pod: Obj) -> bool:
    """True when the claim's references already follow the policy for ``pod`` (or must not be
    touched: stale references, or another controller and none of ours)."""
    if has_stale_owner_ref(claim, sts, API_VERSION, KIND) or has_stale_owner_ref(claim, pod, "v1", "Pod"):
        return True
    if has_unexpected_controller(claim, sts, pod):
        return not (has_owner_ref(claim, sts) or has_owner_ref(claim, pod))
    if _has_non_controller_owner(claim, sts, pod):
        return False
    scaled, deleted = policy(sts)
    on_set, on_pod = has_owner_ref(claim, sts), has_owner_ref(claim, pod)
    scaled_down = not in_ordinal_range(pod, sts)
    if scaled == RETAIN:
        return on_set == (deleted == DELETE) and not on_pod
    if deleted == RETAIN:
        return not on_set and on_pod == scaled_down
    return on_set != scaled_down and on_pod == scaled_down


def wanted_owner_refs(claim: Obj, sts: Obj, pod: Obj) -> list[dict[str, Any]]:
    """The claim's ownerReferences after applying the policy for ``pod`` (kube's
    updateClaimOwnerRefForSetAndPod): ours scrubbed, then the policy's added as controller refs."""
    unexpected = has_unexpected_controller(claim, sts, pod)
    refs = [
        dict(r)
        for r in _refs(claim)
        if not (_matches(r, sts, API_VERSION, KIND) or _matches(r, pod, "v1", "Pod"))
    ]
    if unexpected:
        return refs
    scaled, deleted = policy(sts)
    scaled_down = not in_ordinal_range(pod, sts)
    add: list[dict[str, Any]] = []
    if scaled == DELETE and scaled_down:
        add.append(owner_reference(pod, "v1", "Pod"))
    elif deleted == DELETE and not (scaled == DELETE and scaled_down):
        add.append(owner_reference(sts, API_VERSION, KIND))
    present = {r.get("uid") for r in refs}
    return refs + [r for r in add if r["uid"] not in present]


def claim_is_stale(sts: Obj, pod: Obj, claims: Sequence[Obj]) -> bool:
    """Under ``whenScaled: Delete``, a claim still held by a previous pod of this name blocks the new
    pod until the garbage collector has removed it (kube's PodClaimIsStale)."""
    if policy(sts)[0] == RETAIN:
        return False
    return any(has_stale_owner_ref(claim, pod, "v1", "Pod") for claim in claims)
