"""What one DaemonSet sync does to its pods: the pure core of kube's daemon controller.

Given the DaemonSet, the nodes and the DaemonSet's pods grouped by the node they are for
(:func:`pods_by_node`), three functions each return a :class:`SyncPlan` (nodes to create a pod on,
pods to delete, events to record, when to look again); the controller shell carries it out:

* :func:`manage_plan` (kube's ``manage``/``podsShouldBeOnNode``): a pod on every node that should run
  one and has none; failed pods deleted (with a per-node exponential backoff, :class:`FailedPodBackoff`,
  so a pod the node keeps failing does not hot-loop) and succeeded ones too; extra pods on a node
  deleted, keeping the oldest (with maxSurge, one old and one new pod may share a node while the new
  one becomes available); every pod on a node that must no longer run one deleted; pods for nodes
  that no longer exist deleted (``orphaned``: bound ones have no kubelet left to confirm, so the shell
  deletes them at once, as kube's pod GC would).
* :func:`rolling_update_plan` (kube's ``rollingUpdate``): without surge, delete old pods while at
  most ``maxUnavailable`` daemon pods are unavailable (the next ``manage_plan`` creates their
  replacements); with surge, create new pods beside old ones on up to ``maxSurge`` nodes and delete an
  old pod once its new one is available. Old pods that are unavailable anyway are replaced at once.

Iteration is over node names in sorted order, so plans are deterministic. Pure: no I/O; the backoff is
the only state and the caller owns it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cluster.controllers.daemonset.eligibility import (
    Eligibility,
    daemon_pod_spec,
    node_should_run,
    target_node_name,
)
from cluster.controllers.history import POD_REVISION_LABEL
from cluster.controllers.pods import is_pod_available, is_pod_ready, is_pod_terminating
from cluster.machinery.times import parse_rfc3339

Obj = Mapping[str, Any]

FAILED_DAEMON_POD = "FailedDaemonPod"
SUCCEEDED_DAEMON_POD = "SucceededDaemonPod"
# kube-controller-manager's failedPodsBackoff: 1 s doubling up to 15 minutes.
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 900.0


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    event_type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Create a pod for each of ``create_on`` (node names), delete ``delete`` (pod names; those also in
    ``orphaned`` are for nodes that are gone), record ``events``, look again after ``requeue_after``."""

    create_on: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    orphaned: frozenset[str] = frozenset()
    events: tuple[PlannedEvent, ...] = ()
    requeue_after: float | None = None

    @property
    def empty(self) -> bool:
        return not self.create_on and not self.delete


# -- small helpers -----------------------------------------------------------------------------------


def _meta(obj: Obj) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _name(obj: Obj) -> str:
    return str(_meta(obj).get("name") or "")


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


_EPOCH = datetime.min.replace(tzinfo=UTC)


def pod_order(pod: Obj) -> tuple[bool, datetime, str]:
    """kube's ``podByCreationTimestampAndPhase``: bound pods first, then oldest, then by name."""
    created = parse_rfc3339(_meta(pod).get("creationTimestamp")) or _EPOCH
    return (not (pod.get("spec") or {}).get("nodeName"), created, _name(pod))


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An IntOrString against ``total``: an int as is, ``"N%"`` as N% of total (rounded up or down);
    raises ValueError for any other string."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a percentage: {text}")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {text}") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def _rolling(daemon_set: Obj) -> Mapping[str, Any] | None:
    strategy = (daemon_set.get("spec") or {}).get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return None
    rolling: Mapping[str, Any] = strategy.get("rollingUpdate") or {}
    return rolling


def surge_count(daemon_set: Obj, desired: int) -> int:
    """maxSurge scaled to ``desired`` (0 unless RollingUpdate sets it)."""
    rolling = _rolling(daemon_set)
    return 0 if rolling is None else scaled_value(rolling.get("maxSurge"), desired, round_up=True)


def unavailable_count(daemon_set: Obj, desired: int) -> int:
    """maxUnavailable scaled to ``desired`` (0 for OnDelete; the API server defaults it to 1)."""
    rolling = _rolling(daemon_set)
    return 0 if rolling is None else scaled_value(rolling.get("maxUnavailable"), desired, round_up=True)


def allows_surge(daemon_set: Obj) -> bool:
    try:
        return surge_count(daemon_set, 1) > 0
    except ValueError:
        return False


def is_updated(pod: Obj, hash_: str) -> bool:
    """Whether the pod runs the current revision (its ``controller-revision-hash`` label)."""
    return bool(hash_) and (_meta(pod).get("labels") or {}).get(POD_REVISION_LABEL) == hash_


def min_ready_seconds(daemon_set: Obj) -> float:
    return float((daemon_set.get("spec") or {}).get("minReadySeconds") or 0)


def pods_by_node(pods: Sequence[Obj], *, include_deleted_terminal: bool = False) -> dict[str, list[Obj]]:
    """The DaemonSet's pods grouped by the node they are for (``target_node_name``), each group in
    ``pod_order``. Pods for no node are left out, and so are finished pods being deleted unless
    ``include_deleted_terminal`` (history cleanup still counts their revision as live)."""
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        if (
            not include_deleted_terminal
            and is_pod_terminating(pod)
            and _phase(pod) in ("Succeeded", "Failed")
        ):
            continue
        node = target_node_name(pod)
        if node is not None:
            out.setdefault(node, []).append(pod)
    for group in out.values():
        group.sort(key=pod_order)
    return out


