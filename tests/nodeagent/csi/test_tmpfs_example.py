"""examples/tmpfs_csi.py, the plugin developers' example, over a real socket with real mounts (root)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from examples.tmpfs_csi import TOPOLOGY_KEY, TmpfsPlugin
from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import CSIContext
from nodeagent.csi.server import serve, stop_serving
from tests.capabilities import not_root, require

MOUNT = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(
        mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER
    ),
)


def test_volume_lives_across_publishes_and_is_sized(tmp_path: Path) -> None:
    require("root", not_root())

    async def main() -> None:
        plugin = TmpfsPlugin(CSIContext("n1", str(tmp_path / "state")))
        socket = str(tmp_path / "csi.sock")
        server = await serve(plugin, socket)
        try:
            async with CSIClient(socket, timeout=20) as csi:
                info = await csi.wait_ready(timeout=10)
                assert info.name == "tmpfs.csi.example.com"
                node = await csi.node_get_info()
                assert (node.node_id, dict(node.accessible_topology.segments)) == ("n1", {TOPOLOGY_KEY: "n1"})
                size = csi_pb2.CapacityRange(required_bytes=1 << 20)
                made = await csi.create_volume(name="pvc-a", capacity_range=size, volume_capabilities=[MOUNT])
                again = await csi.create_volume(
                    name="pvc-a", capacity_range=size, volume_capabilities=[MOUNT]
                )
                assert made == again and made.volume.capacity_bytes == 1 << 20
                with pytest.raises(CSIError) as err:
                    await csi.create_volume(
                        name="pvc-a",
                        capacity_range=csi_pb2.CapacityRange(required_bytes=2 << 20),
                        volume_capabilities=[MOUNT],
                    )
                assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
                vid = made.volume.volume_id

                first = tmp_path / "pod1" / "mount"
                await csi.node_publish_volume(volume_id=vid, target_path=str(first), volume_capability=MOUNT)
                await csi.node_publish_volume(volume_id=vid, target_path=str(first), volume_capability=MOUNT)
                (first / "data").write_text("kept")
                # The tmpfs is the requested size: 2 MiB do not fit in 1 MiB.
                with pytest.raises(OSError), (first / "big").open("wb") as f:
                    f.write(b"x" * (2 << 20))
                    f.flush()
                stats = await csi.node_get_volume_stats(vid, str(first))
                assert stats.usage[0].total == 1 << 20
                await csi.node_unpublish_volume(vid, str(first))
                await csi.node_unpublish_volume(vid, str(first))
                assert not first.exists()

                second = tmp_path / "pod2" / "mount"
                await csi.node_publish_volume(
                    volume_id=vid, target_path=str(second), volume_capability=MOUNT, readonly=True
                )
                assert (second / "data").read_text() == "kept"
                with pytest.raises(OSError):
                    (second / "other").write_text("no")
                await csi.node_unpublish_volume(vid, str(second))

                await csi.delete_volume(vid)
                await csi.delete_volume(vid)
                with pytest.raises(CSIError) as err:
                    await csi.node_publish_volume(
                        volume_id=vid, target_path=str(first), volume_capability=MOUNT
                    )
                assert err.value.code == grpc.StatusCode.NOT_FOUND
        finally:
            await stop_serving(server, plugin, socket, purge=True)
        assert list((tmp_path / "state").iterdir()) == []

    asyncio.run(main())
