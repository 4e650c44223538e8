"""Rollout arithmetic of the Deployment controller: fenceposts, rolling steps, Recreate, proportional
scaling, and whole rollouts played step by step against a simulated ReplicaSet controller."""

from __future__ import annotations

from datetime import timedelta

import pytest

from cluster.controllers.deployment.rollout import (
    RECREATE,
    InvalidIntOrPercent,
    ReplicaSetView,
    Scale,
    Strategy,
    active,
    by_size_newer,
    by_size_older,
    find_active_or_latest,
    is_saturated,
    is_scaling_event,
    new_rs_new_replicas,
    reconcile_new_replica_set,
    reconcile_old_replica_sets,
    recreate_scale_down,
    resolve_fenceposts,
    scale,
    scaled_value,
)
from tests.cluster.controllers.fakes import T0


def rs(
    name: str,
    replicas: int,
    available: int | None = None,
    *,
    age: int = 0,
    desired: int | None = None,
    max_replicas: int | None = None,
) -> ReplicaSetView:
    """A ReplicaSet created ``age`` seconds before T0 (larger age = older)."""
    return ReplicaSetView(
        name=name,
        uid=f"uid-{name}",
        created=T0 - timedelta(seconds=age),
        replicas=replicas,
        status_replicas=replicas,
        ready=replicas if available is None else available,
        available=replicas if available is None else available,
        desired_annotation=desired,
        max_annotation=max_replicas,
    )


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        pytest.param(2, 10, True, 2, id="int-as-is"),
        pytest.param("25%", 10, True, 3, id="percent-rounds-up"),
        pytest.param("25%", 10, False, 2, id="percent-rounds-down"),
        pytest.param("25%", 4, False, 1, id="exact-percent"),
        pytest.param("100%", 3, True, 3, id="hundred-percent"),
        pytest.param("0%", 7, True, 0, id="zero-percent"),
        pytest.param(None, 10, True, 0, id="unset-is-zero"),
    ],
)
def test_scaled_value(value: int | str | None, total: int, round_up: bool, expected: int) -> None:
    assert scaled_value(value, total, round_up=round_up) == expected


@pytest.mark.parametrize(
    "bad", [pytest.param("25", id="no-percent-sign"), pytest.param("x%", id="not-a-number")]
)
def test_scaled_value_rejects_non_percent_strings(bad: str) -> None:
    with pytest.raises(InvalidIntOrPercent):
        scaled_value(bad, 10, round_up=True)


@pytest.mark.parametrize(
    ("surge", "unavailable", "desired", "expected"),
    [
        pytest.param("25%", "25%", 4, (1, 1), id="defaults-4"),
        pytest.param("25%", "25%", 3, (1, 0), id="defaults-3-surge-up-unavailable-down"),
        pytest.param("25%", "25%", 10, (3, 2), id="defaults-10"),
        pytest.param(0, 0, 5, (0, 1), id="both-zero-unavailable-becomes-one"),
        pytest.param("0%", "0%", 1, (0, 1), id="both-zero-percent"),
        pytest.param(1, 0, 3, (1, 0), id="surge-only"),
        pytest.param(0, "50%", 5, (0, 2), id="unavailable-only"),
    ],
)
def test_resolve_fenceposts(
    surge: int | str, unavailable: int | str, desired: int, expected: tuple[int, int]
) -> None:
    assert resolve_fenceposts(surge, unavailable, desired) == expected


@pytest.mark.parametrize(
    ("strategy", "surge", "unavailable"),
    [
        pytest.param(Strategy(10), 3, 2, id="rolling-defaults"),
        pytest.param(
            Strategy(2, max_unavailable="100%", max_surge=0), 0, 2, id="unavailable-capped-at-replicas"
        ),
        pytest.param(Strategy(2, max_unavailable=5, max_surge=0), 0, 2, id="unavailable-int-capped"),
        pytest.param(Strategy(0), 0, 0, id="zero-replicas-no-unavailable"),
        pytest.param(Strategy(10, type=RECREATE), 0, 0, id="recreate-has-neither"),
    ],
)
def test_strategy_surge_and_unavailable(strategy: Strategy, surge: int, unavailable: int) -> None:
    assert (strategy.surge(), strategy.unavailable()) == (surge, unavailable)
    assert strategy.max_total() == strategy.replicas + surge


