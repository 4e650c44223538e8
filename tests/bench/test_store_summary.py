"""The store benchmark's pure parts: percentiles, the request stream, ratios, goals, counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.etcd_peer import wal_fsyncs
from bench.etcd_workloads import (
    PRELOAD_WORKER,
    RequestStream,
    Spec,
    key,
    percentile,
    prefix_range,
    seed_for,
    summarize,
    values_for,
)
from bench.store import build_parser, config_from
from bench.store_report import fsync_summary, goals, ratio_lines, ratios
from cluster.store.raft.types import Entry, HardState
from cluster.store.wal import WAL


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    assert percentile([7], 50) == 7
    assert percentile([7], 99) == 7
    # 10 values: p50 is the 5th, p99 the 10th (ceil(9.9) = 10).
    ten = [10, 20, 30, 40, 50, 60, 70, 80, 90, 1000]
    assert percentile(ten, 50) == 50
    assert percentile(ten, 99) == 1000


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_summarize_known_latencies() -> None:
    # 200 ops in 0.5 s; latencies 1..200 ms (given unsorted), in ns.
    lat_ns = [ms * 1_000_000 for ms in reversed(range(1, 201))]
    s = summarize(lat_ns, elapsed_ns=500_000_000)
    assert s == {"ops_per_s": 400.0, "p50_ms": 100.0, "p99_ms": 198.0}


def test_summarize_rejects_empty_or_zero_time() -> None:
    with pytest.raises(ValueError):
        summarize([], 1)
    with pytest.raises(ValueError):
        summarize([1], 0)


def _spec(**kw: Any) -> Spec:
    base: dict[str, Any] = {
        "workload": "put",
        "clients": 4,
        "value_bytes": 256,
        "duration_s": 1.0,
        "warmup_s": 0.0,
        "tag": 7,
        "seed": seed_for("put", 3, 4, 256),
    }
    return Spec(**{**base, **kw})


def test_request_stream_is_the_same_for_every_system() -> None:
    spec = _spec()
    values = values_for(spec.seed, spec.value_bytes)
    assert values == values_for(spec.seed, spec.value_bytes)  # the same pool for both systems
    assert all(len(v) == 256 for v in values) and len(set(values)) == len(values)

    def draw(worker: int) -> list[tuple[bytes, bytes, int]]:
        s = RequestStream(spec, worker, values)
        return [(s.next_key(), s.value(), s.index(100)) for _ in range(50)]

    assert draw(0) == draw(0)  # a second system gets the very same requests, in the same order
    assert draw(0) != draw(1)  # workers differ from one another
    keys = [k for w in range(spec.clients) for k, _, _ in draw(w)]
    assert len(set(keys)) == len(keys) and all(len(k) == 8 for k in keys)
    start, end = prefix_range(spec.tag)
    assert all(start <= k < end for k in keys)
    assert not start <= key(spec.tag + 1, 0, 1) < end and not start <= key(spec.tag - 1, 9, 9) < end
    assert seed_for("put", 3, 4, 256) != seed_for("get", 3, 4, 256)


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"workload": "scan"}, id="unknown-workload"),
        pytest.param({"tag": 0}, id="tag-zero"),
        pytest.param({"tag": 0xFFFF}, id="tag-too-high"),
        pytest.param({"clients": PRELOAD_WORKER}, id="clients-collide-with-preload"),
    ],
)
def test_spec_rejects(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        _spec(**kw)


def _pair(
    workload: str, replicas: int, clients: int, rk: float, et: float, p50: tuple[float, float]
) -> list[Any]:
    base = {"workload": workload, "replicas": replicas, "clients": clients, "value_bytes": 256}
    return [
        {**base, "system": "raykube", "ops_per_s": rk, "p50_ms": p50[0], "p99_ms": 4.0},
        {**base, "system": "etcd", "ops_per_s": et, "p50_ms": p50[1], "p99_ms": 2.0},
    ]


def test_ratios_and_lines_per_workload() -> None:
    results = _pair("put", 3, 4, 300.0, 1200.0, (3.0, 1.0)) + _pair("get", 3, 4, 900.0, 600.0, (1.0, 2.0))
    results.append({**results[0], "workload": "txn", "system": "raykube"})  # no etcd peer: no ratio
    assert ratios(results) == [
        {"workload": "put", "replicas": 3, "clients": 4, "value_bytes": 256, "raykube_over_etcd": 0.25,
         "p50_ratio": 3.0, "p99_ratio": 2.0},
        {"workload": "get", "replicas": 3, "clients": 4, "value_bytes": 256, "raykube_over_etcd": 1.5,
         "p50_ratio": 0.5, "p99_ratio": 2.0},
    ]  # fmt: skip
    assert list(ratio_lines(results)) == [
        "put replicas=3 clients=4 value_bytes=256: raykube/etcd ops_per_s = 0.25, p50 = 3.00, p99 = 2.00",
        "get replicas=3 clients=4 value_bytes=256: raykube/etcd ops_per_s = 1.50, p50 = 0.50, p99 = 2.00",
    ]
    failed = _pair("put", 1, 16, 1.0, 1.0, (1.0, 1.0))
    failed[0].update(ops_per_s=None, error="start failed")
    assert ratios(failed)[0]["raykube_over_etcd"] is None
    assert list(ratio_lines(failed)) == [
        "put replicas=1 clients=16 value_bytes=256: raykube/etcd n/a (raykube failed)"
    ]


def test_goals_judge_the_rows_they_name() -> None:
    results = (
        _pair("put", 3, 64, 5000.0, 4000.0, (9.0, 8.0))  # 1.25x: met
        + _pair("put", 3, 1, 500.0, 1000.0, (2.5, 1.0))  # p50 2.5x: missed
        + _pair("get", 1, 64, 900.0, 1000.0, (1.0, 1.0))  # 0.9x: missed, although ...
        + _pair("get", 3, 64, 2000.0, 1000.0, (1.0, 1.0))  # ... this one is 2x
    )
    by_goal = {g["goal"]: g for g in goals(ratios(results))}
    assert [g["met"] for g in by_goal.values()] == [True, False, False]
    gets = by_goal["linearizable gets at 64 clients: >= 1.0x etcd"]
    assert gets["rows"] == [
        {"replicas": 1, "clients": 64, "value_bytes": 256, "raykube_over_etcd": 0.9},
        {"replicas": 3, "clients": 64, "value_bytes": 256, "raykube_over_etcd": 2.0},
    ]
    assert [g["met"] for g in goals([])] == [None, None, None]  # nothing measured: not judged


def test_fsync_summary_comes_from_the_counts() -> None:
    base = {"workload": "put", "replicas": 1, "value_bytes": 256, "writes": 10}
    results = [
        {**base, "system": "raykube", "clients": 1, "fsync": True},
        {**base, "system": "raykube", "clients": 2, "fsync": True},
        {**base, "system": "raykube", "workload": "get", "clients": 2, "writes": 0, "fsync": False},
        {**base, "system": "etcd", "clients": 1, "fsync": True},
        {**base, "system": "etcd", "clients": 2, "fsync": False},
    ]
    # A read-only measurement syncs nothing and says nothing about durability.
    assert fsync_summary(results) == {"raykube": True, "etcd": False}
    assert fsync_summary([{**base, "system": "etcd", "clients": 1, "fsync": None}]) == {"etcd": None}


def test_wal_fsyncs_from_etcds_metrics_page() -> None:
    page = (
        "# HELP etcd_disk_wal_fsync_duration_seconds The latency distributions of fsync called by WAL.\n"
        "# TYPE etcd_disk_wal_fsync_duration_seconds histogram\n"
        'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"} 10\n'
        "etcd_disk_wal_fsync_duration_seconds_sum 0.5\n"
        "etcd_disk_wal_fsync_duration_seconds_count 1234\n"
    )
    assert wal_fsyncs(page) == 1234
    with pytest.raises(ValueError):
        wal_fsyncs("etcd_server_has_leader 1\n")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param([], ([1, 3], [1, 16, 64], [256, 4096], 5.0), id="full"),
        pytest.param(["--quick"], ([1, 3], [1, 64], [256], 1.5), id="quick"),
        pytest.param(
            ["--quick", "--clients", "2", "--replicas", "1"], ([1], [2], [256], 1.5), id="quick-flags"
        ),
    ],
)
def test_matrix_of_the_flags(argv: list[str], expected: tuple[Any, ...]) -> None:
    cfg = config_from(build_parser().parse_args(argv))
    assert (cfg.replicas, cfg.clients, cfg.value_bytes, cfg.duration_s) == expected
    assert cfg.workloads == ["put", "get", "txn", "watch"]


@pytest.mark.parametrize(
    ("syncs", "expected"),
    [
        pytest.param([True, True], 2, id="each-synced-save"),
        pytest.param([False, False], 0, id="unsynced-saves"),
        pytest.param([False, True], 1, id="one-sync-covers-both"),
    ],
)
def test_wal_counts_its_syncs(tmp_path: Path, syncs: list[bool], expected: int) -> None:
    wal, _ = WAL.open(tmp_path / "wal")
    try:
        for i, sync in enumerate(syncs, start=1):
            wal.save(HardState(1, 0, 0), [Entry(term=1, index=i, data=b"x")], sync=sync)
        assert wal.syncs == expected
    finally:
        wal.close()
