"""csi-provisioner: requests and PVs built from claims and classes (pure), and the controller over a
fake client and a fake CSI caller (which node is called, what is created, events, rescheduling,
deletion)."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from cluster.controllers.runtime import ControllerContext, ControllerOptions, SharedInformers
from cluster.controllers.volume import provisioning as prov
from cluster.controllers.volume.provisioner import IN_USE_RETRY_SECONDS, CSIProvisioner, ProvisioningError
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder

DRIVER = "hostpath.csi.raykube.io"
KEY = "topology.hostpath.csi.raykube.io/node"


def claim(name: str = "data", *, node: str = "", cls: str = "standard", modes: Any = None) -> dict[str, Any]:
    annotations = {prov.STORAGE_PROVISIONER_ANN: DRIVER}
    if node:
        annotations[prov.SELECTED_NODE_ANN] = node
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"u-{name}", "annotations": annotations},
        "spec": {
            "accessModes": modes or ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "storageClassName": cls,
        },
        "status": {"phase": "Pending"},
    }


def storage_class(
    name: str = "standard", *, mode: str = "WaitForFirstConsumer", **extra: Any
) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "provisioner": DRIVER,
        "volumeBindingMode": mode,
        "reclaimPolicy": extra.pop("reclaimPolicy", "Delete"),
        **extra,
    }


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {KEY: name, **labels}}}


def csinode(name: str, driver: str = DRIVER) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"drivers": [{"name": driver, "nodeID": name, "topologyKeys": [KEY]}]},
    }


# -- the pure part -----------------------------------------------------------------------------------


def test_request_from_claim_and_class() -> None:
    sc = storage_class(
        parameters={"csi.storage.k8s.io/fstype": "ext4", "tier": "fast"}, mountOptions=["noatime"]
    )
    request = prov.create_volume_request(claim(modes=["ReadWriteOnce", "ReadOnlyMany"]), sc, {KEY: "n1"})
    assert request.name == "pvc-u-data"
    assert request.capacity_range.required_bytes == 1 << 30
    assert dict(request.parameters) == {"tier": "fast"}
    modes = [c.access_mode.mode for c in request.volume_capabilities]
    assert modes == [
        csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER,
        csi_pb2.VolumeCapability.AccessMode.MULTI_NODE_READER_ONLY,
    ]
    assert request.volume_capabilities[0].mount.fs_type == "ext4"
    assert list(request.volume_capabilities[0].mount.mount_flags) == ["noatime"]
    assert [dict(t.segments) for t in request.accessibility_requirements.requisite] == [{KEY: "n1"}]


def test_block_claim_asks_for_a_block_volume() -> None:
    c = claim()
    c["spec"]["volumeMode"] = "Block"
    cap = prov.create_volume_request(c, storage_class(), {}).volume_capabilities[0]
    assert cap.WhichOneof("access_type") == "block"


def test_pv_from_response() -> None:
    result = prov.Provisioned("vol-1", 2 << 30, {"k": "v"}, [{KEY: "n1", "zone": "z"}])
    sc = storage_class(reclaimPolicy="Retain", parameters={"csi.storage.k8s.io/fstype": "xfs"})
    pv = prov.persistent_volume(claim(), sc, DRIVER, result)
    assert pv["metadata"] == {
        "name": "pvc-u-data",
        "annotations": {prov.PROVISIONED_BY_ANN: DRIVER},
        "finalizers": [prov.PROVISIONER_FINALIZER],
    }
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "2Gi"}
    assert spec["csi"] == {
        "driver": DRIVER,
        "volumeHandle": "vol-1",
        "fsType": "xfs",
        "volumeAttributes": {"k": "v"},
    }
    assert spec["claimRef"]["uid"] == "u-data" and spec["claimRef"]["namespace"] == "ns"
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["storageClassName"] == "standard" and spec["volumeMode"] == "Filesystem"
    assert spec["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": KEY, "operator": "In", "values": ["n1"]},
                {"key": "zone", "operator": "In", "values": ["z"]},
            ]
        }
    ]


@pytest.mark.parametrize(
    ("count", "text"),
    [(1 << 30, "1Gi"), (512 << 20, "512Mi"), (1000, "1000"), (0, "0"), (3 << 10, "3Ki")],
)
def test_format_bytes(count: int, text: str) -> None:
    assert prov.format_bytes(count) == text


def term(key: str, *values: str) -> dict[str, Any]:
    return {"matchLabelExpressions": [{"key": key, "values": list(values)}]}


@pytest.mark.parametrize(
    ("allowed", "labels", "expected"),
    [
        pytest.param([], {}, True, id="no-terms"),
        pytest.param([term("z", "a", "b")], {"z": "b"}, True, id="in"),
        pytest.param([term("z", "a")], {"z": "b"}, False, id="out"),
        pytest.param([term("z", "a"), term("r", "x")], {"r": "x"}, True, id="terms-ored"),
    ],
)  # fmt: skip
def test_allowed_topologies(allowed: list[Any], labels: dict[str, str], expected: bool) -> None:
    assert prov.allowed_by_class(storage_class(allowedTopologies=allowed), labels) is expected


def test_segment_needs_driver_and_labels() -> None:
    assert prov.node_segment(node("n1"), csinode("n1"), DRIVER) == {KEY: "n1"}
    with pytest.raises(prov.TopologyMismatch, match="not registered"):
        prov.node_segment(node("n1"), csinode("n1", "other"), DRIVER)
    with pytest.raises(prov.TopologyMismatch, match="no label"):
        prov.node_segment({"metadata": {"name": "n1"}}, csinode("n1"), DRIVER)


# -- the controller ----------------------------------------------------------------------------------


class FakeCSI:
    """A CSICaller: records (node, method, request) and answers like a node-local driver."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail: CSIError | None = None

    async def __call__(self, node_name: str, method: str, request: Any) -> Any:
        self.calls.append((node_name, method, request))
        if self.fail is not None:
            raise self.fail
        if method == "CreateVolume":
            volume = csi_pb2.Volume(
                volume_id=f"{node_name}/{request.name}",
                capacity_bytes=request.capacity_range.required_bytes,
                volume_context={"node": node_name},
            )
            volume.accessible_topology.add(segments={KEY: node_name})
            return csi_pb2.CreateVolumeResponse(volume=volume)
        if method == "DeleteVolume":
            return csi_pb2.DeleteVolumeResponse()
        raise CSIError(grpc.StatusCode.UNIMPLEMENTED, method)


