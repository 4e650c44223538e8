"""attachdetach: the desired attachments of a node (pure), and the whole dynamic-provisioning and
attach flow against the real API server in process with a fake CSI driver that needs attaching: the PV
controller hands the claim to csi-provisioner, which creates the volume on the node; a pod there gets
a VolumeAttachment, published and marked attached; the pod going unpublishes and removes it; the claim
going deletes the volume."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import grpc
import pytest

from cluster.client.errors import ApiError
from cluster.controllers.volume import attachdetach as ad
from cluster.controllers.volume.attachdetach import AttachDetachController
from cluster.controllers.volume.protection import PVCProtectionController, PVProtectionController
from cluster.controllers.volume.provisioner import CSIProvisioner
from cluster.controllers.volume.pv_controller import PersistentVolumeController
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.cluster.controllers.test_nodeipam import eventually
from tests.cluster.controllers.volume.test_volume_controllers import Running

DRIVER = "attach.example.io"
KEY = "topology.attach.example.io/node"
STORAGE = "storage.k8s.io/v1"


def pv_obj(name: str, driver: str = DRIVER) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"csi": {"driver": driver, "volumeHandle": f"h-{name}"}}}


def claim_obj(name: str, volume: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"volumeName": volume}}


def pod_obj(name: str, node: str, *claims: str, phase: str = "Running") -> dict[str, Any]:
    volumes = [{"name": c, "persistentVolumeClaim": {"claimName": c}} for c in claims]
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {"nodeName": node, "volumes": volumes},
        "status": {"phase": phase},
    }


@pytest.mark.parametrize(
    ("pods", "drivers", "expected"),
    [
        pytest.param([pod_obj("p", "n1", "a")], {}, ["a"], id="no-csidriver-means-attach"),
        pytest.param([pod_obj("p", "n1", "a")], {DRIVER: {"spec": {"attachRequired": False}}}, [],
                     id="not-required"),
        pytest.param([pod_obj("p", "n2", "a")], {}, [], id="other-node"),
        pytest.param([pod_obj("p", "n1", "a", phase="Succeeded")], {}, [], id="finished-pod"),
        pytest.param([pod_obj("p", "n1", "a", "b"), pod_obj("q", "n1", "a")], {}, ["a", "b"],
                     id="shared-once"),
        pytest.param([pod_obj("p", "n1", "unbound")], {}, [], id="unbound-claim"),
    ],
)  # fmt: skip
def test_desired_attachments(pods: list[Any], drivers: dict[str, Any], expected: list[str]) -> None:
    claims = {("ns", c): claim_obj(c, f"pv-{c}") for c in ("a", "b")}
    claims[("ns", "unbound")] = {"metadata": {"name": "unbound"}, "spec": {}}
    volumes = {f"pv-{c}": pv_obj(f"pv-{c}") for c in ("a", "b")}
    got = ad.desired_attachments("n1", pods, claims, volumes, drivers)
    want = {ad.attachment_name(f"h-pv-{c}", DRIVER, "n1"): f"pv-{c}" for c in expected}
    assert {name: va["spec"]["source"]["persistentVolumeName"] for name, va in got.items()} == want
    for va in got.values():
        assert va["spec"]["attacher"] == DRIVER and va["spec"]["nodeName"] == "n1"
        assert va["metadata"]["finalizers"] == ["external-attacher/attach-example-io"]


def test_names_as_kubernetes() -> None:
    # sha256("h" + "d" + "n"), as kube's GetVolumeAttachmentName (volume handle, driver, node).
    assert ad.attachment_name("h", "d", "n") == "csi-" + hashlib.sha256(b"hdn").hexdigest()
    attached = {
        "spec": {"nodeName": "n1", "source": {"persistentVolumeName": "pv-a"}},
        "status": {"attached": True},
    }
    pending = {"spec": {"nodeName": "n1", "source": {"persistentVolumeName": "pv-b"}}, "status": {}}
    volumes = {"pv-a": pv_obj("pv-a"), "pv-b": pv_obj("pv-b")}
    assert ad.volumes_attached([attached, pending], volumes, "n1") == [
        {"name": f"kubernetes.io/csi/{DRIVER}^h-pv-a", "devicePath": ""}
    ]


class AttachingCSI:
    """A node-local driver that needs ControllerPublishVolume."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.volumes: set[str] = set()

    async def __call__(self, node_name: str, method: str, request: Any) -> Any:
        self.calls.append((node_name, method, request))
        if method == "CreateVolume":
            self.volumes.add(request.name)
            volume = csi_pb2.Volume(
                volume_id=request.name, capacity_bytes=request.capacity_range.required_bytes
            )
            volume.accessible_topology.add(segments={KEY: node_name})
            return csi_pb2.CreateVolumeResponse(volume=volume)
        if method == "DeleteVolume":
            self.volumes.discard(request.volume_id)
            return csi_pb2.DeleteVolumeResponse()
        if method == "ControllerPublishVolume":
            return csi_pb2.ControllerPublishVolumeResponse(
                publish_context={"device": f"/dev/{request.volume_id}"}
            )
        if method == "ControllerUnpublishVolume":
            return csi_pb2.ControllerUnpublishVolumeResponse()
        raise CSIError(grpc.StatusCode.UNIMPLEMENTED, method)

    def methods(self) -> list[str]:
        return [m for _, m, _ in self.calls]