@pytest.mark.parametrize(
    ("strategy", "olds", "new", "expected"),
    [
        pytest.param(
            Strategy(3, max_surge=1, max_unavailable=0), [rs("a", 3, age=10)], rs("b", 0), 1, id="surge-one"
        ),
        pytest.param(Strategy(10), [rs("a", 10, age=10)], rs("b", 0), 3, id="surge-25-percent-of-10"),
        pytest.param(Strategy(10), [rs("a", 9, age=10)], rs("b", 3), 4, id="room-after-old-scaled-down"),
        pytest.param(
            Strategy(3, max_surge=1, max_unavailable=0), [rs("a", 3, age=10)], rs("b", 1), 1, id="at-ceiling"
        ),
        pytest.param(
            Strategy(3, max_surge=5, max_unavailable=0),
            [rs("a", 1, age=10)],
            rs("b", 0),
            3,
            id="never-past-replicas",
        ),
        pytest.param(
            Strategy(4, type=RECREATE), [rs("a", 4, age=10)], rs("b", 0), 4, id="recreate-full-size"
        ),
    ],
)
def test_new_rs_new_replicas(
    strategy: Strategy, olds: list[ReplicaSetView], new: ReplicaSetView, expected: int
) -> None:
    assert new_rs_new_replicas(strategy, [*olds, new], new) == expected


@pytest.mark.parametrize(
    ("strategy", "olds", "new", "expected"),
    [
        pytest.param(Strategy(3), [], None, None, id="no-new-rs"),
        pytest.param(Strategy(3), [], rs("b", 3), None, id="already-full"),
        pytest.param(Strategy(3), [], rs("b", 5), Scale("b", 5, 3), id="too-big-shrinks-to-replicas"),
        pytest.param(Strategy(4), [rs("a", 4, age=5)], rs("b", 0), Scale("b", 0, 1), id="grows-by-surge"),
        pytest.param(Strategy(4), [rs("a", 4, age=5)], rs("b", 1), None, id="blocked-by-surge"),
    ],
)
def test_reconcile_new_replica_set(
    strategy: Strategy, olds: list[ReplicaSetView], new: ReplicaSetView | None, expected: Scale | None
) -> None:
    assert reconcile_new_replica_set(strategy, [*olds, *([new] if new else [])], new) == expected


@pytest.mark.parametrize(
    ("strategy", "olds", "new", "expected"),
    [
        pytest.param(
            Strategy(3, max_surge=1, max_unavailable=0),
            [rs("a", 3, age=5)],
            rs("b", 1, available=0),
            [],
            id="maxUnavailable-0-waits-for-new-pod",
        ),
        pytest.param(
            Strategy(3, max_surge=1, max_unavailable=0),
            [rs("a", 3, age=5)],
            rs("b", 1),
            [Scale("a", 3, 2)],
            id="maxUnavailable-0-one-down-per-available-new",
        ),
        pytest.param(
            Strategy(10),  # surge 3, unavailable 2: floor 8
            [rs("a", 10, age=5)],
            rs("b", 3, available=0),
            [Scale("a", 10, 8)],
            id="defaults-spend-unavailability",
        ),
        pytest.param(
            Strategy(4, max_surge=1, max_unavailable=1),
            [rs("old", 2, available=0, age=9), rs("mid", 3, age=5)],
            rs("b", 1),
            [Scale("old", 2, 0), Scale("mid", 3, 2)],  # floor 3: 4 available, one may go
            id="unhealthy-old-cleaned-first-then-available-beyond-floor",
        ),
        pytest.param(
            Strategy(4, max_surge=1, max_unavailable=0),
            [rs("x", 2, age=9), rs("y", 2, age=5)],
            rs("b", 1),
            [Scale("x", 2, 1)],
            id="oldest-first",
        ),
        pytest.param(Strategy(3), [rs("a", 0, age=5)], rs("b", 3), [], id="nothing-old-left"),
    ],
)
def test_reconcile_old_replica_sets(
    strategy: Strategy, olds: list[ReplicaSetView], new: ReplicaSetView, expected: list[Scale]
) -> None:
    assert reconcile_old_replica_sets(strategy, [*olds, new], active(olds), new) == expected