class Rig:
    def __init__(self, csi: FakeCSI | None) -> None:
        self.client = FakeClient()
        self.recorder = FakeRecorder()
        ctx = ControllerContext(
            self.client,  # type: ignore[arg-type]
            SharedInformers(self.client),  # type: ignore[arg-type]
            FakeClock(),
            lambda _: self.recorder,
            ControllerOptions(csi=csi),
        )
        self.controller = CSIProvisioner(ctx)
        for name in ("n1", "n2"):
            self.controller.nodes.upsert(node(name))
            self.controller.csinodes.upsert(csinode(name))

    def add(self, lister: str, obj: dict[str, Any]) -> None:
        getattr(self.controller, lister).upsert(obj)
        gv, plural = {
            "claims": ("v1", "persistentvolumeclaims"),
            "volumes": ("v1", "persistentvolumes"),
            "classes": ("storage.k8s.io/v1", "storageclasses"),
        }[lister]
        self.client.put(gv, plural, obj)

    def reconcile(self, key: str) -> float | None:
        return asyncio.run(self.controller.reconcile(key))


def test_wait_for_first_consumer_provisions_on_the_selected_node() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("classes", storage_class())
    rig.add("claims", claim())
    assert rig.reconcile("ns/data") is None
    assert csi.calls == []  # no node chosen yet
    rig.add("claims", claim(node="n2"))
    assert rig.reconcile("ns/data") is None
    assert [(n, m) for n, m, _ in csi.calls] == [("n2", "CreateVolume")]
    pv = rig.client.stored("v1", "persistentvolumes", "pvc-u-data")
    assert pv is not None
    assert pv["spec"]["csi"]["volumeHandle"] == "n2/pvc-u-data"
    terms = pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": KEY, "operator": "In", "values": ["n2"]}]}]
    assert [e[1:3] for e in rig.recorder.events] == [
        ("Provisioning", 'External provisioner is provisioning volume for claim "ns/data"'),
        ("ProvisioningSucceeded", "Successfully provisioned volume pvc-u-data"),
    ]


def test_immediate_claim_gets_a_node_with_the_driver_inside_allowed_topologies() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.controller.nodes.upsert(node("n1", zone="a"))
    rig.controller.nodes.upsert(node("n2", zone="b"))
    allowed = [{"matchLabelExpressions": [{"key": "zone", "values": ["b"]}]}]
    rig.add("classes", storage_class("fast", mode="Immediate", allowedTopologies=allowed))
    rig.add("claims", claim(cls="fast"))
    rig.reconcile("ns/data")
    assert [(n, m) for n, m, _ in csi.calls] == [("n2", "CreateVolume")]


def test_immediate_claim_without_any_driver_node_waits() -> None:
    rig = Rig(FakeCSI())
    rig.controller.csinodes.replace([])
    rig.add("classes", storage_class(mode="Immediate"))
    rig.add("claims", claim())
    assert rig.reconcile("ns/data") == 15.0
    assert rig.recorder.reasons() == ["ProvisioningFailed"]


def test_selected_node_without_the_driver_is_rescheduled() -> None:
    rig = Rig(FakeCSI())
    rig.controller.csinodes.upsert(csinode("n1", "other.driver"))
    rig.add("classes", storage_class())
    rig.add("claims", claim(node="n1"))
    assert rig.reconcile("ns/data") is None
    assert rig.recorder.reasons() == ["ProvisioningFailed"]
    assert 'driver "hostpath.csi.raykube.io" is not registered on node "n1"' in rig.recorder.events[0][2]
    stored = rig.client.stored("v1", "persistentvolumeclaims", "data", "ns")
    assert stored is not None and prov.SELECTED_NODE_ANN not in stored["metadata"]["annotations"]


