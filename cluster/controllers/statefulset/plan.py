"""The StatefulSet update plan: from the set, its pods and claims, what to do next (pure).

``plan(...)`` follows kube-controller-manager's ``updateStatefulSet`` step by step and returns the
writes as :class:`Step` values in groups, with the status to record:

1. **Replicas** (ordinals ``start .. start+replicas-1``, ascending). A Failed or Succeeded pod is
   deleted (it returns, same name, on a later pass); a missing pod is created, after its claims, from
   the current revision below the partition and the update revision otherwise; a Pending pod gets
   any missing claim; claims get the retention policy's owner references; identity labels are fixed.
2. **Condemned** pods (ordinal out of range) get their claims' owner references for the policy, then
   are deleted, highest ordinal first.
3. **Rolling update** (RollingUpdate only; OnDelete stops here): the highest ordinal at or above the
   partition that does not run the update revision is deleted (it is recreated at the update revision
   by step 1), one at a time, each only once every higher one is healthy again. With
   ``rollingUpdate.maxUnavailable`` set, up to that many (minus those already unavailable) at once.

``OrderedReady`` (monotonic) stops at the first thing to wait for: a pod being created, terminating,
not Running and Ready, or not yet available (``minReadySeconds``); so ``db-1`` is created only once
``db-0`` is Ready, and scale-down deletes one pod per pass, only when all others are healthy (except
the first unhealthy one). ``Parallel`` creates and deletes without waiting, each group as a batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cluster.controllers.pods import available_in, is_pod_available, is_pod_ready, is_pod_terminating
from cluster.controllers.statefulset import identity, retention
from cluster.controllers.statefulset.identity import meta, spec

Obj = Mapping[str, Any]

CREATE_POD = "create_pod"
DELETE_POD = "delete_pod"
CREATE_CLAIMS = "create_claims"
UPDATE_CLAIM = "update_claim"
FIX_IDENTITY = "fix_identity"


@dataclass(frozen=True, slots=True)
class Step:
    """One write. ``create_pod``: create ``claims`` (the missing ones) then ``pod``. ``delete_pod``:
    delete ``pod``. ``create_claims``: create ``claims`` for ``pod``. ``update_claim``: set ``claim``'s
    ownerReferences to ``owner_refs``. ``fix_identity``: merge ``labels`` into ``pod``'s labels."""

    action: str
    pod: Mapping[str, Any]
    claims: tuple[dict[str, Any], ...] = ()
    claim: Mapping[str, Any] | None = None
    owner_refs: tuple[dict[str, Any], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def pod_name(self) -> str:
        return str(meta(self.pod).get("name") or "")


@dataclass(frozen=True, slots=True)
class Revisions:
    """The two revisions a pass works with: names and the pod templates they restore."""

    current_name: str
    current_template: Mapping[str, Any]
    update_name: str
    update_template: Mapping[str, Any]
    collision_count: int = 0


@dataclass(frozen=True, slots=True)
class Plan:
    """Groups of steps to run in order; within a group, steps may run concurrently when
    ``concurrent`` (Parallel). A failing step ends the pass (the key is retried with backoff).
    ``waiting`` says what an OrderedReady pass stopped for; ``requeue_after`` asks for another look."""

    groups: tuple[tuple[Step, ...], ...]
    status: dict[str, Any]
    concurrent: bool
    waiting: str | None = None
    requeue_after: float | None = None

    @property
    def steps(self) -> list[Step]:
        return [s for g in self.groups for s in g]


def phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def is_created(pod: Obj) -> bool:
    """Known to the API server: it sets a phase on every pod it stores."""
    return phase(pod) != ""


def running_and_ready(pod: Obj) -> bool:
    return phase(pod) == "Running" and is_pod_ready(pod)


def healthy(pod: Obj) -> bool:
    return running_and_ready(pod) and not is_pod_terminating(pod)


def min_ready_seconds(sts: Obj) -> int:
    return int(spec(sts).get("minReadySeconds") or 0)


def is_parallel(sts: Obj) -> bool:
    return spec(sts).get("podManagementPolicy") == "Parallel"


def _strategy(sts: Obj) -> Mapping[str, Any]:
    return spec(sts).get("updateStrategy") or {}


def strategy_type(sts: Obj) -> str:
    return str(_strategy(sts).get("type") or "RollingUpdate")


def partition(sts: Obj) -> int:
    rolling = _strategy(sts).get("rollingUpdate")
    return int((rolling or {}).get("partition") or 0)


def max_unavailable(sts: Obj) -> int | None:
    """``rollingUpdate.maxUnavailable`` scaled to the replica count (percentages round up, at least
    1); None when unset (one pod at a time, as without kube's MaxUnavailableStatefulSet gate)."""
    raw = (_strategy(sts).get("rollingUpdate") or {}).get("maxUnavailable")
    if raw is None:
        return None
    if isinstance(raw, str) and raw.endswith("%"):
        value = math.ceil(int(raw[:-1]) * identity.replicas_of(sts) / 100)
    else:
        value = int(raw)
    return max(1, value)


def uses_current_revision(sts: Obj, ordinal: int) -> bool:
    """A pod created now at ``ordinal`` runs the current revision (below the partition) rather than
    the update revision (kube's newVersionedStatefulSetPod, operator precedence included)."""
    strategy = _strategy(sts)
    rolling = strategy.get("rollingUpdate")
    start = identity.start_ordinal(sts)
    current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
    if strategy_type(sts) == "RollingUpdate" and rolling is None and ordinal < start + current_replicas:
        return True
    return rolling is not None and ordinal < start + int(rolling.get("partition") or 0)


def _claims_of(sts: Obj, ordinal: int, claims: Mapping[str, Obj]) -> tuple[list[dict[str, Any]], list[Obj]]:
    """(claims the pod needs that are missing, claims of the pod that exist)."""
    missing: list[dict[str, Any]] = []
    present: list[Obj] = []
    for claim in identity.claims_for(sts, ordinal).values():
        existing = claims.get(claim["metadata"]["name"])
        if existing is None:
            missing.append(claim)
        else:
            present.append(existing)
    return missing, present


def _with_creation_refs(sts: Obj, pod: Obj, claim: dict[str, Any]) -> dict[str, Any]:
    """A claim created for a pod in range carries the set reference at once when whenDeleted is Delete
    (kube adds it on the next pass; the end state is the same)."""
    if retention.policy(sts)[1] == retention.DELETE and identity.in_ordinal_range(pod, sts):
        refs = retention.wanted_owner_refs(claim, sts, pod)
        if refs:
            claim = {**claim, "metadata": {**claim["metadata"], "ownerReferences": refs}}
    return claim


def _claim_fixes(sts: Obj, pod: Obj, present: Sequence[Obj]) -> list[Step]:
    steps = []
    for claim in present:
        if not retention.claim_owner_up_to_date(claim, sts, pod):
            refs = tuple(retention.wanted_owner_refs(claim, sts, pod))
            steps.append(Step(UPDATE_CLAIM, pod, claim=claim, owner_refs=refs))
    return steps


def compute_status(sts: Obj, pods: Sequence[Obj], revisions: Revisions, now: datetime) -> dict[str, Any]:
    """Replica counts over ``pods`` (kube's computeReplicaStatus) with the revisions, collision count
    and observed generation."""
    counts = dict.fromkeys(
        ("replicas", "readyReplicas", "availableReplicas", "currentReplicas", "updatedReplicas"), 0
    )
    for pod in pods:
        if not is_created(pod):
            continue
        counts["replicas"] += 1
        if running_and_ready(pod):
            counts["readyReplicas"] += 1
            if is_pod_available(pod, min_ready_seconds(sts), now):
                counts["availableReplicas"] += 1
        if not is_pod_terminating(pod):
            revision = identity.revision_of(pod)
            counts["currentReplicas"] += revision == revisions.current_name
            counts["updatedReplicas"] += revision == revisions.update_name
    return {
        "observedGeneration": meta(sts).get("generation"),
        **counts,
        "currentRevision": revisions.current_name,
        "updateRevision": revisions.update_name,
        "collisionCount": revisions.collision_count,
    }


def complete_rolling_update(sts: Obj, status: dict[str, Any]) -> dict[str, Any]:
    """Once every pod runs the update revision and is ready, it becomes the current revision."""
    if (
        strategy_type(sts) == "RollingUpdate"
        and status["updatedReplicas"] == status["replicas"]
        and status["readyReplicas"] == status["replicas"]
    ):
        done = {"currentReplicas": status["updatedReplicas"], "currentRevision": status["updateRevision"]}
        return {**status, **done}
    return status


class _Builder:
    def __init__(self, monotonic: bool) -> None:
        self.monotonic = monotonic
        self.groups: list[list[Step]] = []
        self.waiting: str | None = None
        self.update_deletions = 0

    def group(self) -> None:
        self.groups.append([])

    def add(self, step: Step) -> None:
        if self.monotonic or not self.groups:
            self.groups.append([step])
        else:
            self.groups[-1].append(step)


def plan(
    sts: Obj,
    pods: Sequence[Obj],
    revisions: Revisions,
    claims: Mapping[str, Obj],
    now: datetime,
) -> Plan:
    """What to do for ``sts`` given its own ``pods`` (already adopted), its namespace's ``claims`` by
    name, and the revisions chosen for this pass. See the module docstring."""
    monotonic = not is_parallel(sts)
    start, count = identity.start_ordinal(sts), identity.replicas_of(sts)
    slots: list[Obj | None] = [None] * max(count, 0)
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = identity.ordinal_of(pod)
        if identity.in_ordinal_range(pod, sts):
            slots[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    replicas: list[Obj] = []
    for index, slot in enumerate(slots):
        if slot is not None:
            replicas.append(slot)
            continue
        ordinal = start + index
        if uses_current_revision(sts, ordinal):
            replicas.append(
                identity.new_pod(sts, revisions.current_template, ordinal, revisions.current_name)
            )
        else:
            replicas.append(identity.new_pod(sts, revisions.update_template, ordinal, revisions.update_name))
    condemned.sort(key=identity.ordinal_of, reverse=True)
    unhealthy = [p for p in replicas if not healthy(p)] + [p for p in reversed(condemned) if not healthy(p)]
    first_unhealthy = unhealthy[0] if unhealthy else None

    out = _Builder(monotonic)
    requeue: float | None = None
    mrs = min_ready_seconds(sts)
    if mrs > 0:
        # look again once the first ready pod turns available (a second later: availability starts
        # strictly after readyTime + minReadySeconds, and times have second resolution)
        waits = [
            available_in(p, mrs, now)
            for p in replicas
            if running_and_ready(p) and not is_pod_available(p, mrs, now)
        ]
        known = [w for w in waits if w is not None]
        if known:
            requeue = min(known) + 1.0

    def finish() -> Plan:
        status = compute_status(sts, [*replicas, *condemned], revisions, now)
        status["currentReplicas"] -= out.update_deletions
        return Plan(
            groups=tuple(tuple(g) for g in out.groups if g),
            status=status,
            concurrent=not monotonic,
            waiting=out.waiting,
            requeue_after=requeue,
        )

    if meta(sts).get("deletionTimestamp"):
        return finish()

    # 1. replicas, ascending
    out.group()
    for pod in replicas:
        name = str(meta(pod).get("name"))
        ordinal = identity.ordinal_of(pod)
        if phase(pod) in ("Failed", "Succeeded"):
            if not is_pod_terminating(pod):
                out.add(Step(DELETE_POD, pod))
            if monotonic:
                out.waiting = f"{name} {phase(pod).lower()}: recreating"
                return finish()
            continue
        missing, present = _claims_of(sts, ordinal, claims)
        if not is_created(pod):
            if retention.claim_is_stale(sts, pod, present):
                out.waiting = f"{name} has a stale claim"
                if monotonic:
                    return finish()
                continue
            out.add(Step(CREATE_POD, pod, claims=tuple(_with_creation_refs(sts, pod, c) for c in missing)))
            if monotonic:
                out.waiting = f"{name} being created"
                return finish()
            continue
        if phase(pod) == "Pending" and missing:
            out.add(Step(CREATE_CLAIMS, pod, claims=tuple(_with_creation_refs(sts, pod, c) for c in missing)))
        if monotonic:
            if is_pod_terminating(pod):
                out.waiting = f"{name} terminating"
                return finish()
            if not running_and_ready(pod):
                out.waiting = f"{name} not Running and Ready"
                return finish()
            if not is_pod_available(pod, mrs, now):
                out.waiting = f"{name} not available"
                return finish()
        for step in _claim_fixes(sts, pod, present):
            out.add(step)
        if not identity.identity_matches(sts, pod) and not is_pod_terminating(pod):
            out.add(Step(FIX_IDENTITY, pod, labels=identity.identity_labels(pod)))

    # 2. condemned: claims first, then deletion from the highest ordinal
    out.group()
    for pod in condemned:
        _, present = _claims_of(sts, identity.ordinal_of(pod), claims)
        for step in _claim_fixes(sts, pod, present):
            out.add(step)
    out.group()
    for pod in condemned:
        name = str(meta(pod).get("name"))
        if is_pod_terminating(pod):
            if monotonic:
                out.waiting = f"{name} terminating before scale down"
                return finish()
            continue
        if monotonic and pod is not first_unhealthy:
            blocker = meta(first_unhealthy or pod).get("name")
            if not running_and_ready(pod):
                out.waiting = f"{blocker} not Running and Ready before scale down"
                return finish()
            if not is_pod_available(pod, mrs, now):
                out.waiting = f"{blocker} not available before scale down"
                return finish()
        out.add(Step(DELETE_POD, pod))
        if monotonic:
            return finish()

    # 3. rolling update
    if strategy_type(sts) == "OnDelete":
        return finish()
    out.group()
    limit = max_unavailable(sts)
    update_min = partition(sts)
    if limit is None:
        for target in range(len(replicas) - 1, update_min - 1, -1):
            pod = replicas[target]
            if identity.revision_of(pod) != revisions.update_name and not is_pod_terminating(pod):
                out.add(Step(DELETE_POD, pod))
                out.update_deletions += 1
                return finish()
            if not healthy(pod):
                out.waiting = f"{meta(pod).get('name')} updating"
                return finish()
        return finish()
    unavailable = sum(1 for p in replicas if not healthy(p))
    if unavailable >= limit:
        out.waiting = f"{unavailable} unavailable, maxUnavailable {limit}"
        return finish()
    budget = limit - unavailable
    for target in range(len(replicas) - 1, update_min - 1, -1):
        if budget <= 0:
            break
        pod = replicas[target]
        if identity.revision_of(pod) != revisions.update_name and not is_pod_terminating(pod):
            out.add(Step(DELETE_POD, pod))
            out.update_deletions += 1
            budget -= 1
    return finish()
