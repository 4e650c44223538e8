"""Conformance checks of the Node service (see kit.py): stage/publish pairs and their undo, each
call twice, data seen through every path and kept across re-staging, read-only, stats, capacity
and expansion. They write real files through the paths the driver mounts."""

from __future__ import annotations

import asyncio
import errno
import os

import grpc

from nodeagent.csi import csi_pb2
from nodeagent.csi.kit_support import (
    CheckFailed,
    Checks,
    CheckSkipped,
    CtlRPC,
    Kit,
    NodeRPC,
    PluginService,
    mount_capability,
)

CHECKS = Checks()
UNKNOWN_ID = "kit-no-such-volume"
INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
MIB = 1 << 20
CONTEXT_CAPACITY_ENFORCED = "capacity_enforced"  # raykube drivers say so in the volume context


def _write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _unpublish(volume_id: str, target: str) -> csi_pb2.NodeUnpublishVolumeRequest:
    return csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target)


def _unstage(volume_id: str, staging: str) -> csi_pb2.NodeUnstageVolumeRequest:
    return csi_pb2.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=staging)


async def _bytes_usage(kit: Kit, volume_id: str, path: str) -> csi_pb2.VolumeUsage:
    response = await kit.call(
        "NodeGetVolumeStats", csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=path)
    )
    for usage in response.usage:
        if usage.unit == csi_pb2.VolumeUsage.BYTES:
            found: csi_pb2.VolumeUsage = usage
            return found
    raise CheckFailed(f"NodeGetVolumeStats of {path} reports no BYTES usage")


@CHECKS.add("node.info")
async def info(kit: Kit) -> None:
    await kit.call("NodeGetCapabilities", csi_pb2.NodeGetCapabilitiesRequest())
    response = await kit.call("NodeGetInfo", csi_pb2.NodeGetInfoRequest())
    if not response.node_id:
        raise CheckFailed("NodeGetInfo gave an empty node_id")
    if response.max_volumes_per_node < 0:
        raise CheckFailed(f"NodeGetInfo max_volumes_per_node is {response.max_volumes_per_node}")
    wants_topology = PluginService.VOLUME_ACCESSIBILITY_CONSTRAINTS in kit.facts.plugin_caps
    if wants_topology and not response.accessible_topology.segments:
        raise CheckFailed("the plugin has VOLUME_ACCESSIBILITY_CONSTRAINTS but NodeGetInfo gives no topology")


@CHECKS.add("node.missing_fields")
async def missing_fields(kit: Kit) -> None:
    """Every node call without its required fields is INVALID_ARGUMENT (a publish without the staging
    path of a staging driver may be FAILED_PRECONDITION, as the spec's table says)."""
    volume = await kit.create()
    vid, cap = volume.volume_id, mount_capability()
    staging = kit.path(kit.config.staging_dir, "staging") if kit.stages else ""
    target = kit.path(kit.config.target_dir, "target")
    if kit.stages:
        stage = csi_pb2.NodeStageVolumeRequest
        for why, request in (
            ("without volume_id", stage(staging_target_path=staging, volume_capability=cap)),
            ("without staging_target_path", stage(volume_id=vid, volume_capability=cap)),
            ("without volume_capability", stage(volume_id=vid, staging_target_path=staging)),
        ):
            await kit.expect_error("NodeStageVolume", request, INVALID, why=why)
        for why, unstage in (
            ("without volume_id", _unstage("", staging)),
            ("without staging path", _unstage(vid, "")),
        ):
            await kit.expect_error("NodeUnstageVolume", unstage, INVALID, why=why)
        staging = await kit.stage(volume)
        await kit.expect_error(
            "NodePublishVolume",
            kit.publish_request(volume, "", target),
            INVALID,
            grpc.StatusCode.FAILED_PRECONDITION,
            why="without staging_target_path from a driver with STAGE_UNSTAGE_VOLUME",
        )
    publish = kit.publish_request
    for why, request in (
        ("without volume_id", publish(volume, staging, target)),
        ("without target_path", publish(volume, staging, "")),
        ("without volume_capability", publish(volume, staging, target)),
    ):
        if why == "without volume_id":
            request.volume_id = ""
        if why == "without volume_capability":
            request.ClearField("volume_capability")
        await kit.expect_error("NodePublishVolume", request, INVALID, why=why)
    for why, unpublish in (
        ("without volume_id", _unpublish("", target)),
        ("without target", _unpublish(vid, "")),
    ):
        await kit.expect_error("NodeUnpublishVolume", unpublish, INVALID, why=why)


