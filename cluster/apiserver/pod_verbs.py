"""``pods/binding`` and ``pods/eviction``: the two pod verbs that write through optimistic concurrency.

Both are read-check-write loops over the store, and their answers tell the caller what happened:

* 409 Conflict only for a real conflict: the pod is already bound to a node, is being deleted, still
  has scheduling gates, is not the pod the caller meant (uid), or kept changing under every retry. A
  resourceVersion race alone is retried (re-read, re-check, re-write), as Kubernetes' GuaranteedUpdate
  does.
* 429 TooManyRequests only when a PodDisruptionBudget forbids the eviction.
* 404 for a missing pod; any other store failure goes through ``status_for_store_error`` (504 Timeout
  when the store did not answer, so a write's outcome is unknown; 500 otherwise), never a retry that
  could apply the write twice and never a 409 that tells the scheduler someone else won.
"""

from __future__ import annotations

import copy
from typing import Any

from cluster.apiserver.errors import StatusError, bad_request, conflict, too_many_requests
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import Conflict, status_for_store_error
from cluster.machinery.labels import label_selector_from_dict

# Retries of a resourceVersion race before giving up with 409 (each one re-reads the object).
MAX_CONFLICT_RETRIES = 8


def binding_conflict(name: str, why: str) -> StatusError:
    """Kubernetes' answer when a binding cannot apply: ``Operation cannot be fulfilled on pods/binding``."""
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on pods/binding "{name}": {why}',
        details={"name": name, "kind": "pods/binding"},
    )


async def _read(registry: Registry, info: ResourceInfo, namespace: str | None, name: str) -> dict[str, Any]:
    """``registry.get`` with store failures as Status errors (a read: nothing was changed)."""
    try:
        return await registry.get(info, namespace, name)
    except StatusError:
        raise
    except Exception as e:
        raise status_for_store_error(e, write=False) from e


def _bound(pod: dict[str, Any], node: str) -> dict[str, Any]:
    updated = copy.deepcopy(pod)
    updated["spec"]["nodeName"] = node
    status = updated.setdefault("status", {})
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != "PodScheduled"]
    conditions.append(
        {
            "type": "PodScheduled",
            "status": "True",
            "lastProbeTime": None,
            "lastTransitionTime": updated["metadata"]["creationTimestamp"],
        }
    )
    status["conditions"] = conditions
    return updated


def _check_bindable(pod: dict[str, Any], name: str, uid: str | None) -> None:
    meta, spec = pod["metadata"], pod.get("spec") or {}
    if uid and meta.get("uid") != uid:
        raise binding_conflict(
            name, f"Precondition failed: UID in precondition: {uid}, UID in object meta: {meta.get('uid')}"
        )
    if meta.get("deletionTimestamp"):
        raise binding_conflict(name, f"pod {name} is being deleted, cannot be assigned to a host")
    if spec.get("nodeName"):
        raise binding_conflict(name, f'pod {name} is already assigned to node "{spec["nodeName"]}"')
    if spec.get("schedulingGates"):
        raise binding_conflict(name, f"pod {name} has non-empty .spec.schedulingGates")


async def bind_pod(
    registry: Registry, info: ResourceInfo, namespace: str | None, name: str, binding: dict[str, Any]
) -> None:
    """Set ``spec.nodeName`` (and PodScheduled=True) of an unbound pod; raises ``StatusError``."""
    node = (binding.get("target") or {}).get("name")
    if not node:
        raise bad_request("Binding target must name a node")
    uid = (binding.get("metadata") or {}).get("uid")
    key = registry.key(info, namespace, name)
    for _ in range(MAX_CONFLICT_RETRIES):
        pod = await _read(registry, info, namespace, name)
        _check_bindable(pod, name, uid)
        try:
            await registry.store.update(key, _bound(pod, node), int(pod["metadata"]["resourceVersion"]))
        except Conflict:
            continue  # changed since we read it: re-read, and the checks above decide again
        except Exception as e:
            raise status_for_store_error(e, write=True) from e
        return
    raise binding_conflict(name, "the object kept changing; please try again")


def _pdb_info() -> ResourceInfo:
    info = lookup("policy", "v1", "poddisruptionbudgets")
    assert info is not None
    return info


async def _matching_pdbs(registry: Registry, pod: dict[str, Any], namespace: str) -> list[dict[str, Any]]:
    try:
        pdbs = await registry.store.list(f"/registry/poddisruptionbudgets/{namespace}/")
    except Exception as e:
        raise status_for_store_error(e, write=False) from e
    labels = pod["metadata"].get("labels") or {}
    out = []
    for pdb in pdbs.items:
        selector = (pdb.get("spec") or {}).get("selector")
        if selector is not None and label_selector_from_dict(selector).matches(labels):
            out.append(pdb)
    return out


def _forbidden_by_budget(pdb: dict[str, Any]) -> StatusError:
    status = pdb.get("status") or {}
    cause = (
        f"The disruption budget {pdb['metadata']['name']} needs {status.get('desiredHealthy', 0)} healthy "
        f"pods and has {status.get('currentHealthy', 0)} currently"
    )
    err = too_many_requests(
        "Cannot evict pod as it would violate the pod's disruption budget.", retry_after=10
    )
    err.details = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    return err


async def _spend_disruption(registry: Registry, namespace: str, pdb: dict[str, Any]) -> None:
    """Decrement the budget's ``disruptionsAllowed`` (429 when none is left), retrying version races."""
    info = _pdb_info()
    name = pdb["metadata"]["name"]
    for attempt in range(MAX_CONFLICT_RETRIES):
        if attempt:
            pdb = await _read(registry, info, namespace, name)
        allowed = int((pdb.get("status") or {}).get("disruptionsAllowed") or 0)
        if allowed <= 0:
            raise _forbidden_by_budget(pdb)
        spent = copy.deepcopy(pdb)
        spent["status"]["disruptionsAllowed"] = allowed - 1
        try:
            rv = int(pdb["metadata"]["resourceVersion"])
            await registry.store.update(registry.key(info, namespace, name), spent, rv)
        except Conflict:
            continue
        except Exception as e:
            raise status_for_store_error(e, write=True) from e
        return
    raise conflict(info, name)


async def evict_pod(
    registry: Registry, info: ResourceInfo, namespace: str, name: str, eviction: dict[str, Any]
) -> None:
    """Delete a pod unless a PodDisruptionBudget forbids it (one disruption is spent first)."""
    pod = await _read(registry, info, namespace, name)
    phase = (pod.get("status") or {}).get("phase")
    if phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
        pdbs = await _matching_pdbs(registry, pod, namespace)
        if len(pdbs) > 1:
            raise StatusError(
                500,
                "InternalError",
                "Internal error occurred: This pod has more than one PodDisruptionBudget, which the "
                "eviction subresource does not support.",
            )
        if pdbs:
            await _spend_disruption(registry, namespace, pdbs[0])
    try:
        await registry.delete(info, namespace, name, eviction.get("deleteOptions") or {})
    except StatusError:
        raise
    except Exception as e:
        raise status_for_store_error(e, write=True) from e
