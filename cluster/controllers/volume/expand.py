"""kube-controller-manager's ``persistentvolume-expander`` together with the external-resizer role:
a bound claim asking for more storage than it has gets its CSI volume expanded.

Kubernetes splits this in two: the in-tree expand controller annotates the claim with
``volume.kubernetes.io/storage-resizer: <driver>`` (event ``ExternalExpanding``) and the driver's
external-resizer sidecar does the work. Here one controller plays both, with the same annotations,
conditions and events:

1. ``Resizing`` condition on the claim, event ``Resizing``;
2. ``ControllerExpandVolume`` through ``ControllerOptions.csi`` on the node holding the volume
   (:func:`~cluster.controllers.volume.topology.node_for_pv`), when the driver's controller has the
   ``EXPAND_VOLUME`` capability; without it the expansion is node-only (external-resizer's trivial
   resizer): nothing to call, the file system grows on the node;
3. the PV's ``spec.capacity`` grows; if the node must still grow the file system, the claim's
   ``Resizing`` becomes ``FileSystemResizePending`` (the node agent finishes with NodeExpandVolume and
   sets ``status.capacity``, event ``FileSystemResizeRequired``); otherwise ``status.capacity`` is set
   here (event ``VolumeResizeSuccessful``). A failure records ``VolumeResizeFailed`` and is retried.

Whether a claim may grow at all (the class's ``allowVolumeExpansion``, never shrink) is admission's job.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.controllers.volume import binding
from cluster.controllers.volume.topology import node_for_pv
from cluster.machinery.quantity import parse_quantity
from cluster.machinery.times import rfc3339
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError

log = logging.getLogger("raykube.controllers.expand")

STORAGE_RESIZER_ANN = "volume.kubernetes.io/storage-resizer"
RESIZING = "Resizing"
FS_RESIZE_PENDING = "FileSystemResizePending"
RETRY = 30.0

EXTERNAL_EXPANDING = "ExternalExpanding"
VOLUME_RESIZE_FAILED = "VolumeResizeFailed"
VOLUME_RESIZE_SUCCESSFUL = "VolumeResizeSuccessful"
FS_RESIZE_REQUIRED = "FileSystemResizeRequired"

_ACCESS_MODES = {
    "ReadWriteOnce": csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
    "ReadOnlyMany": csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY,
    "ReadWriteMany": csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_MULTI_WRITER,
    "ReadWriteOncePod": csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_SINGLE_WRITER,
}

Obj = Mapping[str, Any]


def _bytes(value: Any) -> int:
    try:
        return int(parse_quantity(value)) if value is not None else 0
    except ValueError:
        return 0


def format_bytes(count: int) -> str:
    """A byte count as Kubernetes prints a binary-SI quantity: the largest exact suffix (``2Gi``)."""
    for suffix, power in (("Ei", 6), ("Pi", 5), ("Ti", 4), ("Gi", 3), ("Mi", 2), ("Ki", 1)):
        unit = 1024**power
        if count and count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def requested(claim: Obj) -> int:
    return _bytes((((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage"))


def current(claim: Obj) -> int:
    return _bytes(((claim.get("status") or {}).get("capacity") or {}).get("storage"))


def has_condition(claim: Obj, kind: str) -> bool:
    return any(c.get("type") == kind for c in (claim.get("status") or {}).get("conditions") or ())


def needs_expansion(claim: Obj, volume: Obj | None) -> bool:
    """A bound claim asks for more than it has, its volume is CSI, and the node has not been left the
    rest (``FileSystemResizePending`` with the volume already at the requested size)."""
    if volume is None or (claim.get("status") or {}).get("phase") != "Bound":
        return False
    if not ((volume.get("spec") or {}).get("csi") or {}).get("driver"):
        return False
    want = requested(claim)
    if want <= current(claim):
        return False
    volume_size = _bytes(((volume.get("spec") or {}).get("capacity") or {}).get("storage"))
    return not (has_condition(claim, FS_RESIZE_PENDING) and volume_size >= want)


def with_condition(claim: Obj, kind: str | None, message: str, now: str) -> dict[str, Any]:
    """The claim's status with the resize conditions replaced by ``kind`` (none when None)."""
    status = dict(claim.get("status") or {})
    conditions = [
        c for c in status.get("conditions") or () if c.get("type") not in (RESIZING, FS_RESIZE_PENDING)
    ]
    if kind is not None:
        condition: dict[str, Any] = {"type": kind, "status": "True", "lastProbeTime": None}
        condition["lastTransitionTime"] = now
        if message:
            condition["message"] = message
        conditions.append(condition)
    status["conditions"] = conditions
    return status


def volume_capability(volume: Obj) -> csi_pb2.VolumeCapability:
    spec = volume.get("spec") or {}
    modes = spec.get("accessModes") or ["ReadWriteOnce"]
    mode = csi_pb2.VolumeCapability.AccessMode(
        mode=_ACCESS_MODES.get(modes[0], _ACCESS_MODES["ReadWriteOnce"])
    )
    if spec.get("volumeMode") == "Block":
        return csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=mode)
    fs_type = str((spec.get("csi") or {}).get("fsType") or "")
    mount = csi_pb2.VolumeCapability.MountVolume(fs_type=fs_type)
    return csi_pb2.VolumeCapability(mount=mount, access_mode=mode)