@CHECKS.add("node.unknown_volume")
async def unknown_volume(kit: Kit) -> None:
    fake = csi_pb2.Volume(volume_id=UNKNOWN_ID)
    staging = kit.path(kit.config.staging_dir, "staging")
    os.makedirs(staging, exist_ok=True)
    if kit.stages:
        request = csi_pb2.NodeStageVolumeRequest(
            volume_id=UNKNOWN_ID, staging_target_path=staging, volume_capability=mount_capability()
        )
        await kit.expect_error("NodeStageVolume", request, NOT_FOUND, why="of an unknown volume")
    target = kit.path(kit.config.target_dir, "target")
    await kit.expect_error(
        "NodePublishVolume",
        kit.publish_request(fake, staging if kit.stages else "", target),
        NOT_FOUND,
        why="of an unknown volume",
    )


@CHECKS.add("node.lifecycle")
async def lifecycle(kit: Kit) -> None:
    """Stage, publish and their undo, each twice; a file written through one target is seen
    through a second one, and not at a target after its unpublish."""
    volume = await kit.create()
    staging = await kit.stage(volume)
    if staging:  # the same stage again answers OK
        await kit.call(
            "NodeStageVolume",
            csi_pb2.NodeStageVolumeRequest(
                volume_id=volume.volume_id,
                staging_target_path=staging,
                volume_capability=mount_capability(),
                volume_context=dict(volume.volume_context),
            ),
        )
    target = await kit.publish(volume, staging)
    await kit.call("NodePublishVolume", kit.publish_request(volume, staging, target))
    _write(os.path.join(target, "kit-file"), b"written through the first target")
    second = await kit.publish(volume, staging)
    seen = _read(os.path.join(second, "kit-file"))
    if seen != b"written through the first target":
        raise CheckFailed(
            f"a file written at {target} reads {seen!r} at {second}, the same volume's other target"
        )
    for _ in range(2):
        await kit.call("NodeUnpublishVolume", _unpublish(volume.volume_id, target))
    if _read(os.path.join(target, "kit-file")) is not None:
        raise CheckFailed(f"after NodeUnpublishVolume the volume's file is still visible at {target}")
    await kit.call("NodeUnpublishVolume", _unpublish(volume.volume_id, second))
    if staging:
        for _ in range(2):
            await kit.call("NodeUnstageVolume", _unstage(volume.volume_id, staging))
        if _read(os.path.join(staging, "kit-file")) is not None:
            raise CheckFailed(f"after NodeUnstageVolume the volume's file is still visible at {staging}")
    await kit.call("DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


@CHECKS.add("node.data_persists")
async def data_persists(kit: Kit) -> None:
    """Data written in one publish is there after unpublish, unstage and a new stage and publish."""
    volume = await kit.create()
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging)
    _write(os.path.join(target, "kept"), b"kept across mounts")
    await kit.call("NodeUnpublishVolume", _unpublish(volume.volume_id, target))
    if staging:
        await kit.call("NodeUnstageVolume", _unstage(volume.volume_id, staging))
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging)
    seen = _read(os.path.join(target, "kept"))
    if seen != b"kept across mounts":
        raise CheckFailed(
            f"a file written before unpublish/unstage reads {seen!r} after staging and publishing again"
        )


@CHECKS.add("node.readonly")
async def readonly(kit: Kit) -> None:
    """A read-only publish refuses writes; the same target asked read-write is ALREADY_EXISTS."""
    volume = await kit.create()
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging, readonly=True)
    try:
        _write(os.path.join(target, "refused"), b"x")
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise CheckFailed(f"a write to a read-only publish failed with {e}, not EROFS/EACCES") from None
    else:
        raise CheckFailed(f"a write to {target}, published readonly, succeeded")
    await kit.call("NodePublishVolume", kit.publish_request(volume, staging, target, readonly=True))
    await kit.expect_error(
        "NodePublishVolume",
        kit.publish_request(volume, staging, target, readonly=False),
        grpc.StatusCode.ALREADY_EXISTS,
        why="read-write at a target already published read-only",
    )


