"""``pods/binding`` and ``pods/eviction``: the two pod verbs that write through optimistic concurrency.

Both are read-check-write loops over the store, and their answers tell the caller what happened:

* 409 Conflict only for a real conflict: the pod is already bound to a node, is being deleted, still
  has scheduling gates, is not the pod the caller meant (uid), or kept changing under every retry. A
  resourceVersion race alone is retried (re-read, re-check, re-write), as Kubernetes' GuaranteedUpdate
  does.
* 429 TooManyRequests only when a PodDisruptionBudget forbids the eviction (no disruption left, or its
  status not yet computed for its current spec), as Kubernetes' eviction REST; a granted eviction is
  recorded in the budget's ``status.disruptedPods`` with one ``disruptionsAllowed`` taken.
* 404 for a missing pod; any other store failure goes through ``status_for_store_error`` (504 Timeout
  when the store did not answer, so a write's outcome is unknown; 500 otherwise), never a retry that
  could apply the write twice and never a 409 that tells the scheduler someone else won.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from cluster.apiserver.errors import StatusError, bad_request, conflict, forbidden, too_many_requests
from cluster.apiserver.registry import Registry
from cluster.apiserver.resources import ResourceInfo, lookup
from cluster.apiserver.storage import Conflict, status_for_store_error
from cluster.machinery.labels import label_selector_from_dict
from cluster.machinery.times import rfc3339

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
        if selector is None:
            continue
        parsed = label_selector_from_dict(selector)
        # As kube: a budget with an empty selector protects no pod from eviction.
        if not parsed.empty() and parsed.matches(labels):
            out.append(pdb)
    return out


# More pending evictions than this in one budget means its controller is not keeping up: refuse.
MAX_DISRUPTED_PODS = 2000
EVICTION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


def _budget_error(message: str, retry_after: int) -> StatusError:
    """429 with kube's message and a ``DisruptionBudget`` cause (Retry-After only when positive)."""
    err = too_many_requests(EVICTION_MESSAGE, retry_after=retry_after)
    details: dict[str, Any] = {"causes": [{"reason": "DisruptionBudget", "message": message}]}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    err.details = details
    return err


def _still_processing(name: str) -> StatusError:
    return _budget_error(f"The disruption budget {name} is still being processed by the server.", 10)


def _forbidden_by_budget(pdb: dict[str, Any]) -> StatusError:
    status = pdb.get("status") or {}
    return _budget_error(
        f"The disruption budget {pdb['metadata']['name']} needs {status.get('desiredHealthy', 0)} healthy "
        f"pods and has {status.get('currentHealthy', 0)} currently",
        0,
    )


def _budget_forbidden(pdb: dict[str, Any], why: str) -> StatusError:
    info = _pdb_info()
    name = pdb["metadata"]["name"]
    return forbidden(f'poddisruptionbudget.policy "{name}" is forbidden: {why}', info, name)


def _spent(pdb: dict[str, Any], pod_name: str, now: datetime) -> dict[str, Any]:
    """The budget with one disruption taken by ``pod_name`` (the controller drops it once gone)."""
    spent = copy.deepcopy(pdb)
    status = spent.setdefault("status", {})
    status["disruptionsAllowed"] = int(status.get("disruptionsAllowed") or 0) - 1
    if status["disruptionsAllowed"] == 0:
        # What the disruption controller would say about a budget with nothing left.
        conditions = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        old: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "DisruptionAllowed"), {}
        )
        conditions.append(
            {
                "type": "DisruptionAllowed",
                "status": "False",
                "reason": "InsufficientPods",
                "message": "",
                "observedGeneration": status.get("observedGeneration", 0),
                "lastTransitionTime": old.get("lastTransitionTime")
                if old.get("status") == "False"
                else rfc3339(now),
            }
        )
        status["conditions"] = conditions
    status.setdefault("disruptedPods", {})[pod_name] = rfc3339(now)
    return spent


