"""The ``attachdetach`` controller with the external-attacher role beside it: VolumeAttachments for
CSI volumes whose driver needs ``ControllerPublishVolume`` before a node may stage them.

Attach/detach (kube-controller-manager's ``attachdetach``, per node): the desired state is every CSI
PersistentVolume used by a pod scheduled to the node that has not finished, whose CSIDriver has
``attachRequired`` true (true as well when there is no CSIDriver object, as Kubernetes assumes). Each
gets a VolumeAttachment ``csi-<sha256(handle + driver + node)>`` (the name the node agent looks for);
one no pod on the node uses any more is deleted. ``Node.status.volumesAttached`` lists the attached ones
as ``kubernetes.io/csi/<driver>^<handle>``.

Attacher (external-attacher, per VolumeAttachment): a new one gets the finalizer
``external-attacher/<driver, sanitized>``, then ``ControllerPublishVolume`` on the node whose plugin
serves the volume (for node-local drivers the node holding it, else the attachment's node), and its
status says ``attached`` with the publish context as ``attachmentMetadata``, or ``attachError``. A
deleted one is unpublished (``ControllerUnpublishVolume``) before its finalizer goes.

Keys: ``node:<name>`` for the desired state of a node, ``va:<name>`` for one attachment.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.controllers.node_lifecycle import NODE_NAME_INDEX, node_name_index
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.controllers.volume import provisioning as prov
from cluster.controllers.volume.provisioner import NO_PLUGIN
from cluster.machinery.times import rfc3339
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError

log = logging.getLogger("raykube.controllers.attachdetach")

STORAGE_GV = "storage.k8s.io/v1"
TERMINAL = frozenset({"Succeeded", "Failed"})
RETRY_SECONDS = 15.0

Obj = Mapping[str, Any]


def attachment_name(handle: str, driver: str, node: str) -> str:
    """Kubernetes' VolumeAttachment name for a CSI volume on a node."""
    return "csi-" + hashlib.sha256(f"{handle}{driver}{node}".encode()).hexdigest()


def attacher_finalizer(driver: str) -> str:
    return "external-attacher/" + re.sub(r"[^a-zA-Z0-9-]", "-", driver)


def attach_required(drivers: Mapping[str, Obj], driver: str) -> bool:
    """Whether ``driver`` needs ControllerPublishVolume: its CSIDriver says so, or there is none."""
    found = drivers.get(driver)
    return found is None or (found.get("spec") or {}).get("attachRequired") is not False


def desired_attachments(
    node_name: str,
    pods: Sequence[Obj],
    claims: Mapping[tuple[str, str], Obj],
    volumes: Mapping[str, Obj],
    drivers: Mapping[str, Obj],
) -> dict[str, dict[str, Any]]:
    """The VolumeAttachments ``node_name`` should have, by name (pure)."""
    out: dict[str, dict[str, Any]] = {}
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") != node_name:
            continue
        if (pod.get("status") or {}).get("phase") in TERMINAL:
            continue
        namespace = (pod.get("metadata") or {}).get("namespace") or "default"
        for volume in (pod.get("spec") or {}).get("volumes") or ():
            source = volume.get("persistentVolumeClaim")
            if source is None:
                continue
            claim = claims.get((namespace, str(source.get("claimName", ""))))
            pv_name = str(((claim or {}).get("spec") or {}).get("volumeName") or "")
            pv = volumes.get(pv_name) if pv_name else None
            csi = ((pv or {}).get("spec") or {}).get("csi")
            if not csi or not attach_required(drivers, str(csi.get("driver", ""))):
                continue
            driver, handle = str(csi["driver"]), str(csi.get("volumeHandle", ""))
            out[attachment_name(handle, driver, node_name)] = volume_attachment(
                driver, handle, node_name, pv_name
            )
    return out


