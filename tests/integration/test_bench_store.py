"""`raykube bench store --quick` end to end: what the bench reports is checked against what it ran.

The raykube side is a real replicated store deployed on a local Ray, its replicas serving etcd's
v3 gRPC API over TLS; the etcd peer is a real etcd with TLS. Both are driven by the same client.
The counts in the JSON come from the systems (the revision through the API, WAL syncs from the
replicas' status and from etcd's metrics), so a write the store did not apply, a WAL that did not
sync, an event a watcher missed, or a ratio not computed from the reported figures fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.etcd_peer import etcd_binary
from bench.etcd_watch_workload import WATCHERS
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
    rows = {(r["workload"], r["system"]): r for r in doc["results"]}
    assert set(rows) == {(w, s) for w in ("put", "get", "txn", "watch") for s in ("raykube", "etcd")}
    for (workload, _system), r in rows.items():
        assert "error" not in r, r
        assert (r["replicas"], r["clients"], r["value_bytes"]) == (1, 2, 256)
        assert r["client"] == doc["client"]  # one client drove both systems
        # The store's revision advanced by exactly the writes the workers made: none lost or doubled.
        assert r["revision_delta"] == r["writes"], r
        assert r["requests"] > 0 and r["ops_per_s"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"]
        if workload != "get":
            # Synced logs, counted by the systems (the replicas' WAL, etcd's metrics), not the bench.
            assert r["writes"] > 0 and r["fsyncs"] > 0 and r["fsync"] is True, r
        if workload == "txn":
            assert r["cas_succeeded"] + r["cas_failed"] == r["requests"] and r["cas_succeeded"] == r["writes"]
        if workload == "watch":
            assert r["events"] == r["events_expected"] == r["requests"] * WATCHERS, r
    assert doc["fsync"] == {"raykube": True, "etcd": True}
    for ratio in doc["ratios"]:
        rk, et = rows[(ratio["workload"], "raykube")], rows[(ratio["workload"], "etcd")]
        assert ratio["raykube_over_etcd"] == round(rk["ops_per_s"] / et["ops_per_s"], 2)
        assert ratio["p50_ratio"] == round(rk["p50_ms"] / et["p50_ms"], 2)
        line = (
            f"{ratio['workload']} replicas=1 clients=2 value_bytes=256: raykube/etcd ops_per_s = "
            f"{rk['ops_per_s'] / et['ops_per_s']:.2f}"
        )
        assert line in proc.stdout
    assert len(doc["ratios"]) == 4