@CHECKS.add("node.stats")
async def stats(kit: Kit) -> None:
    kit.need_node(NodeRPC.GET_VOLUME_STATS)
    request = csi_pb2.NodeGetVolumeStatsRequest
    volume = await kit.create()
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging)
    await kit.expect_error(
        "NodeGetVolumeStats", request(volume_path=target), INVALID, why="without volume_id"
    )
    await kit.expect_error(
        "NodeGetVolumeStats", request(volume_id=volume.volume_id), INVALID, why="without volume_path"
    )
    await kit.expect_error(
        "NodeGetVolumeStats",
        request(volume_id=UNKNOWN_ID, volume_path=target),
        NOT_FOUND,
        why="of an unknown volume",
    )
    elsewhere = kit.path(kit.config.target_dir, "unrelated")
    os.makedirs(elsewhere, exist_ok=True)
    await kit.expect_error(
        "NodeGetVolumeStats",
        request(volume_id=volume.volume_id, volume_path=elsewhere),
        NOT_FOUND,
        why="at a path where the volume is not published",
    )
    before = await _bytes_usage(kit, volume.volume_id, target)
    if before.total <= 0 or before.used < 0 or before.available < 0:
        raise CheckFailed(f"NodeGetVolumeStats BYTES usage is {before}")
    await asyncio.to_thread(_write, os.path.join(target, "mib"), os.urandom(MIB))
    after = await _bytes_usage(kit, volume.volume_id, target)
    if after.used - before.used < MIB // 2:
        raise CheckFailed(f"after writing 1 MiB, used bytes went from {before.used} to {after.used}")


def _fill(path: str, limit: int) -> int:
    """Write until ENOSPC or ``limit`` bytes; the bytes written."""
    written = 0
    chunk = b"\0" * MIB
    try:
        with open(path, "wb") as f:
            while written < limit:
                written += f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        return -written - 1  # negative: refused
    return written


@CHECKS.add("node.capacity_enforced")
async def capacity_enforced(kit: Kit) -> None:
    """A volume whose context says capacity_enforced=true refuses writes beyond its size."""
    volume = await kit.create()
    if volume.volume_context.get(CONTEXT_CAPACITY_ENFORCED) != "true":
        raise CheckSkipped("the volume context does not say capacity_enforced=true")
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging)
    written = await asyncio.to_thread(_fill, os.path.join(target, "fill"), volume.capacity_bytes + 2 * MIB)
    if written >= 0:
        raise CheckFailed(f"wrote {written} bytes into a volume of {volume.capacity_bytes} without ENOSPC")
    os.unlink(os.path.join(target, "fill"))


@CHECKS.add("node.expand")
async def expand(kit: Kit) -> None:
    """ControllerExpandVolume of a published volume, then NodeExpandVolume when it says so: the
    filesystem grows, the data and the publish stay."""
    kit.need_controller(CtlRPC.EXPAND_VOLUME, CtlRPC.CREATE_DELETE_VOLUME)
    kit.need_node(NodeRPC.EXPAND_VOLUME)
    request = csi_pb2.NodeExpandVolumeRequest
    volume = await kit.create()
    staging = await kit.stage(volume)
    target = await kit.publish(volume, staging)
    _write(os.path.join(target, "before"), b"written before expansion")
    stats = NodeRPC.GET_VOLUME_STATS in kit.facts.node_caps
    before = (await _bytes_usage(kit, volume.volume_id, target)).total if stats else 0
    size = max(volume.capacity_bytes, kit.config.volume_size) * 2
    grown = await kit.call(
        "ControllerExpandVolume",
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            volume_capability=mount_capability(),
        ),
    )
    await kit.expect_error("NodeExpandVolume", request(volume_path=target), INVALID, why="without volume_id")
    await kit.expect_error(
        "NodeExpandVolume",
        request(volume_id=UNKNOWN_ID, volume_path=target),
        NOT_FOUND,
        why="of an unknown volume",
    )
    if grown.node_expansion_required:
        for _ in range(2):
            response = await kit.call(
                "NodeExpandVolume",
                request(
                    volume_id=volume.volume_id,
                    volume_path=target,
                    staging_target_path=staging,
                    capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                    volume_capability=mount_capability(),
                ),
            )
            if response.capacity_bytes and response.capacity_bytes < size:
                raise CheckFailed(f"NodeExpandVolume to {size} bytes answered {response.capacity_bytes}")
    if stats:
        after = (await _bytes_usage(kit, volume.volume_id, target)).total
        if after <= before:
            raise CheckFailed(f"after expanding to {size} bytes the volume's total is {after} (was {before})")
    if _read(os.path.join(target, "before")) != b"written before expansion":
        raise CheckFailed("a file written before the expansion is gone after it")
    _write(os.path.join(target, "after"), b"the publish still works")
