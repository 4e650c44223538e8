"""Rollout arithmetic of the Deployment controller (pure): how many pods each ReplicaSet should have.

Mirrors ``pkg/controller/deployment`` (``rolling.go``, ``recreate.go``, ``sync.go``'s ``scale``) and
``deployment/util``: the controller reads its ReplicaSets into :class:`ReplicaSetView` values, asks
these functions for :class:`Scale` steps and writes them (``spec.replicas`` of each ReplicaSet) in the
order given, stopping at the first failure; the next reconcile recomputes everything from the caches.

Invariants:

* ``maxSurge`` rounds percentages up and ``maxUnavailable`` rounds them down; when both come to 0,
  ``maxUnavailable`` becomes 1 so a rollout can always make progress (``ResolveFenceposts``);
* a rolling step never plans more than ``replicas + maxSurge`` pods in total (by ``spec.replicas``)
  and never plans to go below ``replicas - maxUnavailable`` available pods: old ReplicaSets are scaled
  down only by what is available beyond that floor, after their unavailable pods are dropped;
* proportional scaling (a Deployment resized in the middle of a rollout) spreads the change over the
  active ReplicaSets by their share of the ``max-replicas`` annotation, giving leftovers to the
  largest one, and never makes a ReplicaSet negative;
* nothing here reads a clock or does I/O; every function returns new values.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

RECREATE = "Recreate"
ROLLING_UPDATE = "RollingUpdate"
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidIntOrPercent(ValueError):
    """A maxSurge/maxUnavailable value that is neither an integer nor ``"<n>%"``."""


def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """``intstr.GetScaledValueFromIntOrPercent``: an int as is, ``"n%"`` of ``total`` rounded up or
    down; None counts as 0."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise InvalidIntOrPercent(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value)
    if not text.endswith("%"):
        raise InvalidIntOrPercent(
            f"invalid value for IntOrString: invalid type: string is not a percentage: {text!r}"
        )
    try:
        percent = int(text[:-1])
    except ValueError:
        raise InvalidIntOrPercent(f"invalid value {text!r}: not an integer percentage") from None
    exact = percent * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def resolve_fenceposts(
    max_surge: int | str | None, max_unavailable: int | str | None, desired: int
) -> tuple[int, int]:
    """``(surge, unavailable)`` for ``desired`` replicas; never both 0."""
    surge = scaled_value(max_surge, desired, round_up=True)
    unavailable = scaled_value(max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True, slots=True)
class Strategy:
    """What the arithmetic needs from a Deployment's spec."""

    replicas: int
    type: str = ROLLING_UPDATE
    max_surge: int | str | None = DEFAULT_MAX_SURGE
    max_unavailable: int | str | None = DEFAULT_MAX_UNAVAILABLE

    @property
    def rolling(self) -> bool:
        return self.type == ROLLING_UPDATE

    def surge(self) -> int:
        """``deploymentutil.MaxSurge``: 0 for Recreate."""
        if not self.rolling:
            return 0
        return resolve_fenceposts(self.max_surge, self.max_unavailable, self.replicas)[0]

    def unavailable(self) -> int:
        """``deploymentutil.MaxUnavailable``: 0 for Recreate or 0 replicas, at most ``replicas``."""
        if not self.rolling or self.replicas == 0:
            return 0
        return min(resolve_fenceposts(self.max_surge, self.max_unavailable, self.replicas)[1], self.replicas)

    def max_total(self) -> int:
        """The ``max-replicas`` annotation: ``replicas + maxSurge``."""
        return self.replicas + self.surge()


@dataclass(frozen=True, slots=True)
class ReplicaSetView:
    """One ReplicaSet as the arithmetic sees it (``replicas`` is ``spec.replicas``)."""

    name: str
    uid: str = ""
    created: datetime = _EPOCH
    replicas: int = 0
    status_replicas: int = 0
    ready: int = 0
    available: int = 0
    revision: int = 0
    desired_annotation: int | None = None
    max_annotation: int | None = None
    generation: int = 0
    observed_generation: int = 0
    deleting: bool = False
    template: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def scaled(self, replicas: int) -> ReplicaSetView:
        return dataclasses.replace(self, replicas=replicas)


@dataclass(frozen=True, slots=True)
class Scale:
    """Set ``spec.replicas`` of ReplicaSet ``name`` from ``old`` to ``new``."""

    name: str
    old: int
    new: int

    @property
    def direction(self) -> str:
        return "up" if self.new > self.old else "down"


# -- sums and orders (deploymentutil / controller_utils) ---------------------------------------------


def active(rss: Iterable[ReplicaSetView | None]) -> list[ReplicaSetView]:
    """``FilterActiveReplicaSets``: the ones with ``spec.replicas > 0``."""
    return [rs for rs in rss if rs is not None and rs.replicas > 0]


def spec_replicas(rss: Iterable[ReplicaSetView | None]) -> int:
    return sum(rs.replicas for rs in rss if rs is not None)


