"""Runs the store harness against a real local etcd (fails without the etcd binary unless opted out)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from bench.etcd_peer import etcd_binary
from bench.store import main
from bench.store_report import ETCD_FSYNC
from tests.capabilities import needs

pytestmark = needs("etcd", None if etcd_binary() else "etcd binary not found (apt-get install etcd-server)")


def test_harness_against_etcd(tmp_path: Path) -> None:
    out = tmp_path / "etcd.json"
    before = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("raykube-bench-etcd-")}
    rc = main(
        [
            "--systems", "etcd",
            "--replicas", "1",
            "--clients", "1,4",
            "--value-bytes", "256",
            "--duration", "0.5",
            "--warmup", "0.1",
            "--json", str(out),
        ]
    )  # fmt: skip
    assert rc == 0
    doc = json.loads(out.read_text())
    assert doc["suite"] == "store"
    assert doc["fsync"] == {"etcd": ETCD_FSYNC}  # etcd reports no count: its configuration, said so
    assert doc["ratios"] == []  # no raykube peer, no ratio
    assert doc["machine"]["cpu_count"] >= 1
    results = doc["results"]
    assert [(r["system"], r["replicas"], r["clients"], r["value_bytes"]) for r in results] == [
        ("etcd", 1, 1, 256),
        ("etcd", 1, 4, 256),
    ]
    for r in results:
        assert "error" not in r, r
        assert set(r) == {"system", "replicas", "clients", "value_bytes", "ops_per_s", "p50_ms", "p99_ms"} | {
            "puts", "revision_delta", "fsyncs", "fsync"
        }  # fmt: skip
        assert r["revision_delta"] == r["puts"] > 0  # one etcd revision per put, warmup included
        assert r["fsyncs"] is None and r["fsync"] is None
        assert 0 < r["ops_per_s"] < 1e7
        assert 0 < r["p50_ms"] <= r["p99_ms"] < 10_000
    # etcd was stopped and its temp data dir removed.
    after = {p for p in os.listdir(tempfile.gettempdir()) if p.startswith("raykube-bench-etcd-")}
    assert after <= before