def eligibility_by_node(daemon_set: Obj, nodes: Sequence[Obj]) -> dict[str, Eligibility]:
    spec = daemon_pod_spec(daemon_set)
    return {_name(node): node_should_run(node, daemon_set, spec) for node in nodes}


# -- failed pod backoff ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
    delay: float
    last: float


@dataclass(slots=True)
class FailedPodBackoff:
    """client-go's ``flowcontrol.Backoff`` keyed by ``<ds uid>/<observedGeneration>/<node>``: each
    failed pod deleted on a node doubles the wait before the next (``initial`` .. ``maximum``); an
    entry idle for twice the maximum starts over. Times are monotonic seconds given by the caller."""

    initial: float = BACKOFF_INITIAL
    maximum: float = BACKOFF_MAX
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def in_backoff(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - entry.last < entry.delay

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def remaining(self, key: str, now: float) -> float:
        """Seconds until ``key`` leaves its backoff (0 when it is not in one)."""
        entry = self._entries.get(key)
        return max(0.0, entry.delay - (now - entry.last)) if entry else 0.0

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or now - entry.last > 2 * self.maximum:
            self._entries[key] = _Entry(self.initial, now)
        else:
            entry.delay = min(entry.delay * 2, self.maximum)
            entry.last = now

    def gc(self, now: float) -> None:
        """Drop entries idle for more than twice the maximum."""
        for key in [k for k, e in self._entries.items() if now - e.last > 2 * self.maximum]:
            del self._entries[key]


def backoff_key(daemon_set: Obj, node: str) -> str:
    generation = ((daemon_set.get("status") or {}).get("observedGeneration")) or 0
    return f"{_meta(daemon_set).get('uid', '')}/{generation}/{node}"


# -- manage ----------------------------------------------------------------------------------------


def _pods_on_eligible_node(
    daemon_set: Obj,
    node: str,
    pods: Sequence[Obj],
    eligibility: Eligibility,
    hash_: str,
    now: datetime,
    backoff: FailedPodBackoff,
    monotonic: float,
) -> tuple[list[str], list[str], list[PlannedEvent], float | None]:
    """podsShouldBeOnNode for a node whose pods may stay: (create_on, delete, events, requeue)."""
    create: list[str] = []
    delete: list[str] = []
    events: list[PlannedEvent] = []
    requeue: float | None = None
    running: list[Obj] = []
    namespace = _meta(daemon_set).get("namespace", "")
    for pod in pods:
        if is_pod_terminating(pod):
            continue
        phase = _phase(pod)
        if phase == "Failed":
            key = backoff_key(daemon_set, node)
            if backoff.in_backoff(key, monotonic):
                wait = backoff.remaining(key, monotonic)
                requeue = wait if requeue is None else min(requeue, wait)
                continue
            backoff.next(key, monotonic)
            message = f"Found failed daemon pod {namespace}/{_name(pod)} on node {node}, will try to kill it"
            events.append(PlannedEvent("Warning", FAILED_DAEMON_POD, message))
            delete.append(_name(pod))
        elif phase == "Succeeded":
            message = (
                f"Found succeeded daemon pod {namespace}/{_name(pod)} on node {node}, will try to delete it"
            )
            events.append(PlannedEvent("Normal", SUCCEEDED_DAEMON_POD, message))
            delete.append(_name(pod))
        else:
            running.append(pod)

    if not allows_surge(daemon_set):
        # one pod per node: keep the oldest (pods are in pod_order)
        delete += [_name(p) for p in running[1:]]
        return create, delete, events, requeue
    if len(running) <= 1:
        if not running and eligibility.should_run:
            create.append(node)  # surging: the node needs at least one pod that is not going away
        return create, delete, events, requeue
    # Surging: keep the oldest new pod and the oldest old pod; the old one goes once it is not ready
    # or the new one is available. Every other pod goes now.
    oldest_new: Obj | None = None
    oldest_old: Obj | None = None
    for pod in running:
        if is_updated(pod, hash_):
            if oldest_new is None:
                oldest_new = pod
                continue
        elif oldest_old is None:
            oldest_old = pod
            continue
        delete.append(_name(pod))
    if (
        oldest_new is not None
        and oldest_old is not None
        and (not is_pod_ready(oldest_old) or is_pod_available(oldest_new, min_ready_seconds(daemon_set), now))
    ):
        delete.append(_name(oldest_old))
    return create, delete, events, requeue


def manage_plan(
    daemon_set: Obj,
    nodes: Sequence[Obj],
    by_node: Mapping[str, Sequence[Obj]],
    hash_: str,
    now: datetime,
    backoff: FailedPodBackoff,
    monotonic: float,
) -> SyncPlan:
    """Pods to create and delete so that each eligible node runs one daemon pod (see module doc)."""
    eligible = eligibility_by_node(daemon_set, nodes)
    create: list[str] = []
    delete: list[str] = []
    events: list[PlannedEvent] = []
    requeue: float | None = None
    for node in sorted(eligible):
        decision = eligible[node]
        pods = by_node.get(node)
        if decision.should_run and pods is None:
            create.append(node)
        elif decision.should_continue_running and pods is not None:
            c, d, e, r = _pods_on_eligible_node(
                daemon_set, node, pods, decision, hash_, now, backoff, monotonic
            )
            create += c
            delete += d
            events += e
            if r is not None:
                requeue = r if requeue is None else min(requeue, r)
        elif not decision.should_continue_running and pods is not None:
            delete += [_name(p) for p in pods if not is_pod_terminating(p)]
    orphaned = [
        _name(pod)
        for node in sorted(set(by_node) - set(eligible))
        for pod in by_node[node]
        if not is_pod_terminating(pod) or (pod.get("spec") or {}).get("nodeName")
    ]
    return SyncPlan(
        create_on=tuple(create),
        delete=tuple(delete + orphaned),
        orphaned=frozenset(orphaned),
        events=tuple(events),
        requeue_after=requeue,
    )


# -- rolling update ------------------------------------------------------------------------------------


def updated_desired_counts(daemon_set: Obj, eligible: Mapping[str, Eligibility]) -> tuple[int, int, int]:
    """(maxSurge, maxUnavailable, desiredNumberScheduled); when both limits come out 0 for a non-empty
    set, one unavailable pod is allowed so the update can progress (as kube)."""
    desired = sum(1 for e in eligible.values() if e.should_run)
    max_unavailable = unavailable_count(daemon_set, desired)
    max_surge = surge_count(daemon_set, desired)
    if desired > 0 and max_unavailable == 0 and max_surge == 0:
        max_unavailable = 1
    return max_surge, max_unavailable, desired


def _new_and_old(pods: Sequence[Obj], hash_: str) -> tuple[Obj | None, Obj | None, bool]:
    """kube's ``findUpdatedPodsOnNode``: at most one new and one old live pod, else ok=False."""
    new: Obj | None = None
    old: Obj | None = None
    for pod in pods:
        if is_pod_terminating(pod):
            continue
        if is_updated(pod, hash_):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def rolling_update_plan(
    daemon_set: Obj,
    nodes: Sequence[Obj],
    by_node: Mapping[str, Sequence[Obj]],
    hash_: str,
    now: datetime,
) -> SyncPlan:
    """The RollingUpdate step (see module doc); call only when expectations are satisfied."""
    eligible = eligibility_by_node(daemon_set, nodes)
    max_surge, max_unavailable, desired = updated_desired_counts(daemon_set, eligible)
    pods_for: dict[str, Sequence[Obj]] = dict(by_node)
    for node, decision in eligible.items():
        if decision.should_run:
            pods_for.setdefault(node, ())
    min_ready = min_ready_seconds(daemon_set)

    def available(pod: Obj) -> bool:
        return is_pod_available(pod, min_ready, now)

    if max_surge == 0:
        unavailable = 0
        replace: list[str] = []
        candidates: list[str] = []
        for node in sorted(pods_for):
            new, old, ok = _new_and_old(pods_for[node], hash_)
            if not ok or (new is None) == (old is None):
                unavailable += 1  # manage_plan settles this node first
            elif new is not None:
                unavailable += 0 if available(new) else 1
            elif old is not None and not available(old):
                replace.append(_name(old))
                unavailable += 1
            elif old is not None and unavailable < max_unavailable:
                candidates.append(_name(old))
        room = min(max(max_unavailable - unavailable, 0), len(candidates))
        return SyncPlan(delete=tuple(replace + candidates[:room]))

    delete: list[str] = []
    should_not_run: list[str] = []
    allowed_new: list[str] = []
    candidate_new: list[str] = []
    surging = 0
    available_count = 0
    for node in sorted(pods_for):
        new, old, ok = _new_and_old(pods_for[node], hash_)
        if not ok:
            surging += 1
            continue
        counted = old if old is not None else new
        if counted is not None and available(counted):
            available_count += 1
        if old is None:
            continue  # nothing old here; manage_plan creates a pod if one is missing
        runs = node in eligible and eligible[node].should_run
        if new is None:
            if not available(old) and runs:
                allowed_new.append(node)  # it is not serving anyway: surge onto it now
            elif not available(old):
                delete.append(_name(old))  # unavailable, and the set no longer wants this node
            elif not runs:
                should_not_run.append(_name(old))
            elif surging < max_surge:
                candidate_new.append(node)
        elif not available(new):
            surging += 1
        else:
            delete.append(_name(old))
    # With surge the owner expects full availability: a pod on a node the set no longer wants goes only
    # while more pods are available than the set wants in total.
    deletable = min(max(available_count - desired, 0), len(should_not_run))
    delete += should_not_run[:deletable]
    room = min(max(max_surge - surging, 0), len(candidate_new))
    return SyncPlan(create_on=tuple(allowed_new + candidate_new[:room]), delete=tuple(delete))