def volume_attachment(driver: str, handle: str, node_name: str, pv_name: str) -> dict[str, Any]:
    return {
        "apiVersion": STORAGE_GV,
        "kind": "VolumeAttachment",
        "metadata": {
            "name": attachment_name(handle, driver, node_name),
            "finalizers": [attacher_finalizer(driver)],
        },
        "spec": {"attacher": driver, "nodeName": node_name, "source": {"persistentVolumeName": pv_name}},
    }


def volumes_attached(
    attachments: Sequence[Obj], volumes: Mapping[str, Obj], node_name: str
) -> list[dict[str, str]]:
    """``Node.status.volumesAttached`` from the node's attached VolumeAttachments, sorted."""
    out = []
    for va in attachments:
        spec = va.get("spec") or {}
        if spec.get("nodeName") != node_name or not (va.get("status") or {}).get("attached"):
            continue
        pv = volumes.get(str((spec.get("source") or {}).get("persistentVolumeName") or ""))
        csi = ((pv or {}).get("spec") or {}).get("csi") or {}
        if csi:
            out.append(
                {"name": f"kubernetes.io/csi/{csi['driver']}^{csi.get('volumeHandle', '')}", "devicePath": ""}
            )
    return sorted(out, key=lambda v: v["name"])


def publish_request(pv: Obj, node_id: str) -> csi_pb2.ControllerPublishVolumeRequest:
    spec = pv.get("spec") or {}
    csi = spec.get("csi") or {}
    modes = spec.get("accessModes") or ["ReadWriteOnce"]
    claim_like = {"spec": {"accessModes": modes[:1], "volumeMode": spec.get("volumeMode")}}
    storage_class = {
        "parameters": {prov.FSTYPE_PARAMETER: csi.get("fsType", "")},
        "mountOptions": spec.get("mountOptions"),
    }
    return csi_pb2.ControllerPublishVolumeRequest(
        volume_id=str(csi.get("volumeHandle", "")),
        node_id=node_id,
        volume_capability=prov.volume_capabilities(claim_like, storage_class)[0],
        readonly=bool(csi.get("readOnly")),
        volume_context=dict(csi.get("volumeAttributes") or {}),
    )


