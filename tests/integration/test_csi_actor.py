"""The volume plugin actor (nodeagent/csi/actor.py) on a real Ray: the example tmpfs driver served by
``csi-<node>``, reached with serialized requests through ``call``, its errors coming back as
``CSIError``, a restart of the actor serving the same volumes again, and a second actor proxying to
the first one's socket (``socket:/path``, the stand-in for a real CSI driver).

The driver runs in a subprocess with a Ray of its own (``ray.init(address="local")``: a new local
instance, so no ``ray stop`` and no session cluster); run it under ``flock /tmp/raykube-heavy.lock``.
Root: the example driver mounts tmpfs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.capabilities import not_root, require

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]

DRIVER = r"""
import json, sys, time
import grpc, ray
from nodeagent.csi import csi_pb2, rpc
from nodeagent.csi.actor import VolumeActor, raise_csi_error, volume_actor_name
from nodeagent.csi.errors import CSIError

root = sys.argv[1]
ray.init(address="local", namespace="csi-actor-test", include_dashboard=False, num_cpus=1,
         logging_level="ERROR")
out = {}
name = volume_actor_name("n1")
actor = VolumeActor.options(name=name, lifetime="detached").remote(
    "examples.tmpfs_csi:TmpfsPlugin", "n1", root + "/csi", root + "/csi.sock", {"max_size": 4 << 20},
    {"topology.kubernetes.io/zone": "z1"})
out["ready"] = ray.get(actor.ready.remote(), timeout=120)

MOUNT = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=1))
def create(size):
    req = csi_pb2.CreateVolumeRequest(name="pvc-1", volume_capabilities=[MOUNT],
                                      capacity_range=csi_pb2.CapacityRange(required_bytes=size))
    data = ray.get(actor.call.remote("CreateVolume", req.SerializeToString()), timeout=60)
    return rpc.parse_response("CreateVolume", data)
out["volume_id"] = create(1 << 20).volume.volume_id
try:
    create(8 << 20)
except Exception as e:
    out["is_csi_error"] = isinstance(e, CSIError)
    try:
        raise_csi_error(e)
    except CSIError as plain:
        out["error"] = [plain.code.name, plain.message]

ray.kill(actor, no_restart=False)  # Ray restarts it: the plugin serves again, its volume known
time.sleep(1)
out["ready_again"] = ray.get(actor.ready.remote(), timeout=120)
out["again"] = create(1 << 20).volume.volume_id

proxy = VolumeActor.options(name=volume_actor_name("n2")).remote(
    "socket:" + root + "/csi.sock", "n2", root + "/unused", root + "/unused.sock")
out["proxy_ready"] = ray.get(proxy.ready.remote(), timeout=120)
req = csi_pb2.DeleteVolumeRequest(volume_id=out["volume_id"])
ray.get(proxy.call.remote("DeleteVolume", req.SerializeToString()), timeout=60)
try:
    stage = csi_pb2.NodeStageVolumeRequest().SerializeToString()
    ray.get(proxy.call.remote("NodeStageVolume", stage), timeout=60)
except Exception as e:
    try:
        raise_csi_error(e)
    except CSIError as plain:
        out["unimplemented"] = plain.code.name

# The controllers' path: csi_caller finds csi-<node> by name and hands back typed messages.
import asyncio
from nodeagent.csi.actor import csi_caller
async def controllers():
    csi = csi_caller("csi-actor-test")
    one_mib = csi_pb2.CapacityRange(required_bytes=1 << 20)
    made = await csi("n1", "CreateVolume", csi_pb2.CreateVolumeRequest(
        name="pvc-2", volume_capabilities=[MOUNT], capacity_range=one_mib))
    await csi("n1", "DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=made.volume.volume_id))
    errors = []
    for node, request in (("n1", csi_pb2.CreateVolumeRequest(name="big", volume_capabilities=[MOUNT],
                           capacity_range=csi_pb2.CapacityRange(required_bytes=64 << 20))),
                          ("n9", csi_pb2.CreateVolumeRequest(name="x"))):
        try:
            await csi(node, "CreateVolume", request)
        except CSIError as e:
            errors.append([type(e).__name__, e.code.name, e.message])
    return [type(made).__name__, made.volume.capacity_bytes, errors]
out["caller"] = asyncio.run(controllers())
ray.get(proxy.stop.remote(True), timeout=60)
ray.get(actor.stop.remote(True), timeout=60)
ray.kill(proxy, no_restart=True)
ray.kill(actor, no_restart=True)
print("RESULT " + json.dumps(out), flush=True)
ray.shutdown()
"""


def test_volume_actor_serves_restarts_and_proxies(tmp_path: Path) -> None:
    require("root", not_root())
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tmp_path)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"driver failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    out = json.loads(lines[-1].removeprefix("RESULT "))
    socket = str(tmp_path / "csi.sock")
    topology = {"topology.tmpfs.csi.example.com/node": "n1"}
    assert out["ready"] == {
        "socket": socket,
        "driver": "tmpfs.csi.example.com",
        "node_id": "n1",
        "topology": topology,
    }
    assert out["is_csi_error"] is True
    assert out["error"][0] == "OUT_OF_RANGE"
    assert "at most 4194304" in out["error"][1]
    assert out["ready_again"] == out["ready"]
    assert out["again"] == out["volume_id"]
    assert out["proxy_ready"] == out["ready"]
    assert out["unimplemented"] == "UNIMPLEMENTED"
    made, size, errors = out["caller"]
    assert (made, size) == ("CreateVolumeResponse", 1 << 20)
    assert errors[0][:2] == ["CSIError", "OUT_OF_RANGE"]
    assert errors[1][:2] == ["CSIError", "UNAVAILABLE"]
    assert "node 'n9' has no volume plugin (no actor csi-n9" in errors[1][2]
    assert list((tmp_path / "csi").iterdir()) == []