def status_replicas(rss: Iterable[ReplicaSetView | None]) -> int:
    return sum(rs.status_replicas for rs in rss if rs is not None)


def ready_replicas(rss: Iterable[ReplicaSetView | None]) -> int:
    return sum(rs.ready for rs in rss if rs is not None)


def available_replicas(rss: Iterable[ReplicaSetView | None]) -> int:
    return sum(rs.available for rs in rss if rs is not None)


def by_creation(rss: Iterable[ReplicaSetView]) -> list[ReplicaSetView]:
    """Oldest first; equal timestamps by name (``ReplicaSetsByCreationTimestamp``)."""
    return sorted(rss, key=lambda rs: (rs.created, rs.name))


def by_size_older(rss: Iterable[ReplicaSetView]) -> list[ReplicaSetView]:
    """Largest first; equal sizes oldest first (``ReplicaSetsBySizeOlder``)."""
    return sorted(by_creation(rss), key=lambda rs: -rs.replicas)


def by_size_newer(rss: Iterable[ReplicaSetView]) -> list[ReplicaSetView]:
    """Largest first; equal sizes newest first (``ReplicaSetsBySizeNewer``)."""
    return sorted(list(reversed(by_creation(rss))), key=lambda rs: -rs.replicas)


def _apply(rss: Sequence[ReplicaSetView], scales: Iterable[Scale]) -> list[ReplicaSetView]:
    target = {s.name: s.new for s in scales}
    return [rs.scaled(target[rs.name]) if rs.name in target else rs for rs in rss]


def _merge(steps: Iterable[Scale]) -> list[Scale]:
    """One step per ReplicaSet, from its first ``old`` to its last ``new``, in first-seen order."""
    merged: dict[str, Scale] = {}
    for step in steps:
        first = merged.get(step.name)
        merged[step.name] = Scale(step.name, first.old if first else step.old, step.new)
    return [s for s in merged.values() if s.old != s.new]


# -- rolling update -------------------------------------------------------------------------------


def new_rs_new_replicas(strategy: Strategy, all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView) -> int:
    """``NewRSNewReplicas``: the size the new ReplicaSet may grow to now."""
    if not strategy.rolling:
        return strategy.replicas
    current = spec_replicas(all_rss)
    ceiling = strategy.max_total()
    if current >= ceiling:
        return new_rs.replicas
    grow = min(ceiling - current, strategy.replicas - new_rs.replicas)
    return new_rs.replicas + grow


def reconcile_new_replica_set(
    strategy: Strategy, all_rss: Sequence[ReplicaSetView], new_rs: ReplicaSetView | None
) -> Scale | None:
    """``reconcileNewReplicaSet``: grow the new ReplicaSet within maxSurge (or shrink it if too big)."""
    if new_rs is None or new_rs.replicas == strategy.replicas:
        return None
    if new_rs.replicas > strategy.replicas:
        return Scale(new_rs.name, new_rs.replicas, strategy.replicas)
    target = new_rs_new_replicas(strategy, all_rss, new_rs)
    return Scale(new_rs.name, new_rs.replicas, target) if target != new_rs.replicas else None


def _cleanup_unhealthy(old_rss: Sequence[ReplicaSetView], budget: int) -> list[Scale]:
    """``cleanupUnhealthyReplicas``: drop unavailable pods of old ReplicaSets, oldest first."""
    steps: list[Scale] = []
    dropped = 0
    for rs in by_creation(old_rss):
        if dropped >= budget:
            break
        if rs.replicas == 0 or rs.replicas == rs.available:
            continue
        count = min(budget - dropped, rs.replicas - rs.available)
        if count <= 0:
            continue
        steps.append(Scale(rs.name, rs.replicas, rs.replicas - count))
        dropped += count
    return steps


def _scale_down_old(
    strategy: Strategy, all_rss: Sequence[ReplicaSetView], old_rss: Sequence[ReplicaSetView]
) -> list[Scale]:
    """``scaleDownOldReplicaSetsForRollingUpdate``: remove what is available beyond the floor."""
    floor = strategy.replicas - strategy.unavailable()
    available = available_replicas(all_rss)
    if available <= floor:
        return []
    budget = available - floor
    steps: list[Scale] = []
    removed = 0
    for rs in by_creation(old_rss):
        if removed >= budget:
            break
        if rs.replicas == 0:
            continue
        count = min(rs.replicas, budget - removed)
        steps.append(Scale(rs.name, rs.replicas, rs.replicas - count))
        removed += count
    return steps


