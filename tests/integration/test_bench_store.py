"""`raykube bench store --quick` end to end: what the bench reports is checked against what it ran.

The raykube side starts a real replicated store on a local Ray; the etcd peer is a real etcd. The
counts in the JSON come from the systems (raykube's replica status, etcd's revision), so a put the
store did not apply, a WAL that did not sync, or a ratio not computed from the reported figures fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.etcd_peer import etcd_binary
from tests.capabilities import require
from tests.integration.conftest import ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]


@pytest.mark.timeout(600)
def test_bench_store_quick_reports_what_it_ran(tmp_path: Path) -> None:
    require("etcd", None if etcd_binary() else "etcd binary not found (apt-get install etcd-server)")
    out = tmp_path / "store.json"
    data = str(tmp_path / "data")
    env = dict(os.environ, RAYKUBE_DATA_DIR=data, RAY_USAGE_STATS_ENABLED="0", COLUMNS="250")
    argv = ["--quick", "--json", str(out), "--replicas", "1", "--clients", "2", "--value-bytes", "256"]
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.store", *argv], capture_output=True, text=True, env=env, timeout=540
        )
    finally:
        ray_stop()  # the bench started a local Ray head for the store (marker in RAYKUBE_DATA_DIR)
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    doc = json.loads(out.read_text())
    by_system = {r["system"]: r for r in doc["results"]}
    assert set(by_system) == {"raykube", "etcd"}, doc["results"]
    rk, et = by_system["raykube"], by_system["etcd"]
    for r in (rk, et):
        assert "error" not in r, r
        assert (r["replicas"], r["clients"], r["value_bytes"]) == (1, 2, 256)
        # Every put advanced the store's revision by one: none lost, none counted twice.
        assert r["puts"] > 0 and r["revision_delta"] == r["puts"], r
        assert r["ops_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
    # The store synced its WAL (it has no no-fsync mode): counted by the replica, not asserted by the bench.
    assert rk["fsyncs"] > 0 and rk["fsync"] is True
    assert et["fsyncs"] is None and et["fsync"] is None
    assert doc["fsync"]["raykube"] is True and "--unsafe-no-fsync never passed" in doc["fsync"]["etcd"]
    ratio = round(rk["ops_per_s"] / et["ops_per_s"], 2)
    assert doc["ratios"] == [{"replicas": 1, "clients": 2, "value_bytes": 256, "raykube_over_etcd": ratio}]
    assert f"replicas=1 clients=2 value_bytes=256: raykube/etcd ops_per_s = {ratio:.2f}" in proc.stdout
