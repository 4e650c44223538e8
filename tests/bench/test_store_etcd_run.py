"""The store harness against a real local etcd (TLS, client certificates): every workload, and what
the rows say checked against what etcd itself counted."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench.etcd_bench_client import EtcdBenchClient
from bench.etcd_peer import etcd_binary
from bench.etcd_watch_workload import WATCHERS
from bench.store import main
from tests.capabilities import needs

pytestmark = needs("etcd", None if etcd_binary() else "etcd binary not found (apt-get install etcd-server)")


def test_harness_against_etcd(tmp_path: Path) -> None:
    out = tmp_path / "etcd.json"
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("raykube-bench-etcd-")}
    rc = main(
        [
            "--systems", "etcd",
            "--replicas", "1",
            "--clients", "2",
            "--value-bytes", "256",
            "--duration", "0.5",
            "--warmup", "0.1",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["suite"] == "store"
    assert doc["client"] == EtcdBenchClient.describe(4)
    assert doc["fsync"] == {"etcd": True}  # etcd's own WAL sync count moved in every writing row
    assert doc["ratios"] == []  # no raykube peer, no ratio
    assert [g["met"] for g in doc["goals"]] == [None, None, None]
    assert doc["machine"]["cpu_count"] >= 1
    rows = {r["workload"]: r for r in doc["results"]}
    assert list(rows) == ["put", "get", "txn", "watch"]
    for r in rows.values():
        assert "error" not in r, r
        assert (r["system"], r["replicas"], r["clients"], r["value_bytes"]) == ("etcd", 1, 2, 256)
        assert r["client"] == doc["client"]
        assert r["revision_delta"] == r["writes"], r  # one etcd revision per write, warm-up included
        assert 0 < r["ops_per_s"] < 1e7
        assert 0 < r["p50_ms"] <= r["p99_ms"] < 10_000
    put, get, txn, watch = rows["put"], rows["get"], rows["txn"], rows["watch"]
    assert put["writes"] == put["requests"] > 0 and put["fsyncs"] > 0 and put["fsync"] is True
    assert get["writes"] == 0 and get["requests"] > 0
    assert (
        txn["cas_succeeded"] + txn["cas_failed"] == txn["requests"]
        and txn["writes"] == txn["cas_succeeded"] > 0
    )
    assert watch["watchers"] == WATCHERS and watch["puts_per_s"] > 0
    assert watch["events"] == watch["events_expected"] == watch["requests"] * WATCHERS > 0
    # etcd was stopped and its temp data dir removed.
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("raykube-bench-etcd-")}
    assert after <= before
