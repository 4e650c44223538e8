"""The Ray head ``raykube up`` starts requires Ray's token (``cluster.ray_auth``): a driver with the
host's token reaches the store replicas, one with another token is turned away before it sees any
actor. This is what authenticates the store's links (replicas, API servers) over Ray."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import ray_stop, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.own_ray]

# Joins the running Ray and lists this cluster's named actors; prints them only once connected.
DRIVER = """
import json, sys, ray
ray.init(address="auto", log_to_driver=False)
actors = ray.util.list_named_actors(all_namespaces=True)
names = sorted(a["name"] for a in actors if a["namespace"] == sys.argv[1])
print("CONNECTED " + json.dumps(names))
"""


def drive(namespace: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    try:
        return subprocess.run(
            [sys.executable, "-c", DRIVER, namespace],
            capture_output=True,
            text=True,
            env={**environ, "RAY_USAGE_STATS_ENABLED": "0", **env},
            timeout=90,
            check=False,
        )
    except subprocess.TimeoutExpired as err:  # a refusal may also look like a driver that never connects
        out = err.stdout.decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
        return subprocess.CompletedProcess(err.cmd, -1, out, "timed out")


def test_the_ray_head_up_starts_refuses_a_driver_without_its_token(data_dir: Path) -> None:
    ray_stop()
    try:
        run_cli("up", "--runtime", "none", "--port", "0", data_dir=data_dir)
        namespace = json.loads((data_dir / "cluster.json").read_text())["namespace"]
        allowed = drive(namespace)  # the host's token, at Ray's default path
        assert allowed.returncode == 0 and "CONNECTED" in allowed.stdout, allowed.stderr[-2000:]
        assert "store-1" in json.loads(allowed.stdout.split("CONNECTED ", 1)[1]), allowed.stdout
        refused = drive(namespace, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="0" * 64)
        assert refused.returncode != 0 and "CONNECTED" not in refused.stdout, refused.stdout
    finally:
        run_cli("down", "--purge", data_dir=data_dir, check=False)
        ray_stop()
