"""The binder, the protection controllers and the expander together, against the real API server in
process (no Ray): claims and volumes bind both ways, are released by policy, are kept while in use, and
grow through a fake CSI driver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.registry import CONTROLLERS, enabled
from cluster.controllers.runtime import (
    Controller,
    ControllerContext,
    ControllerOptions,
    CSICaller,
    SharedInformers,
)
from cluster.controllers.volume import binding, expand
from cluster.controllers.volume.expand import ExpandController
from cluster.controllers.volume.protection import PVCProtectionController, PVProtectionController
from cluster.controllers.volume.pv_controller import PersistentVolumeController
from cluster.machinery.times import SystemClock
from nodeagent.csi import csi_pb2
from tests.cluster.controllers.fakes import FakeRecorder
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.cluster.controllers.test_nodeipam import eventually
from tests.cluster.controllers.volume.objects import pv, pvc, ref, storage_class

NS = "default"
ALL = (PersistentVolumeController, PVCProtectionController, PVProtectionController, ExpandController)


class Running:
    """Several controllers on one set of shared informers, as the manager runs them."""

    def __init__(
        self, client: Any, controllers: Sequence[type[Controller]], csi: CSICaller | None = None
    ) -> None:
        self.recorder = FakeRecorder()
        self.informers = SharedInformers(client)
        options = ControllerOptions(extra={"pv_resync": 0.5, "expand_retry": 0.5}, csi=csi)
        ctx = ControllerContext(client, self.informers, SystemClock(), lambda _: self.recorder, options)
        self.controllers = [c(ctx) for c in controllers]

    async def __aenter__(self) -> Running:
        self.informers.start()
        assert await self.informers.wait_synced(10) == []
        for controller in self.controllers:
            controller.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for controller in self.controllers:
            await controller.stop()
        await self.informers.stop()

    def events(self, reason: str) -> list[tuple[str, str, str, str]]:
        return [e for e in self.recorder.events if e[1] == reason]


def _strip(obj: dict[str, Any]) -> dict[str, Any]:
    obj = {
        **obj,
        "metadata": {k: v for k, v in obj["metadata"].items() if k not in ("uid", "resourceVersion")},
    }
    obj.pop("status", None)
    return obj


async def create_pv(client: Any, volume: dict[str, Any]) -> dict[str, Any]:
    return dict(await client.create("v1", "persistentvolumes", _strip(volume)))


async def create_pvc(client: Any, claim: dict[str, Any]) -> dict[str, Any]:
    claim["metadata"]["namespace"] = NS
    return dict(await client.create("v1", "persistentvolumeclaims", _strip(claim), NS))


async def get_pv(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(await client.get("v1", "persistentvolumes", name))
    except ApiError as err:
        if err.status == 404:
            return None
        raise


async def get_pvc(client: Any, name: str) -> dict[str, Any] | None:
    try:
        return dict(await client.get("v1", "persistentvolumeclaims", name, NS))
    except ApiError as err:
        if err.status == 404:
            return None
        raise


async def phase_of(getter: Any, client: Any, name: str, phase: str) -> dict[str, Any] | None:
    obj = await getter(client, name)
    return obj if obj is not None and (obj.get("status") or {}).get("phase") == phase else None


def test_registered_by_kube_names() -> None:
    for name in ("persistentvolume-binder", "pvc-protection", "pv-protection", "persistentvolume-expander"):
        assert name in CONTROLLERS
        assert name in enabled(["*"])


def test_bind_release_and_reclaim() -> None:
    asyncio.run(_bind_release_and_reclaim())


async def _bind_release_and_reclaim() -> None:
    async with local_apiserver() as client, Running(client, ALL) as running:
        await create_pv(client, pv("small", "1Gi"))
        await create_pv(client, pv("big", "5Gi"))
        await create_pv(client, pv("named", "2Gi", reclaim="Delete"))
        claim = await create_pvc(client, pvc("data", "512Mi"))
        bound = await eventually(lambda: phase_of(get_pvc, client, "data", "Bound"), "data Bound")
        assert bound["spec"]["volumeName"] == "small"
        assert bound["status"]["capacity"] == {"storage": "1Gi"}
        assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
        assert bound["metadata"]["annotations"] == {
            binding.BIND_COMPLETED_ANN: "yes",
            binding.BOUND_BY_CONTROLLER_ANN: "yes",
        }
        assert "kubernetes.io/pvc-protection" in bound["metadata"]["finalizers"]
        volume = await eventually(lambda: phase_of(get_pv, client, "small", "Bound"), "small Bound")
        assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert volume["metadata"]["annotations"] == {binding.BOUND_BY_CONTROLLER_ANN: "yes"}
        assert "kubernetes.io/pv-protection" in volume["metadata"]["finalizers"]

        # Pre-bound by volumeName: the user's choice, not the controller's.
        await create_pvc(client, pvc("chosen", "1Gi", volume_name="named"))
        chosen = await eventually(lambda: phase_of(get_pvc, client, "chosen", "Bound"), "chosen Bound")
        assert chosen["metadata"]["annotations"] == {binding.BIND_COMPLETED_ANN: "yes"}
        named = await eventually(lambda: phase_of(get_pv, client, "named", "Bound"), "named Bound")
        # the controller wrote the claimRef, so the volume side says so (as in kube)
        assert named["metadata"]["annotations"] == {binding.BOUND_BY_CONTROLLER_ANN: "yes"}

        # No volume, no class: Pending with FailedBinding.
        await create_pvc(client, pvc("huge", "100Gi"))
        await eventually(lambda: running.events("FailedBinding"), "FailedBinding")
        assert (await get_pvc(client, "huge") or {})["status"]["phase"] == "Pending"

        # Retain: the claim goes, the volume is Released and keeps its claimRef.
        await client.delete("v1", "persistentvolumeclaims", "data", NS)
        released = await eventually(lambda: phase_of(get_pv, client, "small", "Released"), "small Released")
        assert released["spec"]["claimRef"]["name"] == "data"
        assert await eventually(lambda: _gone(get_pvc, client, "data"), "data deleted")

        # Delete of a volume nothing provisioned: Failed with VolumeFailedDelete.
        await client.delete("v1", "persistentvolumeclaims", "chosen", NS)
        failed = await eventually(lambda: phase_of(get_pv, client, "named", "Failed"), "named Failed")
        assert "no deletable volume plugin" in failed["status"]["message"]
        assert running.events("VolumeFailedDelete")

        # pv-protection lets a volume that is not Bound go.
        await client.delete("v1", "persistentvolumes", "small")
        assert await eventually(lambda: _gone(get_pv, client, "small"), "small deleted")


async def _gone(getter: Any, client: Any, name: str) -> bool:
    return await getter(client, name) is None


def test_provisioning_annotations_and_wait_for_first_consumer() -> None:
    asyncio.run(_provisioning())


async def _provisioning() -> None:
    async with local_apiserver() as client, Running(client, ALL) as running:
        await client.create("storage.k8s.io/v1", "storageclasses", storage_class("fast"))
        await client.create(
            "storage.k8s.io/v1", "storageclasses", storage_class("late", mode="WaitForFirstConsumer")
        )
        await create_pvc(client, pvc("now", klass="fast"))
        await create_pvc(client, pvc("later", klass="late"))

        async def annotated(name: str) -> bool:
            anns = ((await get_pvc(client, name) or {}).get("metadata") or {}).get("annotations") or {}
            return anns.get(binding.STORAGE_PROVISIONER_ANN) == "hostpath.csi.raykube.io" and (
                anns.get(binding.BETA_STORAGE_PROVISIONER_ANN) == "hostpath.csi.raykube.io"
            )

        assert await eventually(lambda: annotated("now"), "now annotated for the provisioner")
        [event] = {e[2] for e in running.events("ExternalProvisioning")}
        assert "external provisioner 'hostpath.csi.raykube.io'" in event
        await eventually(lambda: running.events("WaitForFirstConsumer"), "WaitForFirstConsumer")
        assert not await annotated("later")

        # The scheduler picked a node: now it is the provisioner's.
        later = await get_pvc(client, "later")
        assert later is not None
        later["metadata"].setdefault("annotations", {})[binding.SELECTED_NODE_ANN] = "n1"
        await client.update("v1", "persistentvolumeclaims", later, NS)
        assert await eventually(lambda: annotated("later"), "later annotated for the provisioner")

        # A provisioned volume appears pre-bound (as the provisioner writes it): the claim binds to it.
        now = await get_pvc(client, "now")
        assert now is not None
        provisioned = pv(
            "pvc-now", "1Gi", klass="fast", reclaim="Delete",
            claim_ref=ref("now", namespace=NS, uid=now["metadata"]["uid"]),
            annotations={binding.PROVISIONED_BY_ANN: "hostpath.csi.raykube.io"},
        )  # fmt: skip
        await create_pv(client, provisioned)
        bound = await eventually(lambda: phase_of(get_pvc, client, "now", "Bound"), "now Bound")
        assert bound["spec"]["volumeName"] == "pvc-now"
        await eventually(lambda: phase_of(get_pv, client, "pvc-now", "Bound"), "pvc-now Bound")

        # Its claim goes: Released, and left for the provisioner to delete (not Failed).
        await client.delete("v1", "persistentvolumeclaims", "now", NS)
        await eventually(lambda: phase_of(get_pv, client, "pvc-now", "Released"), "pvc-now Released")
        await asyncio.sleep(1.5)  # three resyncs: nothing more happens to it
        assert (await get_pv(client, "pvc-now") or {})["status"]["phase"] == "Released"
        assert not running.events("VolumeFailedDelete")


def test_recycle_is_refused() -> None:
    asyncio.run(_recycle())


async def _recycle() -> None:
    async with local_apiserver() as client, Running(client, [PersistentVolumeController]) as running:
        await create_pv(client, pv("old", reclaim="Recycle", claim_ref=ref("gone", namespace=NS, uid="x")))
        failed = await eventually(lambda: phase_of(get_pv, client, "old", "Failed"), "old Failed")
        assert "Retain or Delete" in failed["status"]["message"]
        assert running.events("VolumeFailedRecycle")


def test_pvc_protection_waits_for_the_pod() -> None:
    asyncio.run(_pvc_protection())


async def _pvc_protection() -> None:
    async with local_apiserver() as client, Running(client, ALL):
        await create_pv(client, pv("v"))
        await create_pvc(client, pvc("data"))
        await eventually(lambda: phase_of(get_pvc, client, "data", "Bound"), "data Bound")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "user", "namespace": NS},
            "spec": {
                "nodeName": "n1",
                "containers": [{"name": "c", "image": "busybox"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            },
        }
        await client.create("v1", "pods", pod, NS)
        await client.delete("v1", "persistentvolumeclaims", "data", NS)
        await asyncio.sleep(1.0)  # two resyncs of the binder; pvc-protection has had every event
        held = await get_pvc(client, "data")
        assert held is not None and held["metadata"].get("deletionTimestamp")
        assert held["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
        assert (await get_pv(client, "v") or {})["status"]["phase"] == "Bound"

        await client.patch("v1", "pods", "user", {"status": {"phase": "Succeeded"}}, NS, subresource="status")
        assert await eventually(lambda: _gone(get_pvc, client, "data"), "data deleted after the pod finished")
        await eventually(lambda: phase_of(get_pv, client, "v", "Released"), "v Released")


class FakeDriver:
    """A CSI controller that can expand; ``node_required`` says whether the node must finish."""

    def __init__(self, node_required: bool) -> None:
        self.node_required = node_required
        self.calls: list[tuple[str, str, Any]] = []

    async def __call__(self, node: str, method: str, request: Any) -> Any:
        self.calls.append((node, method, request))
        if method == "ControllerGetCapabilities":
            rpc = csi_pb2.ControllerServiceCapability.RPC(
                type=csi_pb2.ControllerServiceCapability.RPC.EXPAND_VOLUME
            )
            return csi_pb2.ControllerGetCapabilitiesResponse(
                capabilities=[csi_pb2.ControllerServiceCapability(rpc=rpc)]
            )
        if method == "ControllerExpandVolume":
            size = request.capacity_range.required_bytes
            return csi_pb2.ControllerExpandVolumeResponse(
                capacity_bytes=size, node_expansion_required=self.node_required
            )
        raise AssertionError(f"unexpected call {method}")


def test_expansion() -> None:
    asyncio.run(_expansion(node_required=False))
    asyncio.run(_expansion(node_required=True))


async def _expansion(node_required: bool) -> None:
    driver = FakeDriver(node_required)
    topology = "topology.hostpath.csi.raykube.io/node"
    async with local_apiserver() as client:
        for name in ("n1", "n2"):
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {topology: name}},
            }
            await client.create("v1", "nodes", node)
        async with Running(client, [PersistentVolumeController, ExpandController], csi=driver) as running:
            # Only claims of a class that allows it may grow (the API server's PersistentVolumeClaimResize).
            grow = {**storage_class("grow"), "allowVolumeExpansion": True}
            await client.create("storage.k8s.io/v1", "storageclasses", grow)
            await create_pv(client, pv("v", "1Gi", klass="grow", affinity={topology: ["n2"]}))
            await create_pvc(client, pvc("data", "1Gi", klass="grow"))
            claim = await eventually(lambda: phase_of(get_pvc, client, "data", "Bound"), "data Bound")
            claim["spec"]["resources"]["requests"]["storage"] = "2Gi"
            await client.update("v1", "persistentvolumeclaims", claim, NS)

            async def grown() -> bool:
                volume = await get_pv(client, "v")
                return bool((volume or {}).get("spec", {}).get("capacity", {}).get("storage") == "2Gi")

            await eventually(grown, "the volume's capacity 2Gi")
            expanded = [c for c in driver.calls if c[1] == "ControllerExpandVolume"]
            assert expanded and expanded[0][0] == "n2"
            assert expanded[0][2].volume_id == "handle-v"
            assert expanded[0][2].capacity_range.required_bytes == 2 * 1024**3
            if node_required:
                pending = await eventually(
                    lambda: _with_condition(client, expand.FS_RESIZE_PENDING), "FileSystemResizePending"
                )
                assert pending["status"]["capacity"] == {"storage": "1Gi"}
                await asyncio.sleep(1.0)  # the binder's resyncs leave the capacity to the node
                assert (await get_pvc(client, "data") or {})["status"]["capacity"] == {"storage": "1Gi"}
                assert running.events("FileSystemResizeRequired")
            else:

                async def capacity() -> bool:
                    status = (await get_pvc(client, "data") or {}).get("status") or {}
                    return status.get("capacity") == {"storage": "2Gi"} and not status.get("conditions")

                await eventually(capacity, "claim capacity 2Gi")
                assert running.events("VolumeResizeSuccessful")
            assert running.events("Resizing") and running.events("ExternalExpanding")
            annotated = await get_pvc(client, "data")
            assert annotated is not None
            assert (
                annotated["metadata"]["annotations"][expand.STORAGE_RESIZER_ANN] == "hostpath.csi.raykube.io"
            )


async def _with_condition(client: Any, kind: str) -> dict[str, Any] | None:
    claim = await get_pvc(client, "data")
    return claim if claim is not None and expand.has_condition(claim, kind) else None
