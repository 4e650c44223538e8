"""The ``csi-provisioner`` controller: Kubernetes' external-provisioner role for every CSI driver the
controller manager can reach through ``ControllerOptions.csi``.

Claims: the PV controller (``persistentvolume-binder``) annotates a claim it cannot bind with
``volume.kubernetes.io/storage-provisioner = <driver>``; when the claim's StorageClass names that driver
this controller provisions it, on the node the scheduler chose (``volume.kubernetes.io/selected-node``,
WaitForFirstConsumer) or, for Immediate classes, on a node whose CSINode lists the driver inside the
class's allowedTopologies. It calls ``CreateVolume`` on that node's plugin and creates the PV
``pvc-<claim uid>`` pre-bound to the claim; the PV controller completes the binding. A selected node that
cannot host the volume (or a driver answering RESOURCE_EXHAUSTED) loses its annotation so the scheduler
picks again, as external-provisioner reschedules.

Volumes: a PV this role made (``pv.kubernetes.io/provisioned-by``), Released with reclaimPolicy Delete,
is deleted from the driver (``DeleteVolume`` on the node its node affinity names), then its finalizer
``external-provisioner.volume.kubernetes.io/finalizer`` is removed and the PV deleted. Retain keeps the
volume: a deleted Retain PV only loses the finalizer.

Keys: claims are ``namespace/name`` and PVs (cluster-scoped) their bare name, so the key says which.
Errors from the driver requeue with the runtime's backoff; events use external-provisioner's reasons
(Provisioning, ProvisioningSucceeded, ProvisioningFailed, VolumeFailedDelete).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from cluster.client.errors import ApiError
from cluster.client.lister import split_key
from cluster.controllers.runtime import Controller, ControllerContext
from cluster.controllers.volume import provisioning as prov
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError

log = logging.getLogger("raykube.controllers.provisioner")

STORAGE_GV = "storage.k8s.io/v1"
NO_PLUGIN = (
    "no volume plugin is reachable: the controller manager was started without a CSI caller "
    "(clusters started with `raykube up` run a volume plugin actor on every node)"
)
RETRY_SECONDS = 15.0
IN_USE_RETRY_SECONDS = 2.0  # DeleteVolume of a volume its node has not released yet


class ProvisioningError(RuntimeError):
    """A failed CreateVolume/DeleteVolume: raised so the runtime retries with backoff."""


def rpc_error(err: CSIError) -> str:
    """A driver error as gRPC-go prints it, the way external-provisioner's events quote it."""
    code = "".join(part.capitalize() for part in err.code.name.split("_"))
    return f"rpc error: code = {code} desc = {err.message}"


