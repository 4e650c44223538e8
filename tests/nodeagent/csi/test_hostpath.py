"""The hostpath driver's own behaviour over a real socket with real mounts (root): what survives a
restart and what stop and purge take away, topology from the node's labels, what is refused while
mounted, and growing a filesystem another mount namespace holds."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import grpc
import pytest

from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.hostpath import TOPOLOGY_NODE_KEY, HostPathPlugin
from nodeagent.csi.kit_support import mount_capability
from tests.capabilities import not_root, require
from tests.nodeagent.csi.served import context, leftover_mounts, serving

MIB = 1 << 20
CAP = mount_capability()


@pytest.fixture(autouse=True)
def _root() -> None:
    require("root", not_root())


async def make(csi: CSIClient, name: str, size: int = 32 * MIB, **fields: object) -> csi_pb2.Volume:
    response = await csi.create_volume(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[CAP],
        **fields,
    )
    volume: csi_pb2.Volume = response.volume
    return volume


async def stage_publish(csi: CSIClient, vid: str, tmp: Path, tag: str) -> tuple[str, str]:
    staging, target = tmp / f"staging-{tag}", tmp / f"pod-{tag}" / "mount"
    staging.mkdir(parents=True, exist_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    await csi.node_stage_volume(volume_id=vid, staging_target_path=str(staging), volume_capability=CAP)
    await csi.node_publish_volume(
        volume_id=vid, staging_target_path=str(staging), target_path=str(target), volume_capability=CAP
    )
    return str(staging), str(target)


def has_cap_sys_resource() -> bool:
    """Whether this process may resize a mounted ext4 (CAP_SYS_RESOURCE, bit 24 of CapEff)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> 24 & 1)
    return False


async def in_own_namespace_with(pid: int, path: str) -> None:
    """Wait until process ``pid`` has a mount namespace of its own in which ``path`` is mounted."""
    own = os.stat("/proc/self/ns/mnt").st_ino
    for _ in range(600):  # a hang guard, not a timing threshold
        try:
            if (
                os.stat(f"/proc/{pid}/ns/mnt").st_ino != own
                and f" {path} " in Path(f"/proc/{pid}/mountinfo").read_text()
            ):
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError(f"process {pid} never got a mount namespace with {path}")


def test_restart_keeps_volumes_stop_unmounts_and_purge_removes(tmp_path: Path) -> None:
    ctx = context(tmp_path, enforce_capacity="true")
    root = Path(ctx.root_dir)
    sock = str(tmp_path / "csi.sock")

    async def main() -> None:
        async with serving(HostPathPlugin(ctx), sock, purge=False) as csi:
            vid = (await make(csi, "pvc-kept")).volume_id
            _, target = await stage_publish(csi, vid, tmp_path, "1")
            Path(target, "data").write_text("survives restarts")
        # stop without purge: nothing mounted, the image and the record stay
        assert leftover_mounts(tmp_path) == []
        assert (root / "images" / f"{vid}.img").exists() and (root / "records" / f"{vid}.json").exists()
        async with serving(HostPathPlugin(ctx), sock, purge=True) as csi:
            listed = await csi.list_volumes()
            assert [e.volume.volume_id for e in listed.entries] == [vid]
            assert (await make(csi, "pvc-kept")).volume_id == vid  # the same name after a restart
            _, target = await stage_publish(csi, vid, tmp_path, "2")
            assert Path(target, "data").read_text() == "survives restarts"
        assert leftover_mounts(tmp_path) == []
        assert sorted(os.listdir(root)) == []

    asyncio.run(main())


