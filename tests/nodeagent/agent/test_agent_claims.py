"""A pod with a PersistentVolumeClaim through the whole node side, without Ray: the agent against the
real API server in process (``RestAgentApi``), the process runtime in an image root, and the built-in
hostpath CSI driver on a real unix socket (``csi_socket``). The control plane's part (a volume made by
the driver, a bound PV and claim) is played by hand, as in tests/nodeagent/volumes/test_csi_volumes.py.
Checks: the CSINode is registered, the container writes to the claim, deleting the pod unpublishes and
unstages (findmnt shows nothing), and the data stays in the volume for the next pod."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from nodeagent.agent.agent import NodeAgent
from nodeagent.agent.api import RestAgentApi
from nodeagent.agent.cri_config import bare_id
from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.hostpath import DRIVER_NAME, HostPathPlugin
from nodeagent.csi.plugin import CSIContext
from nodeagent.csi.server import serve as serve_csi
from nodeagent.csi.server import stop_serving
from nodeagent.images import BUSYBOX_IMAGE, write_images
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.server import serve, stop_server
from nodeagent.volumes.csi_node_info import STORAGE
from tests.capabilities import needs, not_root
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.nodeagent.agent.test_agent import FAST, MACHINE, NODE, SLEEP

pytestmark = needs("root", not_root())
NS = "default"


def findmnt(root: Path) -> list[str]:
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True
    ).stdout
    return [m for m in out.split() if m.startswith(f"{root}/")]


async def until(what: str, check: Callable[[], Awaitable[Any]], timeout: float = 60.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await check()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[ApiClient, CSIClient, NodeAgent]]:
    csi_sock = str(tmp_path / "csi.sock")
    plugin = HostPathPlugin(CSIContext(NODE, str(tmp_path / "plugin"), {}))
    csi_server = await serve_csi(plugin, csi_sock)
    rt_sock = str(tmp_path / "rt.sock")
    rt = await serve(
        rt_sock,
        str(tmp_path / "rt"),
        isolation=Isolation("root"),
        cgroups=CgroupManager(base="", writable=()),
    )
    rt.import_layout(write_images(str(tmp_path / "layouts"))[BUSYBOX_IMAGE][0])
    try:
        async with local_apiserver() as client, CSIClient(csi_sock, timeout=30) as csi:
            driver = {"apiVersion": STORAGE, "kind": "CSIDriver", "metadata": {"name": DRIVER_NAME},
                      "spec": {"attachRequired": False, "volumeLifecycleModes": ["Persistent"]}}  # fmt: skip
            await client.create(STORAGE, "csidrivers", driver)
            agent = NodeAgent(
                RestAgentApi(client), rt_sock, NODE, str(tmp_path / "data"), MACHINE,
                kubelet_port=10999, config=FAST, csi_socket=csi_sock,
            )  # fmt: skip
            await agent.start()
            try:
                yield client, csi, agent
            finally:
                await agent.stop(remove_pods=True)
    finally:
        await stop_server(rt)
        await stop_serving(csi_server, plugin, csi_sock, purge=True)
        left = findmnt(tmp_path)
        subprocess.run(["umount", "-l", *reversed(left)], check=False, capture_output=True)
        assert left == [], f"left mounted: {left}"


async def bound_claim(client: ApiClient, csi: CSIClient, claim: str) -> str:
    mode = csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER)
    cap = csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=mode)
    request = csi_pb2.CreateVolumeRequest(
        name=f"pvc-{claim}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[cap],
    )
    made = await csi.call("CreateVolume", request)
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim}, "spec": spec}
    pvc = await client.create("v1", "persistentvolumeclaims", body, NS)
    pv = {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pvc-{claim}"},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "csi": {"driver": DRIVER_NAME, "volumeHandle": made.volume.volume_id,
                         "volumeAttributes": dict(made.volume.volume_context)},
                 "claimRef": {"namespace": NS, "name": claim, "uid": pvc["metadata"]["uid"]}},
    }  # fmt: skip
    await client.create("v1", "persistentvolumes", pv)
    pvc["spec"]["volumeName"] = f"pvc-{claim}"
    await client.update("v1", "persistentvolumeclaims", pvc, NS)
    status = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    await client.patch("v1", "persistentvolumeclaims", claim, {"status": status}, NS, subresource="status")
    return f"pvc-{claim}"


def claim_pod(name: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": BUSYBOX_IMAGE, "command": SLEEP,
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]},
    }  # fmt: skip


async def _eq(got: Awaitable[Any], want: Any) -> bool:
    return bool(await got == want)


async def running_container(client: ApiClient, name: str) -> str:
    async def check() -> str:
        try:
            p = await client.get("v1", "pods", name, NS)
        except ApiError:
            return ""
        for s in (p.get("status") or {}).get("containerStatuses") or ():
            if "running" in (s.get("state") or {}):
                return bare_id(s["containerID"])
        return ""

    return str(await until(f"pod {name} running", check))


async def gone(client: ApiClient, name: str) -> bool:
    try:
        await client.get("v1", "pods", name, NS)
    except ApiError as err:
        return err.status == 404
    return False


def test_a_claim_is_published_written_and_unpublished(tmp_path: Path) -> None:
    async def main() -> None:
        async with running(tmp_path) as (client, csi, agent):

            async def registered() -> bool:
                try:
                    node = await client.get(STORAGE, "csinodes", NODE)
                except ApiError:
                    return False
                return [d["name"] for d in node["spec"]["drivers"]] == [DRIVER_NAME]

            await until("the CSINode", registered)
            pv = await bound_claim(client, csi, "data")
            await client.create("v1", "pods", claim_pod("writer", "data"), NS)
            cid = await running_container(client, "writer")
            uid = (await client.get("v1", "pods", "writer", NS))["metadata"]["uid"]
            target = tmp_path / "data" / "pods" / uid / "volumes" / "kubernetes.io~csi" / pv / "mount"
            assert str(target) in findmnt(tmp_path / "data")
            wrote = await agent.cri.exec_sync(cid, ["sh", "-c", "echo kept > /data/f"], exec_timeout=5)
            assert wrote.exit_code == 0, wrote.stderr
            assert (target / "f").read_text() == "kept\n"
            handle = (await client.get("v1", "persistentvolumes", pv))["spec"]["csi"]["volumeHandle"]
            unique = f"kubernetes.io/csi/{DRIVER_NAME}^{handle}"

            async def in_use() -> list[str]:
                return list(
                    ((await client.get("v1", "nodes", NODE)).get("status") or {}).get("volumesInUse") or []
                )

            await until("the Node to list the volume in use", lambda: _eq(in_use(), [unique]))
            await client.delete("v1", "pods", "writer", NS, grace_period_seconds=0)
            await until("the pod to go", lambda: gone(client, "writer"))

            async def unmounted() -> bool:
                return findmnt(tmp_path / "data") == [] and not (tmp_path / "data" / "pods" / uid).exists()

            await until("the claim to be unpublished and unstaged", unmounted)
            await until("the Node to list no volume in use", lambda: _eq(in_use(), []))
            await client.create("v1", "pods", claim_pod("reader", "data"), NS)
            cid = await running_container(client, "reader")
            read = await agent.cri.exec_sync(cid, ["cat", "/data/f"], exec_timeout=5)
            assert read.stdout == b"kept\n"

    asyncio.run(asyncio.wait_for(main(), 180))