def test_resource_exhausted_reschedules_other_errors_retry() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("classes", storage_class())
    rig.add("claims", claim(node="n1"))
    csi.fail = CSIError(grpc.StatusCode.INTERNAL, "disk on fire")
    with pytest.raises(ProvisioningError):
        rig.reconcile("ns/data")
    assert rig.recorder.events[-1][1:3] == (
        "ProvisioningFailed",
        'failed to provision volume with StorageClass "standard": '
        "rpc error: code = Internal desc = disk on fire",
    )
    csi.fail = CSIError(grpc.StatusCode.RESOURCE_EXHAUSTED, "no space")
    assert rig.reconcile("ns/data") is None
    stored = rig.client.stored("v1", "persistentvolumeclaims", "data", "ns")
    assert stored is not None and prov.SELECTED_NODE_ANN not in stored["metadata"]["annotations"]


def test_no_csi_caller_says_so() -> None:
    rig = Rig(None)
    rig.add("classes", storage_class())
    rig.add("claims", claim(node="n1"))
    assert rig.reconcile("ns/data") == 15.0
    assert "no volume plugin is reachable" in rig.recorder.events[0][2]


@pytest.mark.parametrize(
    "skip",
    [
        pytest.param(lambda c, s: c["spec"].update(volumeName="x"), id="bound"),
        pytest.param(lambda c, s: s.update(provisioner="other"), id="class-of-another-provisioner"),
        pytest.param(lambda c, s: c["metadata"]["annotations"].clear(), id="not-handed-to-a-provisioner"),
        pytest.param(lambda c, s: c["status"].update(phase="Bound"), id="not-pending"),
    ],
)
def test_claims_left_alone(skip: Any) -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    c, s = claim(node="n1"), storage_class()
    skip(c, s)
    rig.add("classes", s)
    rig.add("claims", c)
    assert rig.reconcile("ns/data") is None
    assert csi.calls == []


def provisioned_pv(policy: str, phase: str, node_name: str = "n1") -> dict[str, Any]:
    result = prov.Provisioned(f"{node_name}/pvc-u-data", 1 << 30, {}, [{KEY: node_name}])
    pv = prov.persistent_volume(claim(), storage_class(reclaimPolicy=policy), DRIVER, result)
    pv["status"] = {"phase": phase}
    return pv


def test_released_delete_volume_is_deleted_on_its_node() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv("Delete", "Released", "n2"))
    assert rig.reconcile("pvc-u-data") is None
    assert [(n, m, r.volume_id) for n, m, r in csi.calls] == [("n2", "DeleteVolume", "n2/pvc-u-data")]
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is None


def test_a_volume_still_mounted_on_its_node_is_tried_again_soon_not_after_a_backoff() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv("Delete", "Released", "n2"))
    csi.fail = CSIError(grpc.StatusCode.FAILED_PRECONDITION, "volume is still mounted at /x")
    assert rig.reconcile("pvc-u-data") == IN_USE_RETRY_SECONDS
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is not None
    assert any(e[1] == "VolumeFailedDelete" and "still mounted" in e[2] for e in rig.recorder.events)
    csi.fail = None  # the node agent has unstaged it
    assert rig.reconcile("pvc-u-data") is None
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is None


def test_other_delete_failures_raise_for_the_runtimes_backoff() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv("Delete", "Released", "n2"))
    csi.fail = CSIError(grpc.StatusCode.INTERNAL, "disk on fire")
    with pytest.raises(ProvisioningError, match="disk on fire"):
        rig.reconcile("pvc-u-data")


@pytest.mark.parametrize(
    ("policy", "phase"), [("Retain", "Released"), ("Delete", "Bound"), ("Delete", "Available")]
)
def test_volumes_kept(policy: str, phase: str) -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv(policy, phase))
    rig.reconcile("pvc-u-data")
    assert csi.calls == []
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is not None


def test_deleted_retain_volume_only_loses_the_finalizer() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    pv = provisioned_pv("Retain", "Released")
    pv["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    rig.add("volumes", pv)
    rig.reconcile("pvc-u-data")
    assert csi.calls == []
    stored = rig.client.stored("v1", "persistentvolumes", "pvc-u-data")
    assert stored is not None and stored["metadata"]["finalizers"] == []


def test_delete_waits_for_the_node_holding_the_volume() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv("Delete", "Released", "gone"))
    assert rig.reconcile("pvc-u-data") == 15.0
    assert csi.calls == [] and rig.recorder.reasons() == ["VolumeFailedDelete"]


def test_delete_failure_retries_not_found_counts_as_deleted() -> None:
    csi = FakeCSI()
    rig = Rig(csi)
    rig.add("volumes", provisioned_pv("Delete", "Released"))
    csi.fail = CSIError(grpc.StatusCode.INTERNAL, "busy")
    with pytest.raises(ProvisioningError):
        rig.reconcile("pvc-u-data")
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is not None
    csi.fail = CSIError(grpc.StatusCode.NOT_FOUND, "gone already")
    rig.reconcile("pvc-u-data")
    assert rig.client.stored("v1", "persistentvolumes", "pvc-u-data") is None