def test_provision_attach_detach_delete() -> None:
    asyncio.run(_flow())


async def _get(client: Any, gv: str, plural: str, name: str, namespace: str | None = None) -> Any:
    try:
        return await client.get(gv, plural, name, namespace)
    except ApiError as err:
        if err.not_found:
            return None
        raise


async def _flow() -> None:
    csi = AttachingCSI()
    async with local_apiserver() as client:
        await client.create("v1", "namespaces", {"metadata": {"name": "ns"}})
        await client.create("v1", "nodes", {"metadata": {"name": "n1", "labels": {KEY: "n1"}}})
        await client.create(
            STORAGE,
            "csinodes",
            {
                "metadata": {"name": "n1"},
                "spec": {"drivers": [{"name": DRIVER, "nodeID": "id-n1", "topologyKeys": [KEY]}]},
            },
        )
        await client.create(
            STORAGE,
            "storageclasses",
            {
                "metadata": {"name": "fast"},
                "provisioner": DRIVER,
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            },
        )
        controllers = [
            PersistentVolumeController,
            PVCProtectionController,
            PVProtectionController,
            CSIProvisioner,
            AttachDetachController,
        ]
        async with Running(client, controllers, csi=csi) as running:
            claim = {
                "metadata": {"name": "data", "namespace": "ns"},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}},
                    "storageClassName": "fast",
                },
            }
            created = await client.create("v1", "persistentvolumeclaims", claim, "ns")
            pv_name = f"pvc-{created['metadata']['uid']}"

            async def bound() -> Any:
                got = await _get(client, "v1", "persistentvolumeclaims", "data", "ns")
                return got if (got or {}).get("status", {}).get("phase") == "Bound" else None

            assert (await eventually(bound, "claim Bound"))["spec"]["volumeName"] == pv_name
            assert [e[1] for e in running.recorder.events if e[1].startswith("Provisioning")] == [
                "Provisioning",
                "ProvisioningSucceeded",
            ]
            pv = await _get(client, "v1", "persistentvolumes", pv_name)
            assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
                {"key": KEY, "operator": "In", "values": ["n1"]}
            ]

            pod = pod_obj("p", "n1", "data")
            pod["spec"]["containers"] = [{"name": "c", "image": "busybox"}]
            del pod["status"]
            await client.create("v1", "pods", pod, "ns")
            va_name = ad.attachment_name(pv_name, DRIVER, "n1")

            async def attached() -> Any:
                va = await _get(client, STORAGE, "volumeattachments", va_name)
                return va if (va or {}).get("status", {}).get("attached") else None

            va = await eventually(attached, "VolumeAttachment attached")
            assert va["status"]["attachmentMetadata"] == {"device": f"/dev/{pv_name}"}
            assert va["spec"] == {
                "attacher": DRIVER,
                "nodeName": "n1",
                "source": {"persistentVolumeName": pv_name},
            }
            [publish] = [r for _, m, r in csi.calls if m == "ControllerPublishVolume"]
            assert publish.node_id == "id-n1" and publish.volume_id == pv_name

            async def node_lists_it() -> Any:
                node = await client.get("v1", "nodes", "n1")
                return node.get("status", {}).get("volumesAttached")

            assert await eventually(node_lists_it, "Node.status.volumesAttached") == [
                {"name": f"kubernetes.io/csi/{DRIVER}^{pv_name}", "devicePath": ""}
            ]

            await client.delete("v1", "pods", "p", "ns", grace_period_seconds=0)

            async def detached() -> bool:
                return await _get(client, STORAGE, "volumeattachments", va_name) is None

            await eventually(detached, "VolumeAttachment gone")
            assert csi.methods().count("ControllerUnpublishVolume") == 1

            await client.delete("v1", "persistentvolumeclaims", "data", "ns")

            async def volume_gone() -> bool:
                return await _get(client, "v1", "persistentvolumes", pv_name) is None and not csi.volumes

            await eventually(volume_gone, "PV and volume deleted")
            assert csi.methods()[-1] == "DeleteVolume"
