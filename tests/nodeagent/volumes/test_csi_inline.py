"""Inline (ephemeral) CSI volumes through CSIVolumes: a small real driver that makes a tmpfs at
NodePublishVolume (as ephemeral drivers such as secrets-store do) served on a unix socket, the real API
server in process, real mounts (root). The driver records each publish's volume context, so the test
sees what the kubelet side sent: the derived handle, ``csi.storage.k8s.io/ephemeral`` and the pod.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest

from cluster.machinery import mountinfo
from nodeagent.agent.api import RestAgentApi
from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import CSIContext, CSIPlugin
from nodeagent.csi.server import serve, stop_serving
from nodeagent.volumes import csi_layout as layout
from nodeagent.volumes.csi_node_info import STORAGE
from nodeagent.volumes.csi_volumes import CSIVolumes
from nodeagent.volumes.errors import VolumeError
from tests.capabilities import not_root, require
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.nodeagent.volumes.test_csi_volumes import mounts_under

DRIVER = "inline.csi.test"


class EphemeralPlugin(CSIPlugin):
    """Publishes a fresh tmpfs per target (no staging, no controller), refusing a non-ephemeral one."""

    contexts: dict[str, dict[str, str]]

    async def start(self) -> None:
        self.contexts = {}

    async def GetPluginInfo(self, request: Any) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=DRIVER, vendor_version="1")

    async def NodeGetInfo(self, request: Any) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self.ctx.node_name)

    async def NodeGetCapabilities(self, request: Any) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse()

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest
    ) -> csi_pb2.NodePublishVolumeResponse:
        if request.volume_context.get("csi.storage.k8s.io/ephemeral") != "true":
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "only ephemeral volumes")
        self.contexts[request.volume_id] = dict(request.volume_context)
        os.makedirs(request.target_path, exist_ok=True)
        if not mountinfo.is_mount_point(request.target_path):
            options = "size=1m" + (",ro" if request.readonly else "")
            subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", request.target_path], check=True)
        return csi_pb2.NodePublishVolumeResponse()

    async def NodeUnpublishVolume(self, request: Any) -> csi_pb2.NodeUnpublishVolumeResponse:
        if mountinfo.is_mount_point(request.target_path):
            subprocess.run(["umount", request.target_path], check=True)
        self.contexts.pop(request.volume_id, None)
        return csi_pb2.NodeUnpublishVolumeResponse()


def test_inline_volume_is_published_with_its_derived_handle(tmp_path: Path) -> None:
    async def main() -> None:
        sock = str(tmp_path / "csi.sock")
        plugin = EphemeralPlugin(CSIContext("node-a", str(tmp_path / "plugin")))
        server = await serve(plugin, sock)
        data = tmp_path / "data"
        pod = {
            "metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"},
            "spec": {"serviceAccountName": "sa"},
        }
        volume = {"name": "scratch", "csi": {"driver": DRIVER, "volumeAttributes": {"size": "1m"}}}
        target = layout.target_path(str(data), "uid-1", "scratch")
        try:
            async with local_apiserver() as client, CSIClient(sock, timeout=30) as csi:
                volumes = CSIVolumes(RestAgentApi(client), csi, str(data), "node-a")
                assert await volumes.claim_target(pod, volume) == target
                with pytest.raises(VolumeError, match="does not support the Ephemeral lifecycle mode"):
                    await volumes.publish(pod, volume, target, False)  # no CSIDriver: Persistent only
                spec = {"attachRequired": True, "podInfoOnMount": True, "volumeLifecycleModes": ["Ephemeral"]}
                body = {
                    "apiVersion": STORAGE,
                    "kind": "CSIDriver",
                    "metadata": {"name": DRIVER},
                    "spec": spec,
                }
                await client.create(STORAGE, "csidrivers", body)

                await volumes.publish(pod, volume, target, False)  # never waits for an attachment
                await volumes.publish(pod, volume, target, False)
                handle = layout.ephemeral_handle("uid-1", "scratch")
                assert plugin.contexts == {
                    handle: {
                        "size": "1m", "csi.storage.k8s.io/ephemeral": "true",
                        "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
                        "csi.storage.k8s.io/pod.uid": "uid-1", "csi.storage.k8s.io/serviceAccount.name": "sa",
                    }
                }  # fmt: skip
                assert mounts_under(data) == [target]
                assert layout.read_vol_data(os.path.dirname(target))["volumeLifecycleMode"] == "Ephemeral"  # type: ignore[index]
                await volumes.unpublish(target)
                await volumes.unstage_unused()  # nothing was staged: nothing to do
                assert (plugin.contexts, mounts_under(data)) == ({}, [])
                assert not os.path.exists(os.path.dirname(target))
        finally:
            await stop_serving(server, plugin, sock)
            for point in reversed(mounts_under(tmp_path)):
                subprocess.run(["umount", "-l", point], check=False)

    require("root", not_root())
    asyncio.run(asyncio.wait_for(main(), 60))
