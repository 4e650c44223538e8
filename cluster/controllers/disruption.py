"""The disruption controller: a PodDisruptionBudget's status says how many pods may be disrupted.

As kube-controller-manager's ``disruption`` controller does, for each PodDisruptionBudget it looks at the
pods its selector picks in its namespace and writes ``status``: ``currentHealthy`` (Ready pods not
being deleted and not recently evicted), ``desiredHealthy``, ``expectedPods``, ``disruptionsAllowed``
(``currentHealthy - desiredHealthy``, never below 0, and 0 while no pod is expected),
``observedGeneration``, the ``DisruptedPods`` map cleaned of pods that are gone or were not deleted
within ``DELETION_TIMEOUT`` of their eviction, and the ``DisruptionAllowed`` condition (True
``SufficientPods`` / False ``InsufficientPods``; False ``SyncFailed`` when the status cannot be
computed, with ``disruptionsAllowed`` forced to 0 so evictions stop: fail safe).

An integer ``minAvailable`` counts against the matching pods. A percentage ``minAvailable`` and any
``maxUnavailable`` need the scale of the pods' controllers: each pod's controller (ReplicationController,
ReplicaSet, Deployment through its ReplicaSet, StatefulSet) counted once, summed (kube's
``getExpectedScale``); percentages round up. Pods without a controller are left out of that sum and
reported with an ``UnmanagedPods`` event; a controller that cannot be found is a sync failure.

The arithmetic (:func:`compute_status`) is pure; ``DisruptionController`` is the shell.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.pods import controller_ref, is_pod_ready
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.machinery.labels import LabelSelector, SelectorError, label_selector_from_dict
from cluster.machinery.times import parse_rfc3339, rfc3339

log = logging.getLogger("raykube.controllers.disruption")

DELETION_TIMEOUT = timedelta(minutes=2)
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS = "SufficientPods"
INSUFFICIENT_PODS = "InsufficientPods"
SYNC_FAILED = "SyncFailed"

_PERCENT = re.compile(r"^(\d+)%$")


class ScaleError(Exception):
    """The expected number of pods cannot be known (a controller is missing, a value is malformed)."""


def scaled_value(value: int | str, total: int, round_up: bool) -> int:
    """An IntOrString against ``total``: integers as they are, ``"N%"`` of total (rounded as asked)."""
    if isinstance(value, int):
        return value
    match = _PERCENT.match(value)
    if match is None:
        if value.isdigit():
            return int(value)
        raise ScaleError(
            f"invalid value for IntOrString: invalid value {value!r}: must be an integer or a percentage"
        )
    share = int(match.group(1)) * total / 100
    return math.ceil(share) if round_up else math.floor(share)


def is_percentage(value: int | str) -> bool:
    return isinstance(value, str) and _PERCENT.match(value) is not None


# Looks a controller up by (kind, namespace, name); None when absent.
Getter = Callable[[str, str, str], Mapping[str, Any] | None]

SCALED_KINDS = {"ReplicationController": "", "ReplicaSet": "apps", "StatefulSet": "apps"}


def _group(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def controller_scale(ref: Mapping[str, Any], namespace: str, get: Getter) -> tuple[str, int] | None:
    """(uid, replicas) of the workload that scales a pod whose controller is ``ref``, or None.

    A ReplicaSet owned by a Deployment stands for the Deployment: the Deployment's replicas count.
    """
    kind, group = ref.get("kind", ""), _group(ref.get("apiVersion", ""))
    if kind not in SCALED_KINDS or group not in (SCALED_KINDS[kind], "extensions"):
        return None
    owner = get(kind, namespace, ref.get("name", ""))
    if owner is None or (owner.get("metadata") or {}).get("uid") != ref.get("uid"):
        return None
    if kind == "ReplicaSet":
        parent = controller_ref(owner)
        if (
            parent is not None
            and parent.get("kind") == "Deployment"
            and _group(parent.get("apiVersion", "")) in ("apps", "extensions")
        ):
            deployment = get("Deployment", namespace, parent.get("name", ""))
            if deployment is None or (deployment.get("metadata") or {}).get("uid") != parent.get("uid"):
                return None
            return str(parent["uid"]), _replicas(deployment)
    return str(ref.get("uid")), _replicas(owner)


def _replicas(obj: Mapping[str, Any]) -> int:
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def expected_scale(pods: Iterable[Mapping[str, Any]], get: Getter) -> tuple[int, list[str]]:
    """Sum of the scales of the pods' controllers (each once) and the names of pods without one."""
    scales: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(meta.get("name", ""))
            continue
        if ref.get("uid") in scales:
            continue
        found = controller_scale(ref, meta.get("namespace", ""), get)
        if found is None:
            raise ScaleError(f'found no controllers for pod "{meta.get("name", "")}"')
        scales[found[0]] = found[1]
    return sum(scales.values()), unmanaged


