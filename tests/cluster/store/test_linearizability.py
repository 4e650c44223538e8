"""Tests for the linearizability checker and its register / key-value models."""

from __future__ import annotations

import dataclasses
import random
import time
from typing import Any

import pytest

from cluster.store.linearizability import (
    UNKNOWN_RETURN,
    CheckResult,
    Operation,
    check_operations,
    check_operations_verbose,
    kv_model,
    register_model,
)

OK, ILLEGAL, UNKNOWN = CheckResult.OK, CheckResult.ILLEGAL, CheckResult.UNKNOWN
U = UNKNOWN_RETURN


def op(client: int, inp: Any, call: int, out: Any, ret: int) -> Operation:
    return Operation(client_id=client, input=inp, call=call, output=out, ret=ret)


# ---- porcupine's README register ----------------------------------------------------------------

README_LINEARIZABLE = [
    op(0, ("put", 100), 0, None, 100),
    op(1, ("get",), 25, 100, 75),
    op(2, ("get",), 30, 0, 60),
]
README_NOT_LINEARIZABLE = [
    op(0, ("put", 200), 0, None, 100),
    op(1, ("get",), 10, 200, 30),
    op(2, ("get",), 40, 0, 90),
]


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param(README_LINEARIZABLE, OK, id="readme-linearizable"),
        pytest.param(README_NOT_LINEARIZABLE, ILLEGAL, id="readme-not-linearizable"),
    ],
)
def test_porcupine_readme_register(history: list[Operation], expected: CheckResult) -> None:
    assert check_operations(register_model(), history) is expected


def test_custom_equal_uses_the_bucketed_cache() -> None:
    model = dataclasses.replace(register_model(), equal=lambda a, b: a == b)
    assert check_operations(model, README_LINEARIZABLE) is OK
    assert check_operations(model, README_NOT_LINEARIZABLE) is ILLEGAL


def test_empty_history_is_linearizable() -> None:
    assert check_operations(kv_model(), []) is OK


def test_return_before_call_is_rejected() -> None:
    with pytest.raises(ValueError):
        check_operations(register_model(), [op(0, ("get",), 10, 0, 5)])


def test_timeout_gives_unknown() -> None:
    # 22 mutually concurrent writes and a read of a value nobody wrote: 2^22 subsets to refute.
    history = [op(i, ("put", i), 0, None, 1000) for i in range(22)]
    history.append(op(99, ("get",), 0, -1, 1000))
    started = time.monotonic()
    assert check_operations(register_model(), history, timeout_s=0.3) is UNKNOWN
    assert time.monotonic() - started < 5


# ---- key-value model, hand-written histories ----------------------------------------------------

KV_CASES = [
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, 1, 10),
            op(0, ("get", "a"), 20, ("1", 1), 30),
            op(1, ("cas", "a", 1, "2"), 40, (True, 2), 50),
            op(1, ("cas", "a", 1, "3"), 60, (False, None), 70),
            op(0, ("get", "a"), 80, ("2", 2), 90),
            op(0, ("delete", "a"), 100, 1, 110),
            op(1, ("delete", "a"), 120, 0, 130),
            op(0, ("get", "a"), 140, (None, 0), 150),
            op(1, ("cas", "a", 0, "4"), 160, (True, 9), 170),  # create-if-absent
        ],
        OK,
        id="sequential-everything",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 100), op(1, ("get", "a"), 10, ("1", 1), 20)], OK, id="concurrent-new"
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 100), op(1, ("get", "a"), 10, (None, 0), 20)], OK, id="concurrent-old"
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, 3, 10),
            op(1, ("put", "b", "x"), 0, 4, 10),
            op(0, ("put", "a", "2"), 20, 7, 30),
            op(1, ("get", "a"), 40, ("2", 7), 50),
        ],
        OK,
        id="revisions-global-across-keys",
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, 1, 10),
            op(0, ("put", "a", "2"), 20, 2, 30),
            op(1, ("get", "a"), 40, ("1", 1), 50),
        ],
        ILLEGAL,
        id="stale-read",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 5, 10), op(1, ("get", "a"), 20, (None, 0), 30)], ILLEGAL, id="lost-write"
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, 1, 10),
            op(0, ("put", "a", "2"), 20, 2, 30),
            op(1, ("cas", "a", 1, "3"), 40, (True, 3), 50),
        ],
        ILLEGAL,
        id="cas-on-stale-revision-succeeds",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 10), op(1, ("cas", "a", 1, "3"), 40, (False, None), 50)],
        ILLEGAL,
        id="cas-on-current-revision-fails",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 10), op(1, ("get", "a"), 20, ("zzz", 1), 30)],
        ILLEGAL,
        id="read-of-value-never-written",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 10), op(1, ("get", "a"), 20, ("1", 2), 30)],
        ILLEGAL,
        id="read-with-wrong-revision",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 5, 10), op(0, ("put", "a", "2"), 20, 3, 30)],
        ILLEGAL,
        id="revision-goes-backwards",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, 1, 10), op(0, ("delete", "a"), 20, 0, 30)],
        ILLEGAL,
        id="delete-misses-existing-key",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, None, U), op(1, ("get", "a"), 20, ("1", 8), 30)],
        OK,
        id="timed-out-put-took-effect",
    ),
    pytest.param(
        [op(0, ("put", "a", "1"), 0, None, U), op(1, ("get", "a"), 20, (None, 0), 30)],
        OK,
        id="timed-out-put-did-not-happen",
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, None, U),
            op(1, ("get", "a"), 20, ("1", 8), 30),
            op(1, ("get", "a"), 40, (None, 0), 50),
        ],
        ILLEGAL,
        id="timed-out-put-seen-then-unseen",
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, None, U),
            op(1, ("get", "a"), 20, ("1", 8), 30),
            op(1, ("get", "a"), 40, ("1", 9), 50),
        ],
        ILLEGAL,
        id="timed-out-put-revision-changes",
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, 4, 10),
            op(0, ("put", "a", "2"), 20, None, U),
            op(1, ("cas", "a", 4, "3"), 30, None, U),
            op(1, ("get", "a"), 40, ("3", 9), 50),
        ],
        OK,
        id="timed-out-cas-succeeded-before-timed-out-put",
    ),
    pytest.param(
        [
            op(0, ("put", "a", "1"), 0, None, U),
            op(1, ("cas", "a", 6, "2"), 30, None, U),
            op(1, ("get", "a"), 40, ("2", 9), 50),
            op(0, ("get", "a"), 60, ("2", 9), 70),
        ],
        OK,
        id="timed-out-cas-on-unknown-revision",
    ),
]


