"""Percentile / summary math of the store benchmark on known latency lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.store import KeySource, count_fields, percentile, summarize
from bench.store_report import ETCD_FSYNC, fsync_summary, ratio_lines, ratios
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


def test_keys_are_unique_8_bytes() -> None:
    ks = KeySource()
    keys = [ks.next() for _ in range(1000)]
    assert len(set(keys)) == 1000
    assert all(len(k) == 8 for k in keys)


def test_ratio_lines() -> None:
    base = {"replicas": 1, "clients": 16, "value_bytes": 256}
    results = [
        {**base, "system": "raykube", "ops_per_s": 500.0, "p50_ms": 1.0, "p99_ms": 2.0},
        {**base, "system": "etcd", "ops_per_s": 1000.0, "p50_ms": 1.0, "p99_ms": 2.0},
        {**base, "clients": 64, "system": "raykube", "ops_per_s": None, "error": "start failed"},
        {**base, "clients": 64, "system": "etcd", "ops_per_s": 900.0, "p50_ms": 1.0, "p99_ms": 2.0},
    ]
    lines = list(ratio_lines(results))
    assert lines[0].endswith("= 0.50")
    assert "clients=64" in lines[1] and "n/a (raykube failed)" in lines[1]


@pytest.mark.parametrize(
    ("puts", "before", "after", "expected"),
    [
        pytest.param(10, {"revision": 5, "fsyncs": 3}, {"revision": 15, "fsyncs": 9},
                     {"puts": 10, "revision_delta": 10, "fsyncs": 6, "fsync": True}, id="synced"),
        pytest.param(10, {"revision": 5, "fsyncs": 3}, {"revision": 15, "fsyncs": 3},
                     {"puts": 10, "revision_delta": 10, "fsyncs": 0, "fsync": False}, id="no-sync-seen"),
        pytest.param(4, {"revision": 1, "fsyncs": None}, {"revision": 5, "fsyncs": None},
                     {"puts": 4, "revision_delta": 4, "fsyncs": None, "fsync": None}, id="not-reported"),
    ],
)  # fmt: skip
def test_count_fields(puts: int, before: dict, after: dict, expected: dict) -> None:  # type: ignore[type-arg]
    assert count_fields(puts, before, after) == expected


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        pytest.param([True, True], True, id="all-synced"),
        pytest.param([True, False], False, id="one-unsynced"),
    ],
)
def test_fsync_summary_comes_from_the_counts(flags: list[bool], expected: bool) -> None:
    base = {"replicas": 1, "value_bytes": 256, "ops_per_s": 1.0}
    results = [{**base, "system": "raykube", "clients": i, "fsync": f} for i, f in enumerate(flags)]
    results.append({**base, "system": "etcd", "clients": 0, "fsync": None})
    assert fsync_summary(results) == {"raykube": expected, "etcd": ETCD_FSYNC}
    assert fsync_summary(results[-1:]) == {"etcd": ETCD_FSYNC}


def test_ratios_match_ratio_lines() -> None:
    base = {"replicas": 3, "clients": 4, "value_bytes": 256}
    results = [
        {**base, "system": "raykube", "ops_per_s": 300.0},
        {**base, "system": "etcd", "ops_per_s": 1200.0},
    ]
    assert ratios(results) == [{**base, "raykube_over_etcd": 0.25}]
    assert list(ratio_lines(results)) == [
        "replicas=3 clients=4 value_bytes=256: raykube/etcd ops_per_s = 0.25"
    ]


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
