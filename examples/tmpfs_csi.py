"""An example raykube volume plugin: each volume is a tmpfs of its requested size on one node.

What a Python developer writes to give raykube's pods storage: a ``CSIPlugin`` subclass whose
coroutines are named after the CSI RPCs they answer. This driver makes a volume at CreateVolume as a
tmpfs mounted under its own directory (sized ``capacity_range``, so the size is enforced) and bind
mounts it into each pod's target path at NodePublishVolume (read-only when asked). The data lives as
long as the volume, across pods, and is gone with DeleteVolume (or a reboot: it is memory). Each
volume belongs to the node that made it, which its topology says: the scheduler and the provisioner
keep its pods there.

Use it (root: it mounts)::

    # from the repository root, with it on the Ray nodes' Python path (examples/ is not installed):
    PYTHONPATH=$PWD raykube up --volume-plugin examples.tmpfs_csi:TmpfsPlugin
    # then a StorageClass with provisioner tmpfs.csi.example.com, and PVCs of that class
    # or alone, with the conformance kit:
    python -m examples.tmpfs_csi --socket /tmp/tmpfs-csi.sock &
    python -m nodeagent.csi.sanity --socket /tmp/tmpfs-csi.sock

Options (``CSIContext.options``): ``default_size`` (bytes when a claim asks for no size; 64 MiB)
and ``max_size`` (bytes, the largest volume; 1 GiB). State: one JSON record per volume in the
plugin's ``root_dir``, so a restarted plugin knows its volumes (their tmpfs stays mounted).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
from pathlib import Path

import grpc

from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import CSIContext, CSIPlugin
from nodeagent.csi.server import serve, stop_serving

NAME = "tmpfs.csi.example.com"
TOPOLOGY_KEY = "topology.tmpfs.csi.example.com/node"
MiB = 1 << 20
ACCESS = csi_pb2.VolumeCapability.AccessMode
SINGLE_NODE = {ACCESS.SINGLE_NODE_WRITER, ACCESS.SINGLE_NODE_READER_ONLY}
SINGLE_NODE |= {ACCESS.SINGLE_NODE_SINGLE_WRITER, ACCESS.SINGLE_NODE_MULTI_WRITER}


async def run(*argv: str) -> None:
    """Run a command (mount, umount); a failure says which and why."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise CSIError(grpc.StatusCode.INTERNAL, f"{' '.join(argv)}: {err.decode().strip()}")