async def _spend_disruption(
    registry: Registry, namespace: str, pdb: dict[str, Any], pod_name: str, dry_run: bool
) -> None:
    """Take one of the budget's ``disruptionsAllowed`` for ``pod_name`` (kube's checkAndDecrement): 429
    when none is left or the budget's status is older than its spec, 403 when the status is broken; the
    write is conditional on the budget's resourceVersion and a race re-reads and decides again."""
    info = _pdb_info()
    name = pdb["metadata"]["name"]
    for attempt in range(MAX_CONFLICT_RETRIES):
        if attempt:
            pdb = await _read(registry, info, namespace, name)
        status = pdb.get("status") or {}
        if int(status.get("observedGeneration") or 0) < int(pdb["metadata"].get("generation") or 0):
            raise _still_processing(name)
        allowed = int(status.get("disruptionsAllowed") or 0)
        if allowed < 0:
            raise _budget_forbidden(pdb, "pdb disruptions allowed is negative")
        if len(status.get("disruptedPods") or {}) > MAX_DISRUPTED_PODS:
            raise _budget_forbidden(
                pdb, "DisruptedPods map too big - too many evictions not confirmed by PDB controller"
            )
        if allowed == 0:
            raise _forbidden_by_budget(pdb)
        if dry_run:
            return
        try:
            rv = int(pdb["metadata"]["resourceVersion"])
            await registry.store.update(
                registry.key(info, namespace, name), _spent(pdb, pod_name, registry.clock()), rv
            )
        except Conflict:
            continue
        except Exception as e:
            raise status_for_store_error(e, write=True) from e
        return
    raise conflict(info, name)


def _can_ignore_budget(pod: dict[str, Any]) -> bool:
    """Pods that disrupt nothing by going: finished, not started, or already being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase in ("Succeeded", "Failed", "Pending") or bool(pod["metadata"].get("deletionTimestamp"))


def _is_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _with_version(options: dict[str, Any], pod: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the pod's resourceVersion as precondition, unless the caller set one."""
    pre = options.get("preconditions") or {}
    if pre.get("resourceVersion"):
        return options
    return {**options, "preconditions": {**pre, "resourceVersion": pod["metadata"]["resourceVersion"]}}


async def _delete(
    registry: Registry, info: ResourceInfo, namespace: str, name: str, options: dict[str, Any], dry_run: bool
) -> None:
    try:
        await registry.delete(info, namespace, name, options, dry_run=dry_run)
    except StatusError:
        raise
    except Exception as e:
        raise status_for_store_error(e, write=True) from e


async def evict_pod(
    registry: Registry, info: ResourceInfo, namespace: str, name: str, eviction: dict[str, Any]
) -> None:
    """Delete a pod unless a PodDisruptionBudget forbids it, as kube's eviction REST does.

    A pod that is finished, pending or already terminating is deleted without looking at budgets (a
    pending one on condition that it did not change since read). Otherwise its one budget (more than
    one is a 500) must allow a disruption, which is spent first. A pod that is not Ready while its
    budget is met, or whose budget says ``unhealthyPodEvictionPolicy: AlwaysAllow``, is deleted without
    spending one, on condition that it did not become Ready meanwhile (a race answers 429 so the caller
    retries).
    """
    options = dict(eviction.get("deleteOptions") or {})
    dry_run = "All" in (options.get("dryRun") or [])
    pod = await _read(registry, info, namespace, name)
    if _can_ignore_budget(pod):
        phase = (pod.get("status") or {}).get("phase")
        running = phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")
        await _delete(
            registry, info, namespace, name, _with_version(options, pod) if running else options, dry_run
        )
        return
    pdbs = await _matching_pdbs(registry, pod, namespace)
    if len(pdbs) > 1:
        raise StatusError(
            500,
            "InternalError",
            "Internal error occurred: This pod has more than one PodDisruptionBudget, which the "
            "eviction subresource does not support.",
        )
    conditional = False
    if pdbs:
        status = pdbs[0].get("status") or {}
        desired, current = int(status.get("desiredHealthy") or 0), int(status.get("currentHealthy") or 0)
        always = (pdbs[0].get("spec") or {}).get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
        if not _is_ready(pod) and (always or (current >= desired and desired > 0)):
            conditional = True  # an unready pod does not count as healthy: nothing to spend
        else:
            await _spend_disruption(registry, namespace, pdbs[0], name, dry_run)
    try:
        await _delete(
            registry, info, namespace, name, _with_version(options, pod) if conditional else options, dry_run
        )
    except StatusError as e:
        caller_set_version = bool(
            (eviction.get("deleteOptions") or {}).get("preconditions", {}).get("resourceVersion")
        )
        if e.code == 409 and conditional and not caller_set_version:
            raise _still_processing(pdbs[0]["metadata"]["name"]) from e
        raise
