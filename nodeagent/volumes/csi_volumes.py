"""CSI volumes on this node: what the kubelet's csi volume plugin does with the node's CSI driver.

A claim goes claim -> bound PersistentVolume -> ``spec.csi``; when the CSIDriver object asks for
attachment (``attachRequired``, true when there is no CSIDriver) the VolumeAttachment the
attach/detach controller makes must say ``status.attached`` (its ``attachmentMetadata`` is the
publish context). The volume is staged once per node (NodeStageVolume, when the driver has
STAGE_UNSTAGE_VOLUME) and published per pod (NodePublishVolume); an inline ``csi`` volume is only
published. Paths and records: ``csi_layout``; what the requests carry: ``csi_source``.

Invariants: the pod's ``vol_data.json`` is written before staging, so ``unstage_unused`` (which
unstages what no record uses) never takes a volume from under a publish in flight; calls on one
volume handle are serialised; every call is idempotent and may be repeated after a failure (the
pod worker retries a ``VolumeError``, the agent's sync repeats ``unstage_unused``/``expand_pending``).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cluster.client.errors import ApiError
from cluster.machinery import mountinfo
from cluster.machinery.quantity import QuantityError, parse_quantity
from nodeagent.agent.api import AgentApi
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from nodeagent.volumes import csi_layout as layout
from nodeagent.volumes.csi_node_info import STORAGE, DriverNodeInfo, install_driver
from nodeagent.volumes.csi_source import (
    PERSISTENT,
    POD_INFO_PREFIX,
    DriverPolicy,
    VolumeSource,
    access_mode,
    attachment_state,
    claim_source,
    inline_source,
    mount_capability,
    volume_context,
)
from nodeagent.volumes.errors import FAILED_ATTACH, VolumeError

log = logging.getLogger(__name__)

FS_RESIZE_PENDING = "FileSystemResizePending"
RESIZING = "Resizing"
FAILED_UNMOUNT = "FailedUnMount"
_Rpc = csi_pb2.NodeServiceCapability.RPC


class CSICalls(Protocol):
    """What is used of ``nodeagent.csi.client.CSIClient``: one call by RPC name, raising ``CSIError``."""

    async def call(self, method: str, request: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class VolumeEvent:
    """An event about a pod's volume for the agent to record (node expansion's outcome)."""

    pod: Mapping[str, Any]
    type: str  # Normal | Warning
    reason: str
    message: str


class CSIVolumes:
    """Stage, publish, unpublish, unstage and node-expand the volumes of this node's CSI driver.

    ``api`` is the agent's ``AgentApi``, ``client`` the driver's ``CSIClient``, ``data_dir`` the
    agent's data dir. ``attach_timeout`` bounds one wait for a VolumeAttachment inside ``publish``
    (then ``FailedAttachVolume``; the pod worker calls again later).
    """

    def __init__(
        self,
        api: AgentApi,
        client: CSICalls,
        data_dir: str,
        node_name: str,
        *,
        attach_timeout: float = 10.0,
        poll_interval: float = 0.5,
    ) -> None:
        self.api = api
        self.client = client
        self.data_dir = data_dir
        self.node_name = node_name
        self.attach_timeout = attach_timeout
        self.poll_interval = poll_interval
        self._info: DriverNodeInfo | None = None
        self._locks: dict[str, asyncio.Lock] = {}

    async def driver_info(self) -> DriverNodeInfo:
        """GetPluginInfo, NodeGetInfo and NodeGetCapabilities, asked once (``CSIError`` when down)."""
        if self._info is None:
            plugin = await self.client.call("GetPluginInfo", csi_pb2.GetPluginInfoRequest())
            node = await self.client.call("NodeGetInfo", csi_pb2.NodeGetInfoRequest())
            caps = await self.client.call("NodeGetCapabilities", csi_pb2.NodeGetCapabilitiesRequest())
            rpcs = {c.rpc.type for c in caps.capabilities if c.HasField("rpc")}
            self._info = DriverNodeInfo(
                name=plugin.name,
                node_id=node.node_id,
                topology=dict(node.accessible_topology.segments),
                max_volumes=node.max_volumes_per_node,
                stage_unstage=_Rpc.STAGE_UNSTAGE_VOLUME in rpcs,
                expand=_Rpc.EXPAND_VOLUME in rpcs,
                single_node_multi_writer=_Rpc.SINGLE_NODE_MULTI_WRITER in rpcs,
            )
        return self._info

    async def register(self, *, retry_initial: float = 0.5, retry_max: float = 10.0) -> None:
        """Record the driver in the node's CSINode and its topology as Node labels (the kubelet's
        plugin registration); retried with back-off, each failure logged, until it succeeds, so
        run it as a task when the caller should not wait (e.g. before the Node exists)."""
        delay = retry_initial
        while True:
            try:
                info = await self.driver_info()
                await install_driver(self.api, self.node_name, info)
                log.info(
                    "CSI driver %s registered on node %s (node id %s)",
                    info.name,
                    self.node_name,
                    info.node_id,
                )
                return
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("registering the CSI driver on node %s failed, retrying: %s", self.node_name, err)
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_max)

    # -- publish ----------------------------------------------------------------------------------

    async def claim_target(self, pod: Mapping[str, Any], volume: Mapping[str, Any]) -> str:
        """The target dir of a pod's CSI volume: for a claim, named after its bound PV (so the claim
        must be bound: ``VolumeError`` otherwise, as ``publish`` raises)."""
        uid = (pod.get("metadata") or {}).get("uid", "")
        if "persistentVolumeClaim" not in volume:
            return layout.target_path(self.data_dir, uid, volume.get("name", ""))
        namespace = (pod.get("metadata") or {}).get("namespace", "default")
        claim_ref = volume["persistentVolumeClaim"] or {}
        pvc = await self._claim(namespace, claim_ref.get("claimName", ""))
        return layout.target_path(self.data_dir, uid, claim_source(claim_ref, pvc, None, False).name)

    async def publish(
        self, pod: Mapping[str, Any], volume: Mapping[str, Any], target_dir: str, readonly: bool
    ) -> None:
        """Make ``volume`` (a ``spec.volumes[]`` entry with ``persistentVolumeClaim`` or ``csi``) of
        ``pod`` available at ``target_dir``; idempotent. Raises ``VolumeError``."""
        info = await self._driver_or_error()
        meta = pod.get("metadata") or {}
        namespace = meta.get("namespace", "default")
        if "persistentVolumeClaim" in volume:
            claim_ref = volume["persistentVolumeClaim"] or {}
            pvc = await self._claim(namespace, claim_ref.get("claimName", ""))
            pv_name = claim_source(claim_ref, pvc, None, readonly).name
            if (pvc.get("metadata") or {}).get("deletionTimestamp") and not mountinfo.is_mount_point(
                target_dir
            ):
                claim = claim_ref.get("claimName")
                raise VolumeError(
                    f'persistentvolumeclaim "{claim}" is being deleted: a new pod cannot use it'
                )
            source = claim_source(claim_ref, pvc, await self._pv(pv_name, claim_ref), readonly)
        elif "csi" in volume:
            source = inline_source(meta.get("uid", ""), volume, readonly)
        else:
            raise VolumeError(
                f"volume {volume.get('name')!r} is neither a persistentVolumeClaim nor a csi volume"
            )
        if source.driver != info.name:
            raise VolumeError(
                f'volume "{source.name}" needs the CSI driver {source.driver}, but node {self.node_name} '
                f"runs {info.name}: use a StorageClass or PersistentVolume of {info.name}"
            )
        policy = await self._policy(source.driver)
        if source.mode not in policy.modes:
            raise VolumeError(
                f'volume "{source.name}": CSI driver {source.driver} does not support the {source.mode} '
                f"lifecycle mode (its CSIDriver lists {list(policy.modes)})"
            )
        publish_context: dict[str, str] = {}
        attachment = ""
        if source.mode == PERSISTENT and policy.attach_required:
            attachment = layout.attachment_name(source.handle, source.driver, self.node_name)
            publish_context = await self._wait_attached(source, attachment)
        async with self._lock(source.handle):
            await self._publish_locked(
                source,
                info,
                target_dir,
                publish_context,
                volume_context(source, policy, pod),
                attachment,
                namespace,
            )

    async def _publish_locked(
        self,
        source: VolumeSource,
        info: DriverNodeInfo,
        target_dir: str,
        publish_context: dict[str, str],
        context: dict[str, str],
        attachment: str,
        namespace: str,
    ) -> None:
        volume_dir = os.path.dirname(target_dir)
        record = {
            "specVolID": source.name, "volumeHandle": source.handle, "driverName": source.driver,
            "nodeName": self.node_name, "attachmentID": attachment, "volumeLifecycleMode": source.mode,
        }  # fmt: skip
        if layout.read_vol_data(volume_dir) == record and mountinfo.is_mount_point(target_dir):
            return
        layout.write_vol_data(volume_dir, record)
        mode = access_mode(source.access_modes, info.single_node_multi_writer)
        capability = mount_capability(source.fs_type, source.mount_flags, mode)
        staging = ""
        if source.mode == PERSISTENT and info.stage_unstage:
            staging = layout.staging_path(self.data_dir, source.driver, source.handle)
            await self._stage(source, staging, publish_context, capability)
        request = csi_pb2.NodePublishVolumeRequest(
            volume_id=source.handle, publish_context=publish_context, staging_target_path=staging,
            target_path=target_dir, volume_capability=capability, readonly=source.readonly,
            secrets=await self._secrets(source.publish_secret, namespace), volume_context=context,
        )  # fmt: skip
        try:
            await self.client.call("NodePublishVolume", request)
        except CSIError as err:
            layout.remove_volume_dir(target_dir)  # nothing is mounted there: no record of it either
            raise VolumeError(
                f'MountVolume.SetUp failed for volume "{source.name}" : {_rpc_text(err)}'
            ) from err
        log.info("published %s volume %s at %s", source.driver, source.handle, target_dir)

    async def _stage(
        self, source: VolumeSource, staging: str, publish_context: dict[str, str], capability: Any
    ) -> None:
        if mountinfo.is_mount_point(staging):
            return
        os.makedirs(staging, mode=0o750, exist_ok=True)
        layout.write_vol_data(
            os.path.dirname(staging), {"volumeHandle": source.handle, "driverName": source.driver}
        )
        request = csi_pb2.NodeStageVolumeRequest(
            volume_id=source.handle, publish_context=publish_context, staging_target_path=staging,
            volume_capability=capability, secrets=await self._secrets(source.stage_secret, None),
            volume_context={k: v for k, v in source.attributes.items() if not k.startswith(POD_INFO_PREFIX)},
        )  # fmt: skip
        try:
            await self.client.call("NodeStageVolume", request)
        except CSIError as err:
            raise VolumeError(
                f'MountVolume.MountDevice failed for volume "{source.name}" : {_rpc_text(err)}'
            ) from err

    async def _wait_attached(self, source: VolumeSource, attachment: str) -> dict[str, str]:
        """The attachment's metadata once attached; ``FailedAttachVolume`` after ``attach_timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.attach_timeout
        while True:
            try:
                va: dict[str, Any] | None = await self.api.get(STORAGE, "volumeattachments", None, attachment)
            except ApiError as err:
                if err.status != 404:
                    raise VolumeError(
                        f"cannot read VolumeAttachment {attachment}: {err}", FAILED_ATTACH
                    ) from err
                va = None
            context = attachment_state(va, source)
            if context is not None:
                return context
            if loop.time() >= deadline:
                state = "does not exist yet" if va is None else "is not attached yet"
                raise VolumeError(
                    f'AttachVolume.Attach failed for volume "{source.name}" : timed out waiting for '
                    f"external-attacher of {source.driver} CSI driver to attach volume {source.handle} to "
                    f"node {self.node_name} (VolumeAttachment {attachment} {state})",
                    FAILED_ATTACH,
                )
            await asyncio.sleep(self.poll_interval)

    # -- unpublish, unstage -----------------------------------------------------------------------

    async def unpublish(self, target_dir: str) -> None:
        """NodeUnpublishVolume for the volume published at ``target_dir``, then remove its directory
        and record; a missing directory is fine. Raises ``VolumeError`` (reason ``FailedUnMount``)."""
        volume_dir = os.path.dirname(target_dir)
        record = layout.read_vol_data(volume_dir)
        if record is None:
            if mountinfo.is_mount_point(target_dir):
                raise VolumeError(
                    f"{target_dir} is mounted but has no {layout.VOL_DATA} beside it, so its CSI volume is "
                    "unknown: unmount it by hand (umount) and the agent removes the directory",
                    FAILED_UNMOUNT,
                )
            self._remove(target_dir)
            return
        handle = record.get("volumeHandle", "")
        async with self._lock(handle):
            request = csi_pb2.NodeUnpublishVolumeRequest(volume_id=handle, target_path=target_dir)
            try:
                await self.client.call("NodeUnpublishVolume", request)
            except CSIError as err:
                name = record.get("specVolID", handle)
                raise VolumeError(
                    f'UnmountVolume.TearDown failed for volume "{name}" : {_rpc_text(err)}', FAILED_UNMOUNT
                ) from err
            self._remove(target_dir)

    def _remove(self, mount_dir: str) -> None:
        try:
            removed = layout.remove_volume_dir(mount_dir)
        except OSError as err:
            raise VolumeError(
                f"cannot remove {mount_dir} after unmounting it: {err}", FAILED_UNMOUNT
            ) from err
        if not removed:
            raise VolumeError(
                f"{mount_dir} is still mounted after the CSI driver's unmount call: it did not unmount it",
                FAILED_UNMOUNT,
            )

    async def unstage_unused(self) -> None:
        """NodeUnstageVolume for each staged volume of this driver that no published volume uses any
        more, then remove its staging directory. Failures are logged; the next call tries again."""
        try:
            info = await self.driver_info()
        except CSIError as err:
            log.warning("cannot reach the CSI driver to unstage volumes: %s", err)
            return
        for staging, record in layout.staged_volumes(self.data_dir).items():
            handle = record.get("volumeHandle", "")
            if record.get("driverName") != info.name:
                continue
            async with self._lock(handle):
                if self._in_use(info.name, handle):
                    continue
                try:
                    if info.stage_unstage:
                        request = csi_pb2.NodeUnstageVolumeRequest(
                            volume_id=handle, staging_target_path=staging
                        )
                        await self.client.call("NodeUnstageVolume", request)
                    self._remove(staging)
                except (CSIError, VolumeError) as err:
                    log.warning("unstaging volume %s at %s failed, retrying later: %s", handle, staging, err)
                    continue
            self._locks.pop(handle, None)
            log.info("unstaged %s volume %s", info.name, handle)

    def _in_use(self, driver: str, handle: str) -> bool:
        return any(
            r.get("volumeHandle") == handle and r.get("driverName") == driver
            for r in layout.published_volumes(self.data_dir).values()
        )

    # -- expansion --------------------------------------------------------------------------------

    async def expand_pending(self, pods: Iterable[Mapping[str, Any]]) -> list[VolumeEvent]:
        """The node side of a claim's expansion, for the agent's periodic sync: each claim of ``pods``
        with the condition ``FileSystemResizePending`` and published here gets NodeExpandVolume (when
        the driver can) to its PV's capacity; then the claim's ``status.capacity`` is that size and
        its resize conditions go. Returns the events to record on the pods; raises nothing."""
        events: list[VolumeEvent] = []
        done: set[tuple[str, str]] = set()
        for pod in pods:
            namespace = (pod.get("metadata") or {}).get("namespace", "default")
            for volume in (pod.get("spec") or {}).get("volumes") or ():
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if not claim or (namespace, claim) in done:
                    continue
                try:
                    event = await self._expand_claim(pod, namespace, claim)
                except Exception as err:  # a loop step: log, tell the pod, try again on the next sync
                    log.warning("node expansion of %s/%s failed: %s", namespace, claim, err)
                    message = err.message if isinstance(err, VolumeError) else str(err)
                    event = VolumeEvent(pod, "Warning", "FileSystemResizeFailed", message)
                if event is not None:
                    done.add((namespace, claim))
                    events.append(event)
        return events

    async def _expand_claim(self, pod: Mapping[str, Any], namespace: str, claim: str) -> VolumeEvent | None:
        pvc = await self.api.get("v1", "persistentvolumeclaims", namespace, claim)
        status = pvc.get("status") or {}
        conditions = list(status.get("conditions") or [])
        if not any(c.get("type") == FS_RESIZE_PENDING for c in conditions):
            return None
        pv_name = (pvc.get("spec") or {}).get("volumeName") or ""
        target = layout.target_path(self.data_dir, (pod.get("metadata") or {}).get("uid", ""), pv_name)
        record = layout.read_vol_data(os.path.dirname(target))
        if record is None or not mountinfo.is_mount_point(target):
            return None  # not published for this pod: a pod that has it mounted expands it
        pv = await self.api.get("v1", "persistentvolumes", None, pv_name)
        spec = pv.get("spec") or {}
        size_text = str((spec.get("capacity") or {}).get("storage") or "")
        try:
            size = int(parse_quantity(size_text))
        except QuantityError as err:
            raise VolumeError(f'persistentvolume "{pv_name}" has no valid capacity ({size_text!r})') from err
        info = await self.driver_info()
        if info.expand:
            csi = spec.get("csi") or {}
            mode = access_mode(spec.get("accessModes") or (), info.single_node_multi_writer)
            capability = mount_capability(csi.get("fsType") or "", spec.get("mountOptions") or (), mode)
            handle = record.get("volumeHandle", "")
            staging = layout.staging_path(self.data_dir, info.name, handle) if info.stage_unstage else ""
            request = csi_pb2.NodeExpandVolumeRequest(
                volume_id=handle, volume_path=target, staging_target_path=staging,
                capacity_range=csi_pb2.CapacityRange(required_bytes=size),
                volume_capability=capability,
                secrets=await self._secrets(csi.get("nodeExpandSecretRef"), None),
            )  # fmt: skip
            async with self._lock(handle):
                try:
                    await self.client.call("NodeExpandVolume", request)
                except CSIError as err:
                    raise VolumeError(
                        f'MountVolume.NodeExpandVolume failed for volume "{pv_name}" : {_rpc_text(err)}'
                    ) from err
        patch: dict[str, Any] = {
            "capacity": {"storage": size_text},
            "conditions": [c for c in conditions if c.get("type") not in (FS_RESIZE_PENDING, RESIZING)],
        }
        if "storage" in (status.get("allocatedResourceStatuses") or {}):
            patch["allocatedResourceStatuses"] = {"storage": None}
        await self.api.patch_status("v1", "persistentvolumeclaims", namespace, claim, patch)
        message = f'MountVolume.NodeExpandVolume succeeded for volume "{pv_name}" {self.node_name}'
        return VolumeEvent(pod, "Normal", "FileSystemResizeSuccessful", message)

    # -- helpers ----------------------------------------------------------------------------------

    def _lock(self, handle: str) -> asyncio.Lock:
        return self._locks.setdefault(handle, asyncio.Lock())

    async def _driver_or_error(self) -> DriverNodeInfo:
        try:
            return await self.driver_info()
        except CSIError as err:
            raise VolumeError(
                f"the CSI driver of node {self.node_name} does not answer ({_rpc_text(err)}): check the "
                "node's volume plugin (raykube status, the csi actor's log)"
            ) from err

    async def _claim(self, namespace: str, claim: str) -> dict[str, Any]:
        try:
            return await self.api.get("v1", "persistentvolumeclaims", namespace, claim)
        except ApiError as err:
            if err.status == 404:
                raise VolumeError(f'persistentvolumeclaim "{claim}" not found') from err
            raise VolumeError(f'cannot read persistentvolumeclaim "{claim}": {err}') from err

    async def _pv(self, name: str, claim_ref: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return await self.api.get("v1", "persistentvolumes", None, name)
        except ApiError as err:
            raise VolumeError(
                f'persistentvolumeclaim "{claim_ref.get("claimName")}" is bound to persistentvolume '
                f'"{name}", which cannot be read: {err.message or err}'
            ) from err

    async def _policy(self, driver: str) -> DriverPolicy:
        try:
            return DriverPolicy.of(await self.api.get(STORAGE, "csidrivers", None, driver))
        except ApiError as err:
            if err.status == 404:
                return DriverPolicy()
            raise VolumeError(f"cannot read CSIDriver {driver}: {err}") from err

    async def _secrets(self, ref: Mapping[str, Any] | None, namespace: str | None) -> dict[str, str]:
        """The data of the Secret a SecretReference names (an inline volume's: in the pod's namespace)."""
        if not ref or not ref.get("name"):
            return {}
        ns = ref.get("namespace") or namespace or "default"
        try:
            secret = await self.api.get("v1", "secrets", ns, ref["name"])
        except ApiError as err:
            raise VolumeError(
                f"fetching the CSI secret {ns}/{ref['name']} failed: {err.message or err}"
            ) from err
        return {
            k: base64.b64decode(v).decode("utf-8", "replace") for k, v in (secret.get("data") or {}).items()
        }


def _rpc_text(err: CSIError) -> str:
    return f"rpc error: code = {err.code.name} desc = {err.message}"
