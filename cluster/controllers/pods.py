"""Pure helpers shared by the workload controllers: owner references, pods from templates, pod
readiness and availability, and slow-start batching (kube's ``controller_utils.go``).

Objects are wire-form dicts; nothing here mutates its arguments.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from cluster.machinery.times import parse_rfc3339

SLOW_START_INITIAL_BATCH = 1


def controller_ref(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """The ownerReference with ``controller: true``, if any (an object has at most one)."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def is_controlled_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def owner_reference(owner: Mapping[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    """A controller reference to ``owner`` (``controller`` and ``blockOwnerDeletion`` true)."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_from_template(
    template: Mapping[str, Any],
    owner: Mapping[str, Any],
    api_version: str,
    kind: str,
    *,
    name: str | None = None,
    generate_name: str | None = None,
) -> dict[str, Any]:
    """A pod for ``owner`` from its pod template (kube's ``GetPodFromTemplate``).

    Labels, annotations and finalizers come from the template; the pod lives in the owner's namespace
    and is controlled by it. Without ``name`` the server names it from ``generate_name`` (default
    ``<owner>-``).
    """
    owner_meta = owner.get("metadata") or {}
    tmeta = template.get("metadata") or {}
    meta: dict[str, Any] = {"namespace": owner_meta.get("namespace") or "default"}
    if name:
        meta["name"] = name
    else:
        meta["generateName"] = generate_name or f"{owner_meta.get('name', '')}-"
    for field in ("labels", "annotations"):
        if tmeta.get(field):
            meta[field] = dict(tmeta[field])
    if tmeta.get("finalizers"):
        meta["finalizers"] = list(tmeta["finalizers"])
    meta["ownerReferences"] = [owner_reference(owner, api_version, kind)]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": copy.deepcopy(dict(template.get("spec") or {})),
    }


def is_pod_terminating(pod: Mapping[str, Any]) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_pod_active(pod: Mapping[str, Any]) -> bool:
    """Neither finished (Succeeded/Failed) nor being deleted (kube's ``IsPodActive``)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not is_pod_terminating(pod)


def _ready_condition(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in (pod.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return condition  # type: ignore[no-any-return]
    return None


def is_pod_ready(pod: Mapping[str, Any]) -> bool:
    condition = _ready_condition(pod)
    return condition is not None and condition.get("status") == "True"


def pod_ready_since(pod: Mapping[str, Any]) -> datetime | None:
    """When the pod last became Ready (None when it is not Ready)."""
    condition = _ready_condition(pod)
    if condition is None or condition.get("status") != "True":
        return None
    return parse_rfc3339(condition.get("lastTransitionTime"))


def is_pod_available(pod: Mapping[str, Any], min_ready_seconds: float, now: datetime) -> bool:
    """Ready for longer than ``min_ready_seconds`` (kube's ``IsPodAvailable``: strictly after)."""
    if not is_pod_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = pod_ready_since(pod)
    return since is not None and since + timedelta(seconds=min_ready_seconds) < now


def available_in(pod: Mapping[str, Any], min_ready_seconds: float, now: datetime) -> float | None:
    """Seconds until a Ready pod counts as available (0 if it already does; None if not Ready)."""
    since = pod_ready_since(pod)
    if since is None:
        return None
    return max(0.0, (since + timedelta(seconds=min_ready_seconds) - now).total_seconds())


async def slow_start_batch(
    count: int, initial: int, fn: Callable[[int], Awaitable[None]]
) -> tuple[int, BaseException | None]:
    """Call ``fn(i)`` ``count`` times in batches of ``initial``, then twice as many each round
    (kube's ``slowStartBatch``): a batch runs concurrently, and the first batch with a failure is
    the last, so a broken template costs one request, not hundreds.

    Returns how many calls succeeded and the first error raised (None if all succeeded).
    """
    done = 0
    batch = min(max(1, initial), count)
    while batch > 0:
        results = await asyncio.gather(*(fn(done + i) for i in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        done += batch - len(errors)
        if errors:
            return done, errors[0]
        batch = min(2 * batch, count - done)
    return done, None