def test_recreate_scales_every_active_old_to_zero() -> None:
    olds = [rs("a", 2, age=9), rs("b", 0, age=5), rs("c", 1, age=3)]
    assert recreate_scale_down(olds) == [Scale("a", 2, 0), Scale("c", 1, 0)]


# -- whole rollouts, one controller pass at a time -----------------------------------------------


def play_rolling(strategy: Strategy, old_size: int, lag: int) -> list[tuple[int, int, int]]:
    """Roll ``old_size`` pods of ReplicaSet "old" to "new"; new pods turn available ``lag`` passes
    after they are asked for (old pods go at once). Returns (old, new, available) after each pass."""
    old = rs("old", old_size, age=60)
    new = rs("new", 0, available=0)
    pending: list[tuple[int, int]] = []  # (pass when available, count)
    trace = []
    for step in range(200):
        ready = sum(count for at, count in pending if at <= step)
        pending = [(at, count) for at, count in pending if at > step]
        new = ReplicaSetView(
            "new", uid="n", created=T0, replicas=new.replicas, available=new.available + ready
        )
        all_rss = [old, new]
        grow = reconcile_new_replica_set(strategy, all_rss, new)
        if grow is not None:
            pending.append((step + lag, grow.new - new.replicas))
            new = ReplicaSetView("new", uid="n", created=T0, replicas=grow.new, available=new.available)
        else:
            for cut in reconcile_old_replica_sets(strategy, all_rss, active([old]), new):
                old = rs("old", cut.new, age=60)
        trace.append((old.replicas, new.replicas, old.available + new.available))
        if old.replicas == 0 and new.available == strategy.replicas:
            return trace
    raise AssertionError(f"no convergence: {trace[-5:]}")


