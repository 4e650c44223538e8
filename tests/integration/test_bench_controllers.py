"""`raykube bench controllers` end to end on a small size: what it reports is checked against what ran.

The pod counts come from the bench's pod watch (the server's events), the ceiling from the API's
replies; the test checks that every pod of both workloads was created by the controllers and bound by
the scheduler, and that the reported rates and ratios are computed from the reported times. No figure
is compared with a threshold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ray_stop

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

PODS = 40


@pytest.mark.timeout(600)
def test_bench_controllers_reports_what_it_ran(tmp_path: Path) -> None:
    out = tmp_path / "controllers.json"
    env = dict(
        os.environ, RAYKUBE_DATA_DIR=str(tmp_path / "data"), RAY_USAGE_STATS_ENABLED="0", COLUMNS="200"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.controllers", "--quick", "--pods", str(PODS), "--json", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=540,
        )
    finally:
        ray_stop()  # the bench started a local Ray head when none ran
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    doc = json.loads(out.read_text())
    ceiling = doc["api_ceiling"]
    assert ceiling["clients"] == 64 and ceiling["ops_per_s"] > 0 and ceiling["errors"] == 0, ceiling
    assert "-nodelifecycle" in doc["controllers"]  # hollow nodes never report: not marked unreachable
    assert [r["workload"] for r in doc["results"]] == [f"Deployment/{PODS}", f"Job/{PODS}"]
    for r in doc["results"]:
        assert r["settled"] and r["created"] == PODS and r["bound"] == PODS, r
        assert 0 < r["first_pod_s"] <= r["all_created_s"] <= r["all_bound_s"], r
        assert r["pods_created_per_s"] == pytest.approx(PODS / r["all_created_s"])
        assert r["ratio_to_api_ceiling"] == pytest.approx(r["pods_created_per_s"] / ceiling["ops_per_s"])
    assert "pods/s" in proc.stdout and "API ceiling" in proc.stdout