class CSIProvisioner(Controller):
    NAME: ClassVar[str] = "csi-provisioner"
    COMPONENT: ClassVar[str] = "csi-provisioner"

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.watch(
            "v1",
            "persistentvolumeclaims",
            on_add=self._claim_changed,
            on_update=lambda _, new: self._claim_changed(new),
        )
        self.volumes = self.watch(
            "v1", "persistentvolumes", on_add=self._pv_changed, on_update=lambda _, new: self._pv_changed(new)
        )
        self.classes = self.watch(STORAGE_GV, "storageclasses")
        self.csinodes = self.watch(
            STORAGE_GV,
            "csinodes",
            on_add=self._csinode_changed,
            on_update=lambda _, new: self._csinode_changed(new),
        )
        self.nodes = self.watch("v1", "nodes")

    # -- handlers (enqueue only) -------------------------------------------------------------------

    def _claim_changed(self, claim: dict[str, Any]) -> None:
        if prov.claim_driver(claim) and not (claim.get("spec") or {}).get("volumeName"):
            self.enqueue(claim)

    def _pv_changed(self, pv: dict[str, Any]) -> None:
        if prov.provisioned_by(pv):
            self.enqueue(pv)

    def _csinode_changed(self, _: dict[str, Any]) -> None:
        """A driver registered on a node: Immediate claims waiting for one may go ahead now."""
        for claim in self.claims.list():
            self._claim_changed(claim)

    # -- reconcile ---------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> float | None:
        namespace, name = split_key(key)
        if namespace is None:
            return await self._reconcile_volume(name)
        return await self._reconcile_claim(namespace, name)

    def _csinode_map(self) -> dict[str, dict[str, Any]]:
        return {str(c["metadata"]["name"]): c for c in self.csinodes.list()}

    async def _reconcile_claim(self, namespace: str, name: str) -> float | None:
        claim = self.claims.get(namespace, name)
        if claim is None or (claim.get("metadata") or {}).get("deletionTimestamp"):
            return None
        spec = claim.get("spec") or {}
        if spec.get("volumeName") or (claim.get("status") or {}).get("phase", "Pending") != "Pending":
            return None
        driver = prov.claim_driver(claim)
        storage_class = self.classes.get(None, str(spec.get("storageClassName") or ""))
        if not driver or storage_class is None or storage_class.get("provisioner") != driver:
            return None
        if self.volumes.get(None, prov.volume_name(claim)) is not None:
            return None  # provisioned already; the PV controller binds it
        class_name = storage_class["metadata"]["name"]
        node_name = prov.selected_node(claim)
        if storage_class.get("volumeBindingMode") == "WaitForFirstConsumer" and not node_name:
            return None  # the scheduler picks the node first
        csi = self.ctx.options.csi
        if csi is None:
            self._failed(claim, class_name, NO_PLUGIN)
            return RETRY_SECONDS
        if node_name:
            node = self.nodes.get(None, node_name)
            try:
                if node is None:
                    raise prov.TopologyMismatch(f'selected node "{node_name}" not found')
                segment = prov.node_segment(node, self._csinode_map().get(node_name), driver)
                if not prov.allowed_by_class(storage_class, prov.node_labels(node)):
                    raise prov.TopologyMismatch(
                        f'selected node "{node_name}" is outside the allowedTopologies '
                        f'of StorageClass "{class_name}"'
                    )
            except prov.TopologyMismatch as err:
                self._failed(claim, class_name, str(err))
                await self._reschedule(claim)
                return None
        else:
            csinodes = self._csinode_map()
            picked = prov.pick_immediate_node(claim, self.nodes.list(), csinodes, driver, storage_class)
            if picked is None:
                self._failed(
                    claim,
                    class_name,
                    f'no node has driver "{driver}" registered within the allowedTopologies of the class',
                )
                return RETRY_SECONDS
            node_name = picked
            segment = prov.node_segment(self.nodes.get(None, picked) or {}, csinodes.get(picked), driver)
        self.recorder.event(
            claim,
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
        )
        request = prov.create_volume_request(claim, storage_class, segment)
        try:
            response = await csi(node_name, "CreateVolume", request)
        except CSIError as err:
            self._failed(claim, class_name, rpc_error(err))
            if prov.selected_node(claim) and err.code.name == "RESOURCE_EXHAUSTED":
                await self._reschedule(claim)
                return None
            raise ProvisioningError(
                f"CreateVolume for {namespace}/{name} on {node_name}: {err.message}"
            ) from err
        result = prov.Provisioned.from_response(response)
        pv = prov.persistent_volume(claim, storage_class, driver, result)
        try:
            await self.client.create("v1", "persistentvolumes", pv)
        except ApiError as err:
            if not err.already_exists:
                raise
        log.info(
            "provisioned %s for claim %s/%s on node %s", pv["metadata"]["name"], namespace, name, node_name
        )
        self.recorder.event(
            claim,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {pv['metadata']['name']}",
        )
        return None

    def _failed(self, claim: dict[str, Any], class_name: str, why: str) -> None:
        self.recorder.event(
            claim,
            "Warning",
            "ProvisioningFailed",
            f'failed to provision volume with StorageClass "{class_name}": {why}',
        )

    async def _reschedule(self, claim: dict[str, Any]) -> None:
        """Drop the selected-node annotation so the scheduler chooses again (external-provisioner's
        answer to a node that cannot take the volume)."""
        meta = claim["metadata"]
        patch = {"metadata": {"annotations": {prov.SELECTED_NODE_ANN: None}}}
        try:
            await self.client.patch(
                "v1", "persistentvolumeclaims", meta["name"], patch, meta.get("namespace")
            )
        except ApiError as err:
            if not err.not_found:
                raise

    async def _reconcile_volume(self, name: str) -> float | None:
        pv = self.volumes.get(None, name)
        if pv is None:
            return None
        if prov.drops_finalizer_only(pv):
            await self._drop_finalizer(pv)
            return None
        deleting = bool(pv["metadata"].get("deletionTimestamp"))
        phase = (pv.get("status") or {}).get("phase")
        if not prov.should_delete(pv) and not (
            deleting
            and phase in ("Available", "Released", "Failed")
            and prov.PROVISIONER_FINALIZER in (pv["metadata"].get("finalizers") or ())
        ):
            return None
        csi = self.ctx.options.csi
        if csi is None:
            self.recorder.event(pv, "Warning", "VolumeFailedDelete", NO_PLUGIN)
            return RETRY_SECONDS
        handle = str(pv["spec"]["csi"].get("volumeHandle") or "")
        node_name = prov.node_for_volume(pv, self.nodes.list(), self._csinode_map())
        if node_name is None:
            self.recorder.event(
                pv,
                "Warning",
                "VolumeFailedDelete",
                f'no node with driver "{prov.provisioned_by(pv)}" matches the node affinity '
                f"of volume {name}: the node holding it is gone or its volume plugin is not registered",
            )
            return RETRY_SECONDS
        try:
            await csi(node_name, "DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id=handle))
        except CSIError as err:
            if err.code.name == "FAILED_PRECONDITION":
                # Still mounted on the node: a pod deleted with grace 0 leaves the API before its node
                # agent has unpublished and unstaged, and that takes seconds. Look again soon rather
                # than after an exponential backoff that would have grown to minutes by then.
                self.recorder.event(pv, "Warning", "VolumeFailedDelete", rpc_error(err))
                return IN_USE_RETRY_SECONDS
            if err.code.name != "NOT_FOUND":
                self.recorder.event(pv, "Warning", "VolumeFailedDelete", rpc_error(err))
                raise ProvisioningError(f"DeleteVolume {handle} on {node_name}: {err.message}") from err
        log.info("deleted volume %s (%s) on node %s", name, handle, node_name)
        await self._drop_finalizer(pv)
        try:
            await self.client.delete(
                "v1", "persistentvolumes", name, preconditions={"uid": pv["metadata"].get("uid")}
            )
        except ApiError as err:
            if not (err.not_found or err.conflict):
                raise
        return None

    async def _drop_finalizer(self, pv: dict[str, Any]) -> None:
        finalizers = list(pv["metadata"].get("finalizers") or ())
        if prov.PROVISIONER_FINALIZER not in finalizers:
            return
        rest = [f for f in finalizers if f != prov.PROVISIONER_FINALIZER]
        patch = {"metadata": {"finalizers": rest, "resourceVersion": pv["metadata"].get("resourceVersion")}}
        try:
            await self.client.patch("v1", "persistentvolumes", pv["metadata"]["name"], patch)
        except ApiError as err:
            if not err.not_found:
                raise