def test_rolling_script_max_surge_1_max_unavailable_0() -> None:
    # The classic sequence: one new pod up, one old pod down, never below 3 available.
    trace = play_rolling(Strategy(3, max_surge=1, max_unavailable=0), 3, lag=1)
    sizes = [(o, n) for o, n, _ in trace]
    steps = [s for i, s in enumerate(sizes) if i == 0 or s != sizes[i - 1]]
    assert steps == [(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]


@pytest.mark.parametrize(
    ("strategy", "lag"),
    [
        pytest.param(Strategy(3, max_surge=1, max_unavailable=0), 1, id="3-surge1-unav0"),
        pytest.param(Strategy(3, max_surge=1, max_unavailable=0), 4, id="3-surge1-unav0-slow-pods"),
        pytest.param(Strategy(10), 2, id="10-defaults"),
        pytest.param(Strategy(5, max_surge=0, max_unavailable=1), 1, id="5-no-surge"),
        pytest.param(Strategy(4, max_surge="50%", max_unavailable="50%"), 3, id="4-half-half"),
        pytest.param(Strategy(1, max_surge=0, max_unavailable=0), 1, id="1-both-zero-still-progresses"),
    ],
)
def test_rolling_keeps_bounds_and_converges(strategy: Strategy, lag: int) -> None:
    trace = play_rolling(strategy, strategy.replicas, lag)
    floor = strategy.replicas - strategy.unavailable()
    assert min(avail for _, _, avail in trace) >= floor
    assert max(o + n for o, n, _ in trace) <= strategy.max_total()
    assert trace[-1][:2] == (0, strategy.replicas)


# -- scaling events (proportional scaling) -----------------------------------------------------------


def annotated(name: str, replicas: int, previous_max: int, *, age: int) -> ReplicaSetView:
    return rs(name, replicas, age=age, desired=previous_max, max_replicas=previous_max)


@pytest.mark.parametrize(
    ("strategy", "new", "olds", "expected"),
    [
        pytest.param(
            Strategy(12), rs("b", 10), [rs("a", 0, age=9)], [Scale("b", 10, 12)], id="single-active-takes-all"
        ),
        pytest.param(Strategy(3), rs("b", 3), [rs("a", 0, age=9)], [], id="single-active-already-right"),
        pytest.param(
            Strategy(5), rs("b", 0), [rs("a", 0, age=9)], [Scale("b", 0, 5)], id="none-active-newest-grows"
        ),
        pytest.param(
            Strategy(10, max_surge=0, max_unavailable=1),
            annotated("new", 2, 5, age=0),
            [annotated("old", 3, 5, age=9)],
            [Scale("old", 3, 6), Scale("new", 2, 4)],
            id="5-to-10",
        ),
        pytest.param(
            Strategy(3, max_surge=0, max_unavailable=1),
            annotated("new", 2, 5, age=0),
            [annotated("old", 3, 5, age=9)],
            [Scale("old", 3, 2), Scale("new", 2, 1)],
            id="5-to-3",
        ),
        pytest.param(
            Strategy(4, max_surge=0, max_unavailable=1),
            annotated("new", 1, 3, age=0),
            [annotated("mid", 1, 3, age=5), annotated("old", 1, 3, age=9)],
            [Scale("new", 1, 2), Scale("mid", 1, 1), Scale("old", 1, 1)],
            id="3-to-4-leftover-to-newest-of-equal-size",
        ),
        pytest.param(
            Strategy(0, max_surge=0, max_unavailable=1),
            annotated("new", 2, 5, age=0),
            [annotated("old", 3, 5, age=9)],
            [Scale("old", 3, 0), Scale("new", 2, 0)],
            id="to-zero",
        ),
    ],
)
def test_scale(
    strategy: Strategy, new: ReplicaSetView, olds: list[ReplicaSetView], expected: list[Scale]
) -> None:
    assert scale(strategy, new, olds, deployment_status_replicas=0) == expected


def test_scale_saturated_new_rs_drops_old_ones() -> None:
    new = rs("new", 4, desired=4)
    olds = [rs("old", 1, age=9, desired=4)]
    assert is_saturated(Strategy(4), new)
    assert scale(Strategy(4), new, olds, 0) == [Scale("old", 1, 0)]


def test_proportional_scaling_keeps_the_total_within_surge() -> None:
    strategy = Strategy(13)  # surge 4: at most 17 pods
    olds = [annotated("a", 5, 9, age=9), annotated("b", 3, 9, age=5)]
    new = annotated("c", 1, 9, age=0)
    steps = scale(strategy, new, olds, 0)
    assert sum(s.new for s in steps) == strategy.max_total()
    assert all(s.new >= s.old for s in steps)


@pytest.mark.parametrize(
    ("replicas", "rss", "expected"),
    [
        pytest.param(3, [rs("a", 3, desired=3)], False, id="same"),
        pytest.param(5, [rs("a", 3, desired=3)], True, id="resized"),
        pytest.param(5, [rs("a", 0, desired=3)], False, id="inactive-ignored"),
        pytest.param(5, [rs("a", 3)], False, id="no-annotation"),
    ],
)
def test_is_scaling_event(replicas: int, rss: list[ReplicaSetView], expected: bool) -> None:
    assert is_scaling_event(replicas, rss) is expected


def test_orders_and_find_active_or_latest() -> None:
    a, b, c = rs("a", 2, age=9), rs("b", 2, age=5), rs("c", 3, age=1)
    assert [x.name for x in by_size_older([a, b, c])] == ["c", "a", "b"]
    assert [x.name for x in by_size_newer([a, b, c])] == ["c", "b", "a"]
    assert find_active_or_latest(None, [a, b]) is None
    assert find_active_or_latest(rs("n", 0), [rs("a", 0, age=9), rs("b", 0, age=5)]) == rs("n", 0)
    assert find_active_or_latest(None, [rs("a", 0, age=9), rs("b", 0, age=5)]) == rs("b", 0, age=5)
    assert find_active_or_latest(rs("n", 0), [a]) == a
