"""gRPC's fork handlers stay off in Ray workers that run our code (cluster.machinery.grpcfork).

A Ray actor that serves and calls gRPC (a CSI plugin on a unix socket, as ``csi-<node>`` does) while
it runs subprocesses, as the node agent, the runtimes and the volume plugins do all the time. With
grpcio's fork handlers on, about 1 in 100 of those children died with SIGSEGV before ``exec`` (4 and 8
of 600 when measured; the startup bench's ``umount`` in a CI run), so 600 children with none killed by
a signal is the check. The driver runs with ``GRPC_ENABLE_FORK_SUPPORT`` removed from its environment
and imports nothing of raykube: the worker gets the setting only from importing our packages.

A Ray of its own (``ray.init(address="local")``, no ``ray stop``); run it under
``flock /tmp/raykube-heavy.lock``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]

DRIVER = r"""
import asyncio, json, os, sys
import ray

@ray.remote(num_cpus=0)
class Forker:
    async def run(self, rounds: int, root: str) -> dict:
        env_before = os.environ.get("GRPC_ENABLE_FORK_SUPPORT")
        from nodeagent.csi import csi_pb2
        from nodeagent.csi.client import CSIClient
        from nodeagent.csi.plugin import CSIContext, CSIPlugin
        from nodeagent.csi.server import serve

        class Info(CSIPlugin):
            async def GetPluginInfo(self, request):
                return csi_pb2.GetPluginInfoResponse(name="fork.example", vendor_version="1")

        sock = root + f"/fork-{os.getpid()}.sock"
        server = await serve(Info(CSIContext("n1", root)), sock)
        client = CSIClient(sock)
        signalled = []

        async def one() -> None:
            await client.call("GetPluginInfo", csi_pb2.GetPluginInfoRequest())
            proc = await asyncio.create_subprocess_exec("true")
            if await proc.wait() < 0:
                signalled.append(proc.returncode)

        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(10)))
        await client.close()
        await server.stop(0)
        return {"before": env_before, "after": os.environ.get("GRPC_ENABLE_FORK_SUPPORT"),
                "signalled": signalled}

ray.init(address="local", namespace="grpc-fork-test", include_dashboard=False, num_cpus=1,
         logging_level="ERROR")
print(json.dumps(ray.get(Forker.remote().run.remote(60, sys.argv[1]), timeout=240)))
"""


def test_children_of_a_grpc_serving_ray_actor_reach_exec(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=REPO,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["before"] is None, "the worker inherited the setting: the test would prove nothing"
    assert result["signalled"] == [], f"children killed by a signal before exec: {result['signalled']}"
    assert result["after"] == "false"