def expected_pod_count(
    pdb: Mapping[str, Any], pods: list[Mapping[str, Any]], get: Getter
) -> tuple[int, int, list[str]]:
    """(expectedPods, desiredHealthy, unmanaged pod names) as kube's ``getExpectedPodCount``."""
    spec = pdb.get("spec") or {}
    if spec.get("maxUnavailable") is not None:
        expected, unmanaged = expected_scale(pods, get)
        max_unavailable = scaled_value(spec["maxUnavailable"], expected, round_up=True)
        return expected, max(expected - max_unavailable, 0), unmanaged
    min_available = spec.get("minAvailable")
    if min_available is None:
        return 0, 0, []
    if isinstance(min_available, int) or not is_percentage(min_available):
        return len(pods), scaled_value(min_available, 0, round_up=True), []
    expected, unmanaged = expected_scale(pods, get)
    return expected, scaled_value(min_available, expected, round_up=True), unmanaged


def disrupted_pod_map(
    pods: Iterable[Mapping[str, Any]], pdb: Mapping[str, Any], now: datetime
) -> tuple[dict[str, str], datetime | None, list[str]]:
    """Entries of ``status.disruptedPods`` still pending, the earliest time one expires, and the names
    of pods that were expected to be deleted by now but were not."""
    recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: datetime | None = None
    overdue: list[str] = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        name = meta.get("name", "")
        if meta.get("deletionTimestamp") or name not in recorded:
            continue
        when = parse_rfc3339(recorded[name])
        if when is None:
            continue
        deadline = when + DELETION_TIMEOUT
        if deadline < now:
            overdue.append(name)
            continue
        kept[name] = recorded[name]
        recheck = deadline if recheck is None or deadline < recheck else recheck
    return kept, recheck, overdue


def count_healthy(pods: Iterable[Mapping[str, Any]], disrupted: Mapping[str, str], now: datetime) -> int:
    healthy = 0
    for pod in pods:
        meta = pod.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        when = parse_rfc3339(disrupted.get(meta.get("name", "")))
        if when is not None and when + DELETION_TIMEOUT > now:
            continue
        if is_pod_ready(pod):
            healthy += 1
    return healthy


def set_condition(
    conditions: list[dict[str, Any]], status: str, reason: str, message: str, generation: int, now: datetime
) -> list[dict[str, Any]]:
    """``conditions`` with DisruptionAllowed set; lastTransitionTime moves only when the status does."""
    out = [dict(c) for c in conditions]
    for c in out:
        if c.get("type") == DISRUPTION_ALLOWED:
            if c.get("status") != status:
                c["lastTransitionTime"] = rfc3339(now)
            c.update(status=status, reason=reason, message=message, observedGeneration=generation)
            return out
    out.append(
        {
            "type": DISRUPTION_ALLOWED,
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": rfc3339(now),
        }
    )
    return out


def allowed_condition(status: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Conditions after kube's ``UpdateDisruptionAllowedCondition`` for this status."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    return set_condition(
        list(status.get("conditions") or []),
        "True" if allowed else "False",
        SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS,
        "",
        int(status.get("observedGeneration") or 0),
        now,
    )


def conditions_up_to_date(status: Mapping[str, Any]) -> bool:
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == DISRUPTION_ALLOWED), None)
    if cond is None or cond.get("observedGeneration") != status.get("observedGeneration"):
        return False
    if int(status.get("disruptionsAllowed") or 0) > 0:
        return bool(cond.get("status") == "True" and cond.get("reason") == SUFFICIENT_PODS)
    return bool(cond.get("status") == "False" and cond.get("reason") == INSUFFICIENT_PODS)


@dataclass(frozen=True, slots=True)
class BudgetSync:
    """The outcome of one sync: the status to write (None: already right), when to look again, and
    what to say in events (reason, message, about the PDB) and about overdue pods."""

    status: dict[str, Any] | None
    recheck_after: float | None
    events: tuple[tuple[str, str, str], ...]  # (type, reason, message) about the PDB
    overdue_pods: tuple[str, ...]