class TmpfsPlugin(CSIPlugin):
    """Identity, Controller and Node in one: see the module docstring."""

    def __init__(self, ctx: CSIContext) -> None:
        super().__init__(ctx)
        self.root = Path(ctx.root_dir)
        self.default_size = int(ctx.options.get("default_size", 64 * MiB))
        self.max_size = int(ctx.options.get("max_size", 1024 * MiB))
        self.lock = asyncio.Lock()  # one change at a time: CreateVolume twice with one name is one volume

    # ---- state ----

    def _record(self, volume_id: str) -> Path:
        return self.root / f"{volume_id}.json"

    def _data(self, volume_id: str) -> Path:
        return self.root / volume_id

    def _load(self, volume_id: str) -> dict[str, object] | None:
        try:
            return dict(json.loads(self._record(volume_id).read_text()))
        except FileNotFoundError:
            return None

    def _topology(self) -> csi_pb2.Topology:
        return csi_pb2.Topology(segments={TOPOLOGY_KEY: self.ctx.node_name})

    def _volume(self, volume_id: str, size: int) -> csi_pb2.Volume:
        return csi_pb2.Volume(
            volume_id=volume_id,
            capacity_bytes=size,
            accessible_topology=[self._topology()],
            volume_context={"capacity_enforced": "true"},  # a tmpfs refuses writes beyond its size
        )

    def _published_at(self, volume_id: str, path: str) -> bool:
        """Whether ``path`` is a mount of the volume's tmpfs (a bind mount shares its device)."""
        try:
            return Path(path).is_mount() and os.stat(path).st_dev == os.stat(self._data(volume_id)).st_dev
        except FileNotFoundError:
            return False

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    async def stop(self, purge: bool = False) -> None:
        if purge:  # `raykube down --purge`: every volume goes
            for record in self.root.glob("*.json"):
                await self._remove(record.stem)

    async def _remove(self, volume_id: str) -> None:
        data = self._data(volume_id)
        if data.is_mount():
            await run("umount", str(data))
        shutil.rmtree(data, ignore_errors=True)
        self._record(volume_id).unlink(missing_ok=True)

    # ---- Identity ----

    async def GetPluginInfo(self, request: csi_pb2.GetPluginInfoRequest) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name=NAME, vendor_version="0.1.0")

    async def GetPluginCapabilities(
        self, request: csi_pb2.GetPluginCapabilitiesRequest
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        service = csi_pb2.PluginCapability.Service
        return csi_pb2.GetPluginCapabilitiesResponse(
            capabilities=[
                csi_pb2.PluginCapability(service=service(type=service.CONTROLLER_SERVICE)),
                csi_pb2.PluginCapability(service=service(type=service.VOLUME_ACCESSIBILITY_CONSTRAINTS)),
            ]
        )

    async def Probe(self, request: csi_pb2.ProbeRequest) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse()

    # ---- Controller ----

    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        rpc = csi_pb2.ControllerServiceCapability.RPC
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=rpc(type=rpc.CREATE_DELETE_VOLUME))]
        )

    def _check_capabilities(self, capabilities: list[csi_pb2.VolumeCapability]) -> None:
        if not capabilities:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_capabilities: give at least one")
        for cap in capabilities:
            if cap.HasField("block"):
                raise CSIError(
                    grpc.StatusCode.INVALID_ARGUMENT, "a tmpfs volume is a filesystem: ask for mount"
                )
            if cap.access_mode.mode not in SINGLE_NODE:
                mode = ACCESS.Mode.Name(cap.access_mode.mode)
                raise CSIError(
                    grpc.StatusCode.INVALID_ARGUMENT, f"access mode {mode}: tmpfs volumes are single-node"
                )

    async def CreateVolume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        if not request.name:
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT, "name: required (it makes CreateVolume idempotent)"
            )
        self._check_capabilities(list(request.volume_capabilities))
        required, limit = request.capacity_range.required_bytes, request.capacity_range.limit_bytes
        size = required or min(self.default_size, limit or self.default_size)
        if size > self.max_size or (limit and size > limit):
            raise CSIError(
                grpc.StatusCode.OUT_OF_RANGE, f"{size} bytes: this driver makes at most {self.max_size}"
            )
        requisite = [dict(t.segments) for t in request.accessibility_requirements.requisite]
        here = dict(self._topology().segments)
        if requisite and not any(t.items() <= here.items() for t in requisite):
            raise CSIError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"this plugin makes volumes on node {self.ctx.node_name} only ({here}), which no requisite "
                "topology admits: call the plugin of a node that matches",
            )
        volume_id = "tmpfs-" + hashlib.sha256(request.name.encode()).hexdigest()[:20]
        async with self.lock:
            known = self._load(volume_id)
            if known is not None:
                if known["size"] != size:
                    raise CSIError(
                        grpc.StatusCode.ALREADY_EXISTS,
                        f"volume {request.name!r} exists with {known['size']} bytes, not {size}",
                    )
                return csi_pb2.CreateVolumeResponse(volume=self._volume(volume_id, size))
            data = self._data(volume_id)
            data.mkdir(parents=True, exist_ok=True)
            if not data.is_mount():
                await run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(data))
            # The record last: a volume without one is unfinished and made again by a retry.
            self._record(volume_id).write_text(json.dumps({"name": request.name, "size": size}))
        return csi_pb2.CreateVolumeResponse(volume=self._volume(volume_id, size))

    async def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest) -> csi_pb2.DeleteVolumeResponse:
        if not request.volume_id:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id: required")
        async with self.lock:
            await self._remove(request.volume_id)
        return csi_pb2.DeleteVolumeResponse()

    async def ValidateVolumeCapabilities(
        self, request: csi_pb2.ValidateVolumeCapabilitiesRequest
    ) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        if not request.volume_id or not request.volume_capabilities:
            raise CSIError(
                grpc.StatusCode.INVALID_ARGUMENT, "volume_id and volume_capabilities: both required"
            )
        if self._load(request.volume_id) is None:
            raise CSIError(grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id!r} not found")
        try:
            self._check_capabilities(list(request.volume_capabilities))
        except CSIError as e:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message=e.message)
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_capabilities=request.volume_capabilities
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    # ---- Node ----

    async def NodeGetInfo(self, request: csi_pb2.NodeGetInfoRequest) -> csi_pb2.NodeGetInfoResponse:
        return csi_pb2.NodeGetInfoResponse(node_id=self.ctx.node_name, accessible_topology=self._topology())

    async def NodeGetCapabilities(
        self, request: csi_pb2.NodeGetCapabilitiesRequest
    ) -> csi_pb2.NodeGetCapabilitiesResponse:
        # No staging (publish bind-mounts directly); usage statistics.
        rpc = csi_pb2.NodeServiceCapability.RPC
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[csi_pb2.NodeServiceCapability(rpc=rpc(type=rpc.GET_VOLUME_STATS))]
        )

    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest
    ) -> csi_pb2.NodePublishVolumeResponse:
        if not request.volume_id or not request.target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id and target_path: both required")
        if not request.HasField("volume_capability"):
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_capability: required")
        if self._load(request.volume_id) is None:
            raise CSIError(
                grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id!r} is not on node {self.ctx.node_name}"
            )
        target = Path(request.target_path)
        target.mkdir(parents=True, exist_ok=True)
        if target.is_mount():  # published already: the same call again succeeds, another one does not
            readonly = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
            if readonly != request.readonly:
                raise CSIError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"{target} is published {'read-only' if readonly else 'read-write'} already; "
                    "unpublish it first",
                )
            return csi_pb2.NodePublishVolumeResponse()
        await run("mount", "--bind", str(self._data(request.volume_id)), str(target))
        if request.readonly:
            await run("mount", "-o", "remount,bind,ro", str(target))
        return csi_pb2.NodePublishVolumeResponse()

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        if not request.volume_id or not request.target_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id and target_path: both required")
        target = Path(request.target_path)
        if target.is_mount():
            await run("umount", str(target))
        with contextlib.suppress(FileNotFoundError):
            target.rmdir()
        return csi_pb2.NodeUnpublishVolumeResponse()

    async def NodeGetVolumeStats(
        self, request: csi_pb2.NodeGetVolumeStatsRequest
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        if not request.volume_id or not request.volume_path:
            raise CSIError(grpc.StatusCode.INVALID_ARGUMENT, "volume_id and volume_path: both required")
        if self._load(request.volume_id) is None or not self._published_at(
            request.volume_id, request.volume_path
        ):
            raise CSIError(
                grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id!r} is not at {request.volume_path!r}"
            )
        st = os.statvfs(request.volume_path)
        unit = csi_pb2.VolumeUsage
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=[
                unit(
                    unit=unit.BYTES,
                    total=st.f_blocks * st.f_frsize,
                    available=st.f_bavail * st.f_frsize,
                    used=(st.f_blocks - st.f_bfree) * st.f_frsize,
                ),
                unit(unit=unit.INODES, total=st.f_files, available=st.f_favail, used=st.f_files - st.f_ffree),
            ]
        )


async def _serve(args: argparse.Namespace) -> None:
    plugin = TmpfsPlugin(CSIContext(node_name=args.node, root_dir=args.root))
    server = await serve(plugin, args.socket)
    done = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, done.set)
    print(f"serving {NAME} on {args.socket}", flush=True)
    await done.wait()
    await stop_serving(server, plugin, args.socket, purge=args.purge)


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m examples.tmpfs_csi")
    p.add_argument("--socket", required=True)
    p.add_argument("--node", default="example", help="the node name (the volumes' topology)")
    p.add_argument("--root", default="/tmp/rk-tmpfs-csi-example", help="the plugin's state directory")
    p.add_argument("--purge", action="store_true", help="remove every volume on exit")
    asyncio.run(_serve(p.parse_args()))
