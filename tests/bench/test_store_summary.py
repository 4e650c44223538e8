"""Percentile / summary math of the store benchmark on known latency lists."""

from __future__ import annotations

import pytest

from bench.store import KeySource, percentile, ratio_lines, summarize


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