class AttachDetachController(Controller):
    NAME: ClassVar[str] = "attachdetach"
    COMPONENT: ClassVar[str] = "attachdetach-controller"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.pods = self.watch(
            "v1",
            "pods",
            on_add=self._pod_changed,
            on_update=lambda _, new: self._pod_changed(new),
            on_delete=self._pod_changed,
        )
        self.pods.add_index(NODE_NAME_INDEX, node_name_index)
        self.claims = self.watch(
            "v1", "persistentvolumeclaims", on_update=lambda _, new: self._claim_users(new["metadata"])
        )
        self.volumes = self.watch("v1", "persistentvolumes", on_update=lambda _, new: self._pv_changed(new))
        self.drivers = self.watch(
            STORAGE_GV,
            "csidrivers",
            on_add=lambda _: self._all_nodes(),
            on_delete=lambda _: self._all_nodes(),
        )
        self.csinodes = self.watch(STORAGE_GV, "csinodes")
        self.nodes = self.watch(
            "v1", "nodes", on_add=lambda n: self.queue.add(f"node:{n['metadata']['name']}")
        )
        self.attachments = self.watch(
            STORAGE_GV,
            "volumeattachments",
            on_add=self._attachment_changed,
            on_update=lambda _, new: self._attachment_changed(new),
            on_delete=self._attachment_changed,
        )

    # -- handlers (enqueue only) -------------------------------------------------------------------

    def _pod_changed(self, pod: dict[str, Any]) -> None:
        spec = pod.get("spec") or {}
        node_name = spec.get("nodeName")
        if node_name and any(v.get("persistentVolumeClaim") for v in spec.get("volumes") or ()):
            self.queue.add(f"node:{node_name}")

    def _attachment_changed(self, va: dict[str, Any]) -> None:
        self.queue.add(f"va:{va['metadata']['name']}")
        node_name = (va.get("spec") or {}).get("nodeName")
        if node_name:
            self.queue.add(f"node:{node_name}")

    def _claim_users(self, claim_meta: Mapping[str, Any]) -> None:
        """Enqueue the nodes of the pods using a claim (its binding decides what they need)."""
        namespace, name = claim_meta.get("namespace") or "default", claim_meta.get("name")
        for pod in self.pods.list(namespace):
            spec = pod.get("spec") or {}
            if spec.get("nodeName") and any(
                (v.get("persistentVolumeClaim") or {}).get("claimName") == name
                for v in spec.get("volumes") or ()
            ):
                self.queue.add(f"node:{spec['nodeName']}")

    def _pv_changed(self, pv: dict[str, Any]) -> None:
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref and (pv.get("spec") or {}).get("csi"):
            self._claim_users(ref)

    def _all_nodes(self) -> None:
        for node in self.nodes.list():
            self.queue.add(f"node:{node['metadata']['name']}")

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        kind, _, name = key.partition(":")
        if kind == "va":
            return await self._reconcile_attachment(name)
        return await self._reconcile_node(name)

    def _by_name(self, lister: Any) -> dict[str, dict[str, Any]]:
        return {str(o["metadata"]["name"]): o for o in lister.list()}

    async def _reconcile_node(self, node_name: str) -> float | None:
        claims = {
            (c["metadata"].get("namespace") or "default", c["metadata"]["name"]): c
            for c in self.claims.list()
        }
        volumes = self._by_name(self.volumes)
        pods = self.pods.by_index(NODE_NAME_INDEX, node_name)
        wanted = desired_attachments(node_name, pods, claims, volumes, self._by_name(self.drivers))
        existing = [
            va for va in self.attachments.list() if (va.get("spec") or {}).get("nodeName") == node_name
        ]
        have = {str(va["metadata"]["name"]) for va in existing}
        for name, va in wanted.items():
            if name not in have:
                try:
                    await self.client.create(STORAGE_GV, "volumeattachments", va)
                except ApiError as err:
                    if not err.already_exists:
                        raise
                log.info("attach %s to node %s (VolumeAttachment %s)", va["spec"]["source"], node_name, name)
        for va in existing:
            name = str(va["metadata"]["name"])
            if name in wanted or va["metadata"].get("deletionTimestamp") or not name.startswith("csi-"):
                continue
            try:
                await self.client.delete(STORAGE_GV, "volumeattachments", name)
            except ApiError as err:
                if not err.not_found:
                    raise
            log.info("detach VolumeAttachment %s from node %s: no pod there uses it", name, node_name)
        await self._update_node_status(node_name, existing, volumes)
        return None

    async def _update_node_status(
        self, node_name: str, existing: Sequence[Obj], volumes: Mapping[str, Obj]
    ) -> None:
        node = self.nodes.get(None, node_name)
        if node is None:
            return
        attached = volumes_attached(existing, volumes, node_name)
        if ((node.get("status") or {}).get("volumesAttached") or []) == attached:
            return
        patch = {"status": {"volumesAttached": attached or None}}
        try:
            await self.client.patch("v1", "nodes", node_name, patch, subresource="status")
        except ApiError as err:
            if not err.not_found:
                raise

    # -- the attacher role -------------------------------------------------------------------------

    def _controller_node(self, pv: Obj | None, va: Obj) -> str:
        """Where ControllerPublish/Unpublish runs: the node holding a node-local volume, else the
        attachment's own node."""
        if pv is not None:
            found = prov.node_for_volume(pv, self.nodes.list(), self._by_name(self.csinodes))
            if found:
                return found
        return str(va["spec"]["nodeName"])

    def _node_id(self, driver: str, node_name: str) -> str:
        entry = prov.csi_node_driver(self.csinodes.get(None, node_name), driver)
        return str((entry or {}).get("nodeID") or node_name)

    async def _reconcile_attachment(self, name: str) -> float | None:
        va = self.attachments.get(None, name)
        if va is None:
            return None
        driver = str(va["spec"]["attacher"])
        pv = self.volumes.get(None, str((va["spec"].get("source") or {}).get("persistentVolumeName") or ""))
        finalizer = attacher_finalizer(driver)
        if va["metadata"].get("deletionTimestamp"):
            if finalizer not in (va["metadata"].get("finalizers") or ()):
                return None
            return await self._detach(va, pv, driver, finalizer)
        if (va.get("status") or {}).get("attached"):
            return None
        csi = self.ctx.options.csi
        if csi is None:
            await self._set_status(va, {"attached": False, "attachError": self._error(NO_PLUGIN)})
            return RETRY_SECONDS
        if pv is None:
            await self._set_status(
                va, {"attached": False, "attachError": self._error(f"PersistentVolume of {name} not found")}
            )
            return RETRY_SECONDS
        if finalizer not in (va["metadata"].get("finalizers") or ()):
            patch = {"metadata": {"finalizers": [*(va["metadata"].get("finalizers") or ()), finalizer]}}
            va = await self.client.patch(STORAGE_GV, "volumeattachments", name, patch)
        node_name = str(va["spec"]["nodeName"])
        request = publish_request(pv, self._node_id(driver, node_name))
        try:
            response = await csi(self._controller_node(pv, va), "ControllerPublishVolume", request)
        except CSIError as err:
            await self._set_status(va, {"attached": False, "attachError": self._error(err.message)})
            raise RuntimeError(f"ControllerPublishVolume {request.volume_id} to {node_name}: {err}") from err
        await self._set_status(
            va,
            {
                "attached": True,
                "attachmentMetadata": dict(response.publish_context) or None,
                "attachError": None,
            },
        )
        log.info("attached %s to node %s", request.volume_id, node_name)
        return None

    async def _detach(self, va: Obj, pv: Obj | None, driver: str, finalizer: str) -> float | None:
        csi = self.ctx.options.csi
        node_name = str(va["spec"]["nodeName"])
        if pv is not None and (va.get("status") or {}).get("attached"):
            if csi is None:
                return RETRY_SECONDS
            handle = str(((pv.get("spec") or {}).get("csi") or {}).get("volumeHandle") or "")
            request = csi_pb2.ControllerUnpublishVolumeRequest(
                volume_id=handle, node_id=self._node_id(driver, node_name)
            )
            try:
                await csi(self._controller_node(pv, va), "ControllerUnpublishVolume", request)
            except CSIError as err:
                if err.code.name != "NOT_FOUND":
                    await self._set_status(va, {"detachError": self._error(err.message)})
                    raise RuntimeError(f"ControllerUnpublishVolume {handle} from {node_name}: {err}") from err
            log.info("detached %s from node %s", handle, node_name)
        elif pv is None:
            log.warning(
                "VolumeAttachment %s: its PV is gone, dropping the finalizer without unpublishing",
                va["metadata"]["name"],
            )
        rest = [f for f in va["metadata"].get("finalizers") or () if f != finalizer]
        try:
            await self.client.patch(
                STORAGE_GV, "volumeattachments", va["metadata"]["name"], {"metadata": {"finalizers": rest}}
            )
        except ApiError as err:
            if not err.not_found:
                raise
        return None

    def _error(self, message: str) -> dict[str, str]:
        return {"time": rfc3339(self.clock.now()), "message": message}

    async def _set_status(self, va: Obj, status: dict[str, Any]) -> None:
        try:
            await self.client.patch(
                STORAGE_GV,
                "volumeattachments",
                va["metadata"]["name"],
                {"status": status},
                subresource="status",
            )
        except ApiError as err:
            if not err.not_found:
                raise
