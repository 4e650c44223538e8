"""The I/O half of VolumeBinding's PreBind: write what the plugin decided, then wait for the claims.

kube-scheduler's binder (``BindPodVolumes``) does this before the pod is bound: for each claim matched
to an existing PV it writes the PV's ``claimRef`` (with ``pv.kubernetes.io/bound-by-controller``), for
each claim to provision it sets ``volume.kubernetes.io/selected-node`` on the claim; then it waits until
the PV controller (and, for provisioning, the external provisioner) has bound every claim of the pod.
A pod is bound to its node only after that, so it never lands where its volume cannot follow.

The wait reads the scheduler's claim informer (no extra requests) and is bounded; a claim whose
selected-node annotation disappeared (the provisioner gave the node up) fails at once so the pod is
scheduled again, as in kube's ``checkBindings``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from cluster.scheduler.plugins.volume_binding import (
    BOUND_BY_CONTROLLER_ANN,
    SELECTED_NODE_ANN,
    BindingWork,
    Lister,
    claim_key,
)

BIND_TIMEOUT = 60.0  # seconds to wait for the pod's claims to be Bound
POLL = 0.2


def claim_ref(claim: dict[str, Any]) -> dict[str, Any]:
    meta = claim.get("metadata") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": meta.get("namespace") or "default",
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def claim_state(
    claim: dict[str, Any] | None, key: str, provisioning: bool, seen: set[str]
) -> tuple[bool, str]:
    """(bound, error): whether the claim is Bound, or why waiting for it is pointless. ``seen`` holds
    the claims whose selected-node annotation the informer has shown: only losing it afterwards counts
    as a reset (the informer may not have our own write yet)."""
    if claim is None:
        return False, f'persistentvolumeclaim "{key.split("/", 1)[1]}" not found'
    if (claim.get("spec") or {}).get("volumeName") and (claim.get("status") or {}).get("phase") == "Bound":
        return True, ""
    if provisioning:
        if SELECTED_NODE_ANN in ((claim.get("metadata") or {}).get("annotations") or {}):
            seen.add(key)
        elif key in seen:
            return False, f'selectedNode annotation reset for PVC "{key.split("/", 1)[1]}"'
    return False, ""


async def bind_pod_volumes(
    client: ApiClient,
    work: BindingWork,
    claims: Lister,
    *,
    timeout: float = BIND_TIMEOUT,
    poll: float = POLL,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Make the writes of ``work`` and wait until its claims are Bound; None on success, else the
    reason (for the FailedScheduling event). Idempotent: a retry rewrites the same values."""
    try:
        for claim, pv in work.static:
            meta = pv["metadata"]
            patch = {
                "metadata": {
                    "annotations": {BOUND_BY_CONTROLLER_ANN: "yes"},
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "spec": {"claimRef": claim_ref(claim)},
            }
            await client.patch("v1", "persistentvolumes", meta["name"], patch)
        for claim in work.provision:
            meta = claim["metadata"]
            if (meta.get("annotations") or {}).get(SELECTED_NODE_ANN) == work.node_name:
                continue
            patch = {"metadata": {"annotations": {SELECTED_NODE_ANN: work.node_name}}}
            await client.patch(
                "v1", "persistentvolumeclaims", meta["name"], patch, meta.get("namespace") or "default"
            )
    except ApiError as err:
        return f"binding volumes: {err}"
    provisioning = {claim_key(c) for c in work.provision}
    seen: set[str] = set()
    deadline = clock() + timeout
    while True:
        pending = False
        for key in work.claims:
            namespace, name = key.split("/", 1)
            bound, error = claim_state(claims.get(namespace, name), key, key in provisioning, seen)
            if error:
                return f"binding volumes: {error}"
            pending = pending or not bound
        if not pending:
            return None
        if clock() >= deadline:
            return "binding volumes: timed out waiting for the condition"
        await asyncio.sleep(poll)