def compute_status(
    pdb: Mapping[str, Any], pods: list[Mapping[str, Any]], get: Getter, now: datetime
) -> BudgetSync:
    """The PDB status kube's disruption controller would write (failing safe on a ScaleError)."""
    events: list[tuple[str, str, str]] = []
    if not pods:
        events.append(("Normal", "NoPods", "No matching pods found"))
    generation = int((pdb.get("metadata") or {}).get("generation") or 0)
    old = dict(pdb.get("status") or {})
    try:
        expected, desired, unmanaged = expected_pod_count(pdb, pods, get)
    except ScaleError as e:
        events.append(
            (
                "Warning",
                "CalculateExpectedPodCountFailed",
                f"Failed to calculate the number of expected pods: {e}",
            )
        )
        failed = copy.deepcopy(old)
        failed["disruptionsAllowed"] = 0
        failed["conditions"] = set_condition(
            list(old.get("conditions") or []),
            "False",
            SYNC_FAILED,
            str(e),
            int(old.get("observedGeneration") or 0),
            now,
        )
        return BudgetSync(failed if failed != old else None, None, tuple(events), ())
    if unmanaged:
        selector = (pdb.get("spec") or {}).get("selector")
        events.append(
            (
                "Warning",
                "UnmanagedPods",
                f"Pods selected by this PodDisruptionBudget (selector: {selector}) were found "
                "to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, "
                "which may result in "
                'undefined behavior. To account for these pods please set ".spec.minAvailable" field of the '
                "PDB to an integer value.",
            )
        )
    disrupted, recheck, overdue = disrupted_pod_map(pods, pdb, now)
    healthy = count_healthy(pods, disrupted, now)
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0
    new = {
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "disruptionsAllowed": allowed,
        "observedGeneration": generation,
    }
    same = (
        all(int(old.get(k) or 0) == v for k, v in new.items())
        and (old.get("disruptedPods") or {}) == disrupted
    )
    recheck_after = (recheck - now).total_seconds() if recheck is not None else None
    if same and conditions_up_to_date(old):
        return BudgetSync(None, recheck_after, tuple(events), tuple(overdue))
    status: dict[str, Any] = dict(new)
    if disrupted:
        status["disruptedPods"] = disrupted
    status["conditions"] = list(old.get("conditions") or [])
    status["conditions"] = allowed_condition(status, now)
    return BudgetSync(status, recheck_after, tuple(events), tuple(overdue))


def pdb_selector(pdb: Mapping[str, Any]) -> LabelSelector | None:
    """The budget's selector (None when malformed); a missing selector selects nothing."""
    try:
        return label_selector_from_dict((pdb.get("spec") or {}).get("selector"))
    except SelectorError:
        return None


# kind -> (group/version, plural) of the workloads whose scale a percentage needs.
WORKLOADS = {
    "ReplicaSet": ("apps/v1", "replicasets"),
    "Deployment": ("apps/v1", "deployments"),
    "StatefulSet": ("apps/v1", "statefulsets"),
}


class DisruptionController(Controller):
    """Keeps every PodDisruptionBudget's status current (see the module docstring)."""

    NAME = "disruption"
    COMPONENT = "controllermanager"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pdbs = self.watch(
            "policy/v1",
            "poddisruptionbudgets",
            on_add=self.enqueue,
            on_update=lambda _o, n: self.enqueue(n),
            on_delete=self.enqueue,
        )
        self.pods = self.watch(
            "v1", "pods", on_add=self._pod_changed, on_update=self._pod_updated, on_delete=self._pod_changed
        )
        self.workloads = {kind: self.watch(gv, plural) for kind, (gv, plural) in WORKLOADS.items()}

    def _pdb_keys(self, pod: Mapping[str, Any]) -> set[str]:
        meta = pod.get("metadata") or {}
        keys = set()
        for pdb in self.pdbs.list(meta.get("namespace")):
            selector = pdb_selector(pdb)
            if selector is not None and selector.matches(meta.get("labels") or {}):
                keys.add(f"{pdb['metadata']['namespace']}/{pdb['metadata']['name']}")
        return keys

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        for key in sorted(self._pdb_keys(pod)):
            self.enqueue(key)

    def _pod_updated(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        for key in sorted(self._pdb_keys(old) | self._pdb_keys(new)):
            self.enqueue(key)

    def _get(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        lister = self.workloads.get(kind)
        return None if lister is None else lister.get(namespace, name)

    async def reconcile(self, key: str) -> float | None:
        namespace, _, name = key.partition("/")
        pdb = self.pdbs.get(namespace, name)
        if pdb is None:
            return None
        selector = pdb_selector(pdb)
        pods: list[Mapping[str, Any]] = (
            []
            if selector is None
            else [p for p in self.pods.list(namespace) if selector.matches(p["metadata"].get("labels") or {})]
        )
        sync = compute_status(pdb, pods, self._get, self.clock.now())
        for event_type, reason, message in sync.events:
            self.recorder.event(pdb, event_type, reason, message)
        for pod_name in sync.overdue_pods:
            pod = self.pods.get(namespace, pod_name)
            if pod is not None:
                self.recorder.event(
                    pod,
                    "Warning",
                    "NotDeleted",
                    f"Pod was expected by PDB {namespace}/{name} to be deleted but it wasn't",
                )
        if sync.status is not None:
            body = copy.deepcopy(pdb)
            body["status"] = sync.status
            try:
                await self.client.update(
                    "policy/v1", "poddisruptionbudgets", body, namespace, subresource="status"
                )
            except ApiError as e:
                if e.not_found:
                    return None
                raise  # a conflict: the cache is behind; the retry reads the newer budget
        return sync.recheck_after
