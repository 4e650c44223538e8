"""`raykube bench startup --runtime process --pods 5` end to end: a private control plane with a
process-runtime node agent in its own Ray namespace, five busybox pods created to Running, then five
with volumes and five of their image without."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_quick_process_bench_runs_every_pod_and_writes_the_suite_json(tmp_path: Path) -> None:
    out = tmp_path / "startup.json"
    args = ["bench", "startup", "--quick", "--runtime", "process", "--pods", "5", "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, "-m", "cluster.cli", *args],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        # The caller's HOME: Ray's auth token lives in ~/.ray, needed to join a running Ray.
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "startup"
    (result,) = doc["results"]
    assert "error" not in result, result
    assert result["runtime"] == "process" and result["pods"] == 5
    assert result["running"] == 5 and result["not_running"] == 0 and result["not_deleted"] == 0
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["pods_per_second"] > 0
    # the same run's pods with volumes (ConfigMap, emptyDir, claim) and their image without volumes
    for key in ("image_root", "volumes"):
        variant = result[key]
        assert "error" not in variant, variant
        assert variant["running"] == 5 and variant["not_deleted"] == 0
        assert 0 < variant["latency_ms"]["p50"] <= variant["latency_ms"]["p99"]
    assert result["volumes"]["volumes_not_deleted"] == 0
    raw, slo = doc["peers"]
    assert raw["system"] == "raw CRI (process)" and raw["started"] == 5 and raw["ratio_p99"] > 0
    assert slo["latency_ms"]["p99"] == 5000.0 and slo["source"].startswith("published")
