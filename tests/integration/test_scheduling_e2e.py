"""`raykube bench scheduling --mode end_to_end` on a small shape: a private control plane (store, API
server, scheduler actor) in its own Ray namespace, hollow nodes and pods through the REST API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = """
import json, sys
from bench.scheduling_e2e import run_end_to_end
from bench.scheduling_workloads import WORKLOADS
workload = WORKLOADS["SchedulingBasic/500Nodes_1000Pods"].scaled("tiny-e2e", 20, 10, 60)
print(json.dumps(run_end_to_end(workload)))
"""


def test_end_to_end_mode_schedules_every_pod_through_the_api(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
        # keep HOME: joining a running Ray (the session's `raykube up`) needs ~/.ray/auth_token
        env=dict(os.environ, RAY_USAGE_STATS_ENABLED="0"),
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    entry = json.loads(proc.stdout.strip().splitlines()[-1])
    assert entry["mode"] == "end_to_end" and entry["workload"] == "tiny-e2e"
    assert entry["scheduled"] == 60 and entry["unscheduled"] == 0 and entry["init_not_settled"] == 0
    assert entry["throughput"]["average"] > 0
    assert 0 < entry["latency_ms"]["p50"] <= entry["latency_ms"]["p99"]
    assert entry["hops_per_pod"] == 6