def test_topology_from_node_labels(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(HostPathPlugin(context(tmp_path)), str(tmp_path / "csi.sock")) as csi:
            info = await csi.node_get_info()
            here = {
                TOPOLOGY_NODE_KEY: "node-a",
                "topology.kubernetes.io/zone": "zone-a",
                "topology.kubernetes.io/region": "region-1",
            }
            assert (info.node_id, dict(info.accessible_topology.segments)) == ("node-a", here)
            zone = csi_pb2.Topology(segments={"topology.kubernetes.io/zone": "zone-a"})
            volume = await make(
                csi, "in-zone", accessibility_requirements=csi_pb2.TopologyRequirement(requisite=[zone])
            )
            assert [dict(t.segments) for t in volume.accessible_topology] == [here]
            other = csi_pb2.Topology(segments={"topology.kubernetes.io/zone": "zone-b"})
            with pytest.raises(CSIError) as err:
                await make(
                    csi,
                    "other-zone",
                    accessibility_requirements=csi_pb2.TopologyRequirement(requisite=[other]),
                )
            assert err.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "node 'node-a'" in err.value.message
            elsewhere = await csi.get_capacity(volume_capabilities=[CAP], accessible_topology=other)
            assert elsewhere.available_capacity == 0

    asyncio.run(main())


@pytest.mark.parametrize(("enforce", "said"), [("true", "true"), ("false", "false")])
def test_capacity_enforcement_is_said(tmp_path: Path, enforce: str, said: str) -> None:
    async def main() -> None:
        plugin = HostPathPlugin(context(tmp_path, enforce_capacity=enforce))
        async with serving(plugin, str(tmp_path / "csi.sock")) as csi:
            volume = await make(csi, "v")
            assert volume.volume_context["capacity_enforced"] == said
            manifest = (await csi.get_plugin_info()).manifest
            assert manifest["capacity_enforced"] == said
            # a mounted image grows online only with CAP_SYS_RESOURCE; a plain directory always
            online = enforce == "false" or has_cap_sys_resource()
            assert manifest["online_expansion"] == ("true" if online else "false")
            caps = (await csi.get_plugin_capabilities()).capabilities
            expansion = [c.volume_expansion.type for c in caps if c.HasField("volume_expansion")]
            modes = csi_pb2.PluginCapability.VolumeExpansion
            assert expansion == [modes.ONLINE if online else modes.OFFLINE]
            data = Path(plugin.storage.data_dir(volume.volume_id))
            assert data.is_dir() and (data.stat().st_mode & 0o777 == 0o777) == (enforce == "false")

    asyncio.run(main())


def test_delete_refused_while_mounted(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(HostPathPlugin(context(tmp_path)), str(tmp_path / "csi.sock")) as csi:
            vid = (await make(csi, "busy")).volume_id
            staging, target = await stage_publish(csi, vid, tmp_path, "1")
            with pytest.raises(CSIError) as err:
                await csi.delete_volume(vid)
            assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
            assert target in err.value.message and "unpublish and unstage it first" in err.value.message
            await csi.node_unpublish_volume(vid, target)
            await csi.node_unstage_volume(vid, staging)
            await csi.delete_volume(vid)
            assert not Path(target).exists()
        assert leftover_mounts(tmp_path) == []

    asyncio.run(main())


def test_expansion_waits_while_another_namespace_holds_the_filesystem(tmp_path: Path) -> None:
    """A container's mount namespace (here: unshare) keeps the loop filesystem alive after our own
    mounts come down; growing it offline then would corrupt it. Online resize needs
    CAP_SYS_RESOURCE: where the kernel allows it, the first expansion already succeeds."""

    async def main() -> None:
        async with serving(
            HostPathPlugin(context(tmp_path, enforce_capacity="true")), str(tmp_path / "csi.sock")
        ) as csi:
            vid = (await make(csi, "grow")).volume_id
            staging, target = await stage_publish(csi, vid, tmp_path, "1")
            Path(target, "data").write_text("before")
            holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sleep", "600"])
            try:
                await in_own_namespace_with(holder.pid, target)
                grown = await csi.controller_expand_volume(
                    volume_id=vid, capacity_range=csi_pb2.CapacityRange(required_bytes=64 * MIB)
                )
                assert grown.capacity_bytes == 64 * MIB and grown.node_expansion_required
                request = {"volume_id": vid, "volume_path": target}
                online = has_cap_sys_resource()
                if online:
                    await csi.node_expand_volume(**request)
                else:
                    with pytest.raises(CSIError) as err:
                        await csi.node_expand_volume(**request)
                    assert err.value.code == grpc.StatusCode.FAILED_PRECONDITION
                    assert "another mount namespace still uses it" in err.value.message
                    assert f"pids [{holder.pid}]" in err.value.message  # found without unmounting ours
                # either way the publish is back and the data is there
                assert Path(target, "data").read_text() == "before"
            finally:
                holder.kill()
                holder.wait()
            if not online:
                await csi.node_expand_volume(**request)
            stats = await csi.node_get_volume_stats(vid, target)
            assert stats.usage[0].total > 48 * MIB
            assert Path(target, "data").read_text() == "before"
            await csi.node_unpublish_volume(vid, target)
            await csi.node_unstage_volume(vid, staging)
        assert leftover_mounts(tmp_path) == []

    asyncio.run(main())