def reconcile_old_replica_sets(
    strategy: Strategy,
    all_rss: Sequence[ReplicaSetView],
    old_rss: Sequence[ReplicaSetView],
    new_rs: ReplicaSetView | None,
) -> list[Scale]:
    """``reconcileOldReplicaSets``: the scale-downs of old ReplicaSets allowed by maxUnavailable.

    ``old_rss`` are the active old ReplicaSets. The unhealthy clean-up and the availability-driven
    scale-down are merged into one step per ReplicaSet.
    """
    if spec_replicas(old_rss) == 0:
        return []
    floor = strategy.replicas - strategy.unavailable()
    new_unavailable = (new_rs.replicas - new_rs.available) if new_rs is not None else 0
    max_scaled_down = spec_replicas(all_rss) - floor - new_unavailable
    if max_scaled_down <= 0:
        return []
    cleanup = _cleanup_unhealthy(old_rss, max_scaled_down)
    old_after = _apply(old_rss, cleanup)
    all_after = [*old_after, *([new_rs] if new_rs is not None else [])]
    return _merge([*cleanup, *_scale_down_old(strategy, all_after, old_after)])


# -- recreate ---------------------------------------------------------------------------------------


def recreate_scale_down(old_rss: Sequence[ReplicaSetView]) -> list[Scale]:
    """``scaleDownOldReplicaSetsForRecreate``: every active old ReplicaSet to 0."""
    return [Scale(rs.name, rs.replicas, 0) for rs in active(old_rss)]


# -- scaling events (sync.go: scale) ----------------------------------------------------------------


def is_saturated(strategy: Strategy, rs: ReplicaSetView | None) -> bool:
    """The new ReplicaSet runs the full, available size the Deployment asks for."""
    return (
        rs is not None
        and rs.desired_annotation == strategy.replicas
        and rs.replicas == strategy.replicas
        and rs.available == strategy.replicas
    )


def find_active_or_latest(
    new_rs: ReplicaSetView | None, old_rss: Sequence[ReplicaSetView]
) -> ReplicaSetView | None:
    """The only active ReplicaSet, or the newest one when none is active; None when several are."""
    if new_rs is None and not old_rss:
        return None
    newest_first = list(reversed(by_creation(old_rss)))
    candidates = active([*newest_first, new_rs])
    if not candidates:
        return new_rs if new_rs is not None else newest_first[0]
    if len(candidates) == 1:
        return candidates[0]
    return None


def is_scaling_event(replicas: int, rss: Iterable[ReplicaSetView | None]) -> bool:
    """An active ReplicaSet records another desired size than the Deployment's: it was resized."""
    return any(rs.desired_annotation is not None and rs.desired_annotation != replicas for rs in active(rss))


def _fraction(strategy: Strategy, rs: ReplicaSetView, deployment_status_replicas: int) -> int:
    """``getReplicaSetFraction``: how much ``rs`` should change for the new total."""
    if strategy.replicas == 0:
        return -rs.replicas
    total = strategy.max_total()
    annotated = rs.max_annotation if rs.max_annotation is not None else deployment_status_replicas
    if annotated <= 0:
        return 0
    # Go's math.Round: halves away from zero (sizes are never negative here).
    return math.floor(rs.replicas * total / annotated + 0.5) - rs.replicas


def _proportion(
    strategy: Strategy, rs: ReplicaSetView, to_add: int, added: int, status_replicas_: int
) -> int:
    if rs.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = _fraction(strategy, rs, status_replicas_)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def scale(
    strategy: Strategy,
    new_rs: ReplicaSetView | None,
    old_rss: Sequence[ReplicaSetView],
    deployment_status_replicas: int,
) -> list[Scale]:
    """``DeploymentController.scale``: the steps for a resized (or paused) Deployment.

    One active ReplicaSet (or none: the newest) takes the whole size; a saturated new ReplicaSet
    means the old ones go to 0; otherwise a rolling Deployment spreads the difference proportionally.
    """
    only = find_active_or_latest(new_rs, old_rss)
    if only is not None:
        return (
            [] if only.replicas == strategy.replicas else [Scale(only.name, only.replicas, strategy.replicas)]
        )
    if is_saturated(strategy, new_rs):
        return [Scale(rs.name, rs.replicas, 0) for rs in active(old_rss)]
    if not strategy.rolling:
        return []
    rss = active([*old_rss, new_rs])
    allowed = strategy.max_total() if strategy.replicas > 0 else 0
    to_add = allowed - spec_replicas(rss)
    if to_add > 0:
        rss = by_size_newer(rss)
    elif to_add < 0:
        rss = by_size_older(rss)
    sizes: dict[str, int] = {}
    added = 0
    for rs in rss:
        share = _proportion(strategy, rs, to_add, added, deployment_status_replicas) if to_add else 0
        sizes[rs.name] = rs.replicas + share
        added += share
    if rss and to_add:
        # The leftover of rounding goes to the largest ReplicaSet, never below zero.
        sizes[rss[0].name] = max(0, sizes[rss[0].name] + to_add - added)
    # Unchanged ReplicaSets are listed too: the caller still refreshes their replica annotations.
    return [Scale(rs.name, rs.replicas, sizes[rs.name]) for rs in rss]