class ExpandController(Controller):
    NAME: ClassVar[str] = "persistentvolume-expander"
    COMPONENT: ClassVar[str] = "volume_expand"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.watch(
            "v1", "persistentvolumeclaims", on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n)
        )
        self.volumes = self.watch("v1", "persistentvolumes")
        self.nodes = self.watch("v1", "nodes")
        self.retry = float(ctx.options.extra.get("expand_retry", RETRY))

    async def reconcile(self, key: str) -> float | None:
        claim = self.claims.get_by_key(key)
        if claim is None:
            return None
        volume_name = (claim.get("spec") or {}).get("volumeName")
        volume = self.volumes.get(None, volume_name) if volume_name else None
        if volume is None or not needs_expansion(claim, volume):
            return None
        driver = str(volume["spec"]["csi"]["driver"])
        try:
            annotated = await self._annotate(claim, driver)
            return await self._expand(annotated, volume, driver)
        except ApiError as err:
            if err.status in (404, 409):
                return None  # changed under us: the update event brings it back
            raise

    async def _annotate(self, claim: Obj, driver: str) -> Obj:
        """kube's expand controller hands a CSI claim to the driver's resizer by annotation."""
        if binding.annotations_of(claim).get(STORAGE_RESIZER_ANN) == driver:
            return claim
        meta = dict(claim.get("metadata") or {})
        meta["annotations"] = {**(meta.get("annotations") or {}), STORAGE_RESIZER_ANN: driver}
        written = await self.client.update(
            "v1", "persistentvolumeclaims", {**claim, "metadata": meta}, meta.get("namespace")
        )
        self.recorder.event(
            written, "Warning", EXTERNAL_EXPANDING, "waiting for an external controller to expand this PVC"
        )
        return written

    async def _status(self, claim: Obj, status: dict[str, Any]) -> Obj:
        namespace = (claim.get("metadata") or {}).get("namespace")
        return await self.client.update(
            "v1", "persistentvolumeclaims", {**claim, "status": status}, namespace, subresource="status"
        )

    async def _failed(self, claim: Obj, volume: Obj, driver: str, message: str) -> float:
        name = (volume.get("metadata") or {}).get("name")
        text = f'resize volume "{name}" by resizer "{driver}" failed: {message}'
        log.warning("expander: %s", text)
        self.recorder.event(claim, "Warning", VOLUME_RESIZE_FAILED, text)
        await self._status(claim, with_condition(claim, None, "", rfc3339(self.clock.now())))
        return self.retry

    async def _expand(self, claim: Obj, volume: Obj, driver: str) -> float | None:
        now = rfc3339(self.clock.now())
        want = requested(claim)
        name = str((volume.get("metadata") or {}).get("name"))
        csi = self.ctx.options.csi
        if csi is None:
            return await self._failed(
                claim,
                volume,
                driver,
                "no volume plugin is reachable from the controller manager; "
                "start the node agents with a volume plugin",
            )
        node = node_for_pv(volume, self.nodes.list())
        if node is None:
            return await self._failed(
                claim,
                volume,
                driver,
                "no node satisfies the volume's node affinity; the node holding it must join the cluster",
            )
        if not has_condition(claim, RESIZING):
            claim = await self._status(claim, with_condition(claim, RESIZING, "", now))
            self.recorder.event(claim, "Normal", RESIZING, f"External resizer is resizing volume {name}")
        try:
            capabilities = await csi(
                node, "ControllerGetCapabilities", csi_pb2.ControllerGetCapabilitiesRequest()
            )
            expandable = any(
                c.rpc.type == csi_pb2.ControllerServiceCapability.RPC.EXPAND_VOLUME
                for c in capabilities.capabilities
            )
            node_required, size = True, want
            if expandable:
                request = csi_pb2.ControllerExpandVolumeRequest(
                    volume_id=str(volume["spec"]["csi"].get("volumeHandle", "")),
                    capacity_range=csi_pb2.CapacityRange(required_bytes=want),
                    volume_capability=volume_capability(volume),
                )
                response = await csi(node, "ControllerExpandVolume", request)
                node_required = bool(response.node_expansion_required)
                size = max(int(response.capacity_bytes), want)
        except CSIError as err:
            return await self._failed(claim, volume, driver, err.message)
        new_size = (
            format_bytes(size) if size != want else str(claim["spec"]["resources"]["requests"]["storage"])
        )
        spec = dict(volume.get("spec") or {})
        spec["capacity"] = {**(spec.get("capacity") or {}), "storage": new_size}
        await self.client.update("v1", "persistentvolumes", {**volume, "spec": spec})
        log.info("expander: volume %s expanded to %s (node expansion %s)", name, new_size, node_required)
        if node_required:
            message = "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
            status = with_condition(claim, FS_RESIZE_PENDING, message, now)
            status["allocatedResources"] = {"storage": new_size}
            claim = await self._status(claim, status)
            self.recorder.event(
                claim, "Normal", FS_RESIZE_REQUIRED, "Require file system resize of volume on node"
            )
            return None
        status = with_condition(claim, None, "", now)
        status["capacity"] = {**(status.get("capacity") or {}), "storage": new_size}
        status["allocatedResources"] = {"storage": new_size}
        claim = await self._status(claim, status)
        self.recorder.event(claim, "Normal", VOLUME_RESIZE_SUCCESSFUL, "Resize volume succeeded")
        return None
