"""The hostpath driver's Node service: stage, publish, stats and expansion on this node.

Staging bind-mounts the volume's directory (``storage.data_dir``, an image's mount point or a plain
directory) at the CO's staging path; publishing bind-mounts the staging path at the pod's target,
remounted read-only when asked. Each call is idempotent against its record: repeating a stage or a
publish that is in place answers OK, and undoing what is already undone answers OK.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import grpc

from cluster.machinery import mountinfo
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from nodeagent.csi.hostpath import mounts, rules
from nodeagent.csi.hostpath.records import Publication, RecordStore, VolumeRecord

if TYPE_CHECKING:
    from nodeagent.csi.hostpath.storage import Storage
    from nodeagent.csi.plugin import CSIContext

log = logging.getLogger(__name__)

_NodeCap = csi_pb2.NodeServiceCapability.RPC
NODE_CAPABILITIES = (_NodeCap.STAGE_UNSTAGE_VOLUME, _NodeCap.GET_VOLUME_STATS, _NodeCap.EXPAND_VOLUME)


def _internal(what: str, err: Exception) -> CSIError:
    return CSIError(grpc.StatusCode.INTERNAL, f"{what}: {err}")


def _held(rec: VolumeRecord, holders: list[int]) -> CSIError:
    return CSIError(
        grpc.StatusCode.FAILED_PRECONDITION,
        f"volume {rec.volume_id}: the kernel refused to grow the mounted filesystem online (resize2fs "
        f"needs CAP_SYS_RESOURCE) and another mount namespace still uses it (pids {holders[:5]}, e.g. a "
        "running container); it grows when the volume is next staged after its pods stop",
    )


class NodeService:
    """Mixed into HostPathPlugin, which provides the state below."""

    ctx: CSIContext
    storage: Storage
    store: RecordStore
    records: dict[str, VolumeRecord]
    segments: dict[str, str]
    max_volumes: int

    @property
    def lock(self) -> asyncio.Lock:
        raise NotImplementedError

    def get(self, volume_id: str) -> VolumeRecord:
        raise NotImplementedError

    def save(self, rec: VolumeRecord) -> VolumeRecord:
        raise NotImplementedError

    def capability_problem(self, cap: csi_pb2.VolumeCapability, enforced: bool) -> str | None:
        raise NotImplementedError

    def _check_capability(self, request: Any, rec: VolumeRecord) -> None:
        if not request.HasField("volume_capability"):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_capability is required")
        problem = self.capability_problem(request.volume_capability, rec.enforced)
        if problem:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, problem)

    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=_NodeCap(type=t)) for t in NODE_CAPABILITIES]
        )

    async def NodeGetInfo(self, request: csi_pb2.NodeGetInfoRequest) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(
            node_id=self.ctx.node_name,
            max_volumes_per_node=self.max_volumes,
            accessible_topology=csi_pb2.Topology(segments=self.segments),
        )

    async def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest
    ) -> csi_pb2.NodeStageVolumeResponse:
        if not request.staging_target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "staging_target_path is required")
        async with self.lock:
            rec = self.get(request.volume_id)
            self._check_capability(request, rec)
            path = request.staging_target_path
            if path in rec.staged and mountinfo.is_mount_point(path):
                return csi_pb2.NodeStageVolumeResponse()
            try:
                rec = self.save(await self.storage.activate(rec))
                os.makedirs(path, exist_ok=True)
                if not mountinfo.is_mount_point(path):
                    await mounts.bind(self.storage.data_dir(rec.volume_id), path)
            except (OSError, mounts.MountError) as err:
                if not rec.in_use:
                    await self.storage.deactivate(rec)
                raise _internal(f"cannot stage volume {rec.volume_id} at {path}", err) from err
            self.save(rec.with_staged(path))
            return csi_pb2.NodeStageVolumeResponse()

    async def NodeUnstageVolume(
        self, request: csi_pb2.NodeUnstageVolumeRequest
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        if not request.staging_target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "staging_target_path is required")
        async with self.lock:
            rec = self.get(request.volume_id)
            path = request.staging_target_path
            try:
                await mounts.unmount(path)  # the CO's path for this volume, recorded or not
                rec = self.save(rec.without_staged(path))
                if not rec.in_use:
                    await self.storage.deactivate(rec)
            except (OSError, mounts.MountError) as err:
                raise _internal(f"cannot unstage volume {rec.volume_id} from {path}", err) from err
            return csi_pb2.NodeUnstageVolumeResponse()

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest
    ) -> csi_pb2.NodePublishVolumeResponse:
        """Bind the staging path at the target; a publish at the same target with another
        read-only flag or staging path is ALREADY_EXISTS (the spec's "published but incompatible")."""
        if not request.target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "target_path is required")
        async with self.lock:
            rec = self.get(request.volume_id)
            self._check_capability(request, rec)
            staging, target = request.staging_target_path, request.target_path
            if not staging:
                raise CSIError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    "staging_target_path is required: this driver has STAGE_UNSTAGE_VOLUME, "
                    "stage the volume first",
                )
            if staging not in rec.staged:
                raise CSIError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"volume {rec.volume_id} is not staged at {staging}; call NodeStageVolume first",
                )
            readonly = request.readonly or request.volume_capability.access_mode.mode in rules.READONLY_MODES
            pub = Publication(target=target, staging=staging, readonly=readonly)
            existing = rec.publication(target)
            if existing is not None and existing != pub:
                raise CSIError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"volume {rec.volume_id} is already published at {target} "
                    f"with readonly={existing.readonly} "
                    f"from {existing.staging}; unpublish it before publishing it differently",
                )
            if existing is not None and mountinfo.is_mount_point(target):
                return csi_pb2.NodePublishVolumeResponse()
            try:
                os.makedirs(target, exist_ok=True)
                if not mountinfo.is_mount_point(target):
                    await mounts.bind(staging, target, readonly=readonly)
            except (OSError, mounts.MountError) as err:
                raise _internal(f"cannot publish volume {rec.volume_id} at {target}", err) from err
            self.save(rec.with_publication(pub))
            return csi_pb2.NodePublishVolumeResponse()

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        """Unmount the target and remove its directory; a target already gone answers OK."""
        if not request.target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "target_path is required")
        async with self.lock:
            rec = self.get(request.volume_id)
            target = request.target_path
            try:
                await mounts.unmount(target)
                if os.path.isdir(target):
                    os.rmdir(target)
            except (OSError, mounts.MountError) as err:
                raise _internal(f"cannot unpublish volume {rec.volume_id} from {target}", err) from err
            self.save(rec.without_publication(target))
            return csi_pb2.NodeUnpublishVolumeResponse()

    def _known_path(self, rec: VolumeRecord, path: str) -> None:
        if path not in rec.staged and rec.publication(path) is None:
            raise CSIError(
                grpc.StatusCode.NOT_FOUND, f"volume {rec.volume_id} is neither staged nor published at {path}"
            )
        if not mountinfo.is_mount_point(path):
            raise CSIError(
                grpc.StatusCode.NOT_FOUND,
                f"volume {rec.volume_id} should be mounted at {path} but is not; stage or publish it again",
            )

    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        if not request.volume_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_path is required")
        rec = self.get(request.volume_id)
        self._known_path(rec, request.volume_path)
        u = await asyncio.to_thread(self.storage.usage, rec, request.volume_path)
        unit = csi_pb2.VolumeUsage
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=[
                unit(total=u.bytes_total, used=u.bytes_used, available=u.bytes_available, unit=unit.BYTES),
                unit(
                    total=u.inodes_total, used=u.inodes_used, available=u.inodes_available, unit=unit.INODES
                ),
            ],
            volume_condition=csi_pb2.VolumeCondition(abnormal=False, message="mounted"),
        )

    async def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest
    ) -> csi_pb2.NodeExpandVolumeResponse:
        """Grow a mounted image's filesystem to the size ControllerExpandVolume gave the image.

        Online (resize2fs on the mounted device) when the kernel lets us; it needs CAP_SYS_RESOURCE,
        which containers often lack. Then offline: every mount of ours comes down, and only if the
        loop device went with them (no other mount namespace holds the filesystem) is it grown and
        everything mounted again as it was. Otherwise FAILED_PRECONDITION: it grows at next stage.
        """
        if not request.volume_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_path is required")
        async with self.lock:
            rec = self.get(request.volume_id)
            self._known_path(rec, request.volume_path)
            required = request.capacity_range.required_bytes
            if required > rec.capacity_bytes:
                raise CSIError(
                    grpc.StatusCode.OUT_OF_RANGE,
                    f"volume {rec.volume_id} has {rec.capacity_bytes} bytes, {required} asked: "
                    "call ControllerExpandVolume first",
                )
            if not rec.enforced or rec.fs_bytes >= rec.capacity_bytes:
                return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=rec.capacity_bytes)
            try:
                rec = self.save(await self.storage.grow_mounted_fs(rec))
            except mounts.MountError as err:
                holders = self.storage.holders(rec)
                if holders:
                    raise _held(rec, holders) from err
                log.info("hostpath: online resize of %s refused (%s); growing it offline", rec.volume_id, err)
                rec = self.save(await self._grow_by_remount(rec))
            return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=rec.capacity_bytes)

    async def _grow_by_remount(self, rec: VolumeRecord) -> VolumeRecord:
        """Unmount ours, grow offline unless someone else still has it, mount ours again as it
        was: always, even when a step fails."""
        try:
            for pub in rec.published:
                await mounts.unmount(pub.target)
            for path in rec.staged:
                await mounts.unmount(path)
            await self.storage.deactivate(rec)
            rec = await self.storage.activate(rec)  # grows it offline unless another namespace holds it
        finally:
            await self._remount(rec)
        if rec.fs_bytes < rec.capacity_bytes:
            raise _held(rec, self.storage.holders(rec))
        return rec

    async def _remount(self, rec: VolumeRecord) -> None:
        """Put back whatever of the volume's image, staging and publish mounts is missing."""
        if not self.storage.active(rec):
            await self.storage.activate(
                replace(rec, fs_bytes=rec.capacity_bytes) if self.storage.holders(rec) else rec
            )
        for path in rec.staged:
            if not mountinfo.is_mount_point(path):
                await mounts.bind(self.storage.data_dir(rec.volume_id), path)
        for pub in rec.published:
            if not mountinfo.is_mount_point(pub.target):
                await mounts.bind(pub.staging, pub.target, readonly=pub.readonly)