@pytest.mark.parametrize(("history", "expected"), KV_CASES)
def test_kv_histories(history: list[Operation], expected: CheckResult) -> None:
    assert check_operations(kv_model(), history) is expected


def test_verbose_points_at_the_stale_read() -> None:
    stale = op(1, ("get", "a"), 40, ("1", 1), 50)
    history = [
        op(0, ("put", "a", "1"), 0, 1, 10),
        op(0, ("put", "b", "x"), 0, 2, 10),
        op(0, ("put", "a", "2"), 20, 3, 30),
        stale,
        op(0, ("get", "b"), 60, ("x", 2), 70),
    ]
    result, info = check_operations_verbose(kv_model(), history)
    assert result is ILLEGAL
    assert len(info.partitions) == 2  # verbose checks every partition, even after a failure
    (failed,) = info.failed
    assert [o.input[1] for o in failed.operations] == ["a", "a", "a"]
    assert failed.longest_prefix == history[0:1] + history[2:3]
    assert failed.unlinearized == [stale]
    assert "stuck" in info.describe()
    ok_part = next(p for p in info.partitions if p.result is OK)
    assert len(ok_part.longest_prefix) == len(ok_part.operations)


# ---- randomized histories from a real sequential execution --------------------------------------


def generate_kv_history(
    rng: random.Random, clients: int, keys: int, n_ops: int, timeout_rate: float = 0.0
) -> list[Operation]:
    """Run a real sequential store at each operation's linearization point, inside [call, ret].

    Each client issues one operation at a time with random latency on both sides of the point at
    which it takes effect, so concurrent operations overlap realistically. A timed-out operation
    gets ``output=None, ret=UNKNOWN_RETURN`` and takes effect only half of the time.
    """
    planned: list[tuple[int, int, int, int]] = []  # (point, client, call, ret)
    for client in range(clients):
        t = rng.randrange(1000)
        for _ in range(n_ops // clients + (client < n_ops % clients)):
            call = t + rng.randrange(1, 500)
            point = call + rng.randrange(1, 3000)
            ret = point + rng.randrange(1, 3000)
            planned.append((point, client, call, ret))
            t = ret
    planned.sort()
    store: dict[str, tuple[str, int]] = {}
    revision = 0
    history = []
    for n, (_, client, call, ret) in enumerate(planned):
        key = f"k{rng.randrange(keys)}"
        current = store.get(key)
        kind = rng.choices(["get", "put", "cas", "delete"], [45, 30, 20, 5])[0]
        timed_out = kind != "get" and rng.random() < timeout_rate
        applies = not timed_out or rng.random() < 0.5
        output: Any
        if kind == "get":
            inp: tuple[Any, ...] = ("get", key)
            output = current if current else (None, 0)
        elif kind == "put":
            inp = ("put", key, f"v{n}")
            if applies:
                revision += 1
                store[key] = (f"v{n}", revision)
            output = revision
        elif kind == "cas":
            mod = current[1] if current else 0
            expected = mod if rng.random() < 0.6 else max(0, mod - rng.randrange(1, 5))
            inp = ("cas", key, expected, f"v{n}")
            output = (False, None)
            if expected == mod and applies:
                revision += 1
                store[key] = (f"v{n}", revision)
                output = (True, revision)
        else:
            inp = ("delete", key)
            output = 1 if current else 0
            if current and applies:
                revision += 1
                del store[key]
        if timed_out:
            output, ret = None, UNKNOWN_RETURN
        history.append(op(client, inp, call, output, ret))
    return history


def corrupt_one_read(rng: random.Random, history: list[Operation], how: str) -> list[Operation]:
    reads = [
        i for i, o in enumerate(history) if o.input[0] == "get" and o.output[0] is not None and o.ret != U
    ]
    i = rng.choice(reads[len(reads) // 4 :])
    value, rev = history[i].output
    bad = ("never-written", rev) if how == "value" else (value, rev + 1)
    return [*history[:i], dataclasses.replace(history[i], output=bad), *history[i + 1 :]]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    "timeout_rate", [pytest.param(0.0, id="no-timeouts"), pytest.param(0.05, id="timeouts")]
)
def test_random_histories_from_a_real_execution_are_linearizable(seed: int, timeout_rate: float) -> None:
    history = generate_kv_history(
        random.Random(seed), clients=4, keys=3, n_ops=400, timeout_rate=timeout_rate
    )
    result, info = check_operations_verbose(kv_model(), history, timeout_s=30)
    assert result is OK, info.describe()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("how", ["value", "revision"])
def test_one_corrupted_read_makes_it_illegal(seed: int, how: str) -> None:
    rng = random.Random(seed)
    history = generate_kv_history(rng, clients=4, keys=3, n_ops=400)
    assert check_operations(kv_model(), corrupt_one_read(rng, history, how), timeout_s=30) is ILLEGAL


def test_register_random_history_with_corruption() -> None:
    """The same idea on the README register: real execution OK, one corrupted read ILLEGAL."""
    rng = random.Random(7)
    planned = sorted(
        (t := rng.randrange(100_000), c, t - rng.randrange(1, 400), t + rng.randrange(1, 400))
        for c in range(5)
        for _ in range(60)
    )
    value, history = 0, []
    for point, client, call, ret in planned:
        if rng.random() < 0.5:
            value = point
            history.append(op(client, ("put", point), call, None, ret))
        else:
            history.append(op(client, ("get",), call, value, ret))
    assert check_operations(register_model(), history) is OK
    i = max(i for i, o in enumerate(history) if o.input[0] == "get")
    history[i] = dataclasses.replace(history[i], output=-5)
    assert check_operations(register_model(), history) is ILLEGAL


def test_performance_6_clients_8_keys_5000_ops() -> None:
    history = generate_kv_history(random.Random(42), clients=6, keys=8, n_ops=5000, timeout_rate=0.01)
    assert len(history) == 5000
    started = time.perf_counter()
    result = check_operations(kv_model(), history, timeout_s=60)
    elapsed = time.perf_counter() - started
    print(f"checked {len(history)} ops in {elapsed:.2f} s")
    assert result is OK
    assert elapsed < 20  # ~10 s is the target on a quiet 2-core box; leave headroom for a busy one


@pytest.mark.parametrize(
    ("history", "expected_rets"),
    [
        pytest.param(
            [op(0, ("put", "a", "1"), 5, None, U), op(1, ("get", "a"), 20, ("1", 3), 30)],
            [30, 30],
            id="read-value-cuts-return",
        ),
        pytest.param(
            [op(0, ("put", "a", "1"), 5, None, U), op(1, ("get", "a"), 20, (None, 0), 30)],
            [30],
            id="unread-and-unrevealed-is-dropped",
        ),
        pytest.param(
            [op(0, ("put", "a", "1"), 5, None, U), op(1, ("delete", "a"), 20, 1, 30)],
            [U, 30],
            id="later-delete-keeps-it",
        ),
        pytest.param(
            [
                op(0, ("put", "a", "1"), 5, None, U),
                op(1, ("put", "a", "1"), 6, 2, 10),
                op(1, ("get", "a"), 20, ("1", 2), 30),
            ],
            [U, 10, 30],
            id="duplicate-values-are-not-cut",
        ),
    ],
)
def test_kv_partition_bounds_timed_out_writes(history: list[Operation], expected_rets: list[int]) -> None:
    partition = kv_model().partition
    assert partition is not None
    (part,) = partition(history)
    assert [o.ret for o in part] == expected_rets
