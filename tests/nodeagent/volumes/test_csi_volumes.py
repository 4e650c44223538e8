"""CSIVolumes against the real API server in process and the built-in hostpath driver served on a real
unix socket, with real bind mounts (root): register, stage + publish + unpublish + unstage (checked
with findmnt), claims that cannot be used yet, a driver that needs attachment, node expansion.

The test plays the control plane's part by hand (CreateVolume as the provisioner, a bound PV and
claim as the binder, a VolumeAttachment as the attach/detach controller, the resize condition as the
expander); everything on the node side is what runs in the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster.client.rest import ApiClient
from nodeagent.agent.api import RestAgentApi
from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.hostpath import DRIVER_NAME, TOPOLOGY_NODE_KEY, HostPathPlugin
from nodeagent.csi.plugin import CSIContext
from nodeagent.csi.server import serve, stop_serving
from nodeagent.volumes import csi_layout as layout
from nodeagent.volumes.csi_node_info import NODE_ID_ANNOTATION, STORAGE
from nodeagent.volumes.csi_volumes import CSIVolumes
from nodeagent.volumes.errors import FAILED_ATTACH, VolumeError
from tests.capabilities import not_root, require
from tests.cluster.controllers.local_apiserver import local_apiserver

NODE = "node-a"
NS = "default"
GI = 1 << 30
MI = 1 << 20


def mounts_under(root: Path) -> list[str]:
    """What findmnt lists at or below ``root``."""
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], check=True, capture_output=True, text=True
    ).stdout
    prefix = os.path.realpath(root)
    return sorted(m for m in out.splitlines() if m == prefix or m.startswith(prefix + "/"))


def fs_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


@dataclass
class Env:
    client: ApiClient
    csi: CSIClient
    volumes: CSIVolumes
    data: Path
    node_uid: str

    async def csidriver(self, **spec: Any) -> None:
        body = {"apiVersion": STORAGE, "kind": "CSIDriver", "metadata": {"name": DRIVER_NAME}, "spec": spec}
        with contextlib.suppress(Exception):
            await self.client.delete(STORAGE, "csidrivers", DRIVER_NAME)
        await self.client.create(STORAGE, "csidrivers", body)

    async def bound_claim(self, claim: str, size: int = GI, **pv_spec: Any) -> tuple[str, str]:
        """A volume made by the driver, its PV and a claim bound to it; returns (pv name, handle)."""
        made = await self.csi.call(
            "CreateVolume",
            csi_pb2.CreateVolumeRequest(
                name=f"pvc-{claim}",
                capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                volume_capabilities=[capability()],
            ),
        )
        handle, pv_name = made.volume.volume_id, f"pvc-{claim}"
        pvc = await self.client.create("v1", "persistentvolumeclaims", claim_body(claim), NS)
        pv = {
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": str(size)}, "accessModes": ["ReadWriteOnce"],
                "csi": {"driver": DRIVER_NAME, "volumeHandle": handle,
                        "volumeAttributes": dict(made.volume.volume_context)},
                "claimRef": {"namespace": NS, "name": claim, "uid": pvc["metadata"]["uid"]},
                **pv_spec,
            },
        }  # fmt: skip
        await self.client.create("v1", "persistentvolumes", pv)
        pvc["spec"]["volumeName"] = pv_name
        await self.client.update("v1", "persistentvolumeclaims", pvc, NS)
        status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": str(size)}}
        await self.client.patch(
            "v1", "persistentvolumeclaims", claim, {"status": status}, NS, subresource="status"
        )
        return pv_name, handle


def capability() -> csi_pb2.VolumeCapability:
    mode = csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER)
    return csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=mode)


def claim_body(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }  # fmt: skip


def pod(name: str, uid: str, claim: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": NS, "uid": uid},
        "spec": {
            "nodeName": NODE, "serviceAccountName": "builder",
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }  # fmt: skip


@contextlib.asynccontextmanager
async def running(tmp_path: Path, enforce: str = "false", **kw: Any) -> AsyncIterator[Env]:
    sock = str(tmp_path / "csi.sock")
    plugin = HostPathPlugin(CSIContext(NODE, str(tmp_path / "plugin"), {"enforce_capacity": enforce}))
    server = await serve(plugin, sock)
    data = tmp_path / "data"
    try:
        async with local_apiserver() as client, CSIClient(sock, timeout=30) as csi:
            node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"keep": "me"}}}
            created = await client.create("v1", "nodes", node)
            volumes = CSIVolumes(RestAgentApi(client), csi, str(data), NODE, **kw)
            yield Env(client, csi, volumes, data, created["metadata"]["uid"])
    finally:
        await stop_serving(server, plugin, sock, purge=True)
        for point in reversed(mounts_under(tmp_path)):  # a failed test leaves nothing mounted
            subprocess.run(["umount", "-l", point], check=False)


def run(coro: Any) -> None:
    asyncio.run(asyncio.wait_for(coro, 120))


def test_register_writes_csinode_and_node_labels(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as env:
            await env.volumes.register()
            csinode = await env.client.get(STORAGE, "csinodes", NODE)
            assert csinode["spec"]["drivers"] == [
                {"name": DRIVER_NAME, "nodeID": NODE, "topologyKeys": [TOPOLOGY_NODE_KEY]}
            ]
            assert csinode["metadata"]["ownerReferences"] == [
                {"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": env.node_uid}
            ]
            node = await env.client.get("v1", "nodes", NODE)
            assert node["metadata"]["labels"] == {"keep": "me", TOPOLOGY_NODE_KEY: NODE}
            assert json.loads(node["metadata"]["annotations"][NODE_ID_ANNOTATION]) == {DRIVER_NAME: NODE}
            # again (an agent restart): nothing is rewritten
            versions = csinode["metadata"]["resourceVersion"], node["metadata"]["resourceVersion"]
            await CSIVolumes(env.volumes.api, env.csi, str(env.data), NODE).register()
            again = await env.client.get(STORAGE, "csinodes", NODE), await env.client.get("v1", "nodes", NODE)
            assert (
                again[0]["metadata"]["resourceVersion"],
                again[1]["metadata"]["resourceVersion"],
            ) == versions

    require("root", not_root())
    run(main())


def test_stage_publish_unpublish_unstage_with_real_mounts(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as env:
            await env.csidriver(
                attachRequired=False, podInfoOnMount=True, volumeLifecycleModes=["Persistent"]
            )
            pv_name, handle = await env.bound_claim("data")
            first, second = pod("p1", "uid-1", "data"), pod("p2", "uid-2", "data")
            t1 = layout.target_path(str(env.data), "uid-1", pv_name)
            t2 = layout.target_path(str(env.data), "uid-2", pv_name)
            assert await env.volumes.claim_target(first, first["spec"]["volumes"][0]) == t1
            staging = layout.staging_path(str(env.data), DRIVER_NAME, handle)

            await env.volumes.publish(first, first["spec"]["volumes"][0], t1, False)
            await env.volumes.publish(first, first["spec"]["volumes"][0], t1, False)  # idempotent
            await env.volumes.publish(second, second["spec"]["volumes"][0], t2, True)
            assert mounts_under(env.data) == sorted([staging, t1, t2])
            Path(t1, "hello").write_text("from p1")
            assert Path(t2, "hello").read_text() == "from p1"  # one volume, staged once
            with pytest.raises(OSError):
                Path(t2, "nope").write_text("x")  # p2 has it read-only
            assert layout.read_vol_data(os.path.dirname(t1)) == {
                "specVolID": pv_name, "volumeHandle": handle, "driverName": DRIVER_NAME,
                "nodeName": NODE, "attachmentID": "", "volumeLifecycleMode": "Persistent",
            }  # fmt: skip

            await env.volumes.unpublish(t1)
            await env.volumes.unpublish(t1)  # idempotent
            assert not os.path.exists(os.path.dirname(t1))
            await env.volumes.unstage_unused()  # p2 still uses it
            assert mounts_under(env.data) == sorted([staging, t2])

            await env.volumes.unpublish(t2)
            assert mounts_under(env.data) == [staging]
            await env.volumes.unstage_unused()
            assert mounts_under(env.data) == []
            assert not os.path.exists(os.path.dirname(staging))
            # the data is the volume's, not the pod's: a new pod finds it
            third = pod("p3", "uid-3", "data")
            t3 = layout.target_path(str(env.data), "uid-3", pv_name)
            await env.volumes.publish(third, third["spec"]["volumes"][0], t3, False)
            assert Path(t3, "hello").read_text() == "from p1"
            await env.volumes.unpublish(t3)
            await env.volumes.unstage_unused()
            assert mounts_under(env.data) == []

    require("root", not_root())
    run(main())


def test_claims_a_pod_cannot_use_yet(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as env:
            target = str(env.data / "t" / "mount")
            missing = pod("p", "uid-1", "nope")
            with pytest.raises(VolumeError, match=r'^persistentvolumeclaim "nope" not found$'):
                await env.volumes.publish(missing, missing["spec"]["volumes"][0], target, False)
            await env.client.create("v1", "persistentvolumeclaims", claim_body("waiting"), NS)
            pending = pod("p", "uid-1", "waiting")
            with pytest.raises(VolumeError, match='persistentvolumeclaim "waiting" is not bound yet') as err:
                await env.volumes.publish(pending, pending["spec"]["volumes"][0], target, False)
            assert err.value.reason == "FailedMount"
            assert mounts_under(env.data) == []

    require("root", not_root())
    run(main())


def test_a_driver_that_needs_attachment_waits_for_the_volume_attachment(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path, attach_timeout=0.2, poll_interval=0.05) as env:
            await env.csidriver(attachRequired=True)
            pv_name, handle = await env.bound_claim("attached")
            p = pod("p", "uid-1", "attached")
            target = layout.target_path(str(env.data), "uid-1", pv_name)
            with pytest.raises(VolumeError, match="timed out waiting for external-attacher") as err:
                await env.volumes.publish(p, p["spec"]["volumes"][0], target, False)
            assert err.value.reason == FAILED_ATTACH
            assert mounts_under(env.data) == []

            name = layout.attachment_name(handle, DRIVER_NAME, NODE)
            va = {
                "apiVersion": STORAGE, "kind": "VolumeAttachment", "metadata": {"name": name},
                "spec": {"attacher": DRIVER_NAME, "nodeName": NODE,
                         "source": {"persistentVolumeName": pv_name}},
            }  # fmt: skip
            await env.client.create(STORAGE, "volumeattachments", va)
            status = {"attached": True, "attachmentMetadata": {"device": "/dev/fake"}}
            await env.client.patch(
                STORAGE, "volumeattachments", name, {"status": status}, subresource="status"
            )
            await env.volumes.publish(p, p["spec"]["volumes"][0], target, False)
            assert target in mounts_under(env.data)
            assert layout.read_vol_data(os.path.dirname(target))["attachmentID"] == name  # type: ignore[index]
            await env.volumes.unpublish(target)
            await env.volumes.unstage_unused()
            assert mounts_under(env.data) == []

    require("root", not_root())
    run(main())


@pytest.mark.parametrize(
    "enforce",
    [
        pytest.param("false", id="directory"),
        pytest.param("true", id="loop-ext4"),  # the ext4 image itself grows
    ],
)
def test_node_expansion_finishes_a_pending_resize(tmp_path: Path, enforce: str) -> None:
    async def main() -> None:
        async with running(tmp_path, enforce) as env:
            await env.csidriver(attachRequired=False)
            pv_name, handle = await env.bound_claim("grow", size=32 * MI)
            p = pod("p", "uid-1", "grow")
            target = layout.target_path(str(env.data), "uid-1", pv_name)
            assert await env.volumes.expand_pending([p]) == []  # nothing pending
            await env.volumes.publish(p, p["spec"]["volumes"][0], target, False)
            before = fs_bytes(target)
            # the expander's part: ControllerExpandVolume, the PV's new size, the condition
            grown = await env.csi.call(
                "ControllerExpandVolume",
                csi_pb2.ControllerExpandVolumeRequest(
                    volume_id=handle, capacity_range=csi_pb2.CapacityRange(required_bytes=64 * MI)
                ),
            )
            assert grown.capacity_bytes == 64 * MI
            await env.client.patch(
                "v1", "persistentvolumes", pv_name, {"spec": {"capacity": {"storage": "64Mi"}}}
            )
            condition = {"type": "FileSystemResizePending", "status": "True"}
            await env.client.patch(
                "v1", "persistentvolumeclaims", "grow", {"status": {"conditions": [condition]}}, NS,
                subresource="status",
            )  # fmt: skip

            events = await env.volumes.expand_pending([p, p])
            assert [(e.type, e.reason) for e in events] == [("Normal", "FileSystemResizeSuccessful")]
            status = (await env.client.get("v1", "persistentvolumeclaims", "grow", NS))["status"]
            assert status["capacity"] == {"storage": "64Mi"}
            assert not status.get("conditions")
            if enforce == "true":
                assert before <= 32 * MI < 48 * MI < fs_bytes(target) <= 64 * MI  # seen by the pod's mount
            assert await env.volumes.expand_pending([p]) == []  # done: nothing more
            await env.volumes.unpublish(target)
            await env.volumes.unstage_unused()
            assert mounts_under(env.data) == []

    require("root", not_root())
    run(main())
