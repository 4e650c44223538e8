"""The CSI stubs are fresh relative to proto/csi/csi.proto and carry the spec's services and numbers."""

from __future__ import annotations

from pathlib import Path

from nodeagent.csi import _generate, csi_pb2, rpc
from tests.stubs import assert_fresh


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    assert_fresh(_generate.STUBS, tmp_path)


def test_services_and_methods() -> None:
    assert csi_pb2.DESCRIPTOR.package == "csi.v1"
    services = csi_pb2.DESCRIPTOR.services_by_name
    assert {m.name for m in services["Identity"].methods} == {
        "GetPluginInfo",
        "GetPluginCapabilities",
        "Probe",
    }
    assert {
        "CreateVolume",
        "DeleteVolume",
        "ControllerPublishVolume",
        "ControllerUnpublishVolume",
        "ValidateVolumeCapabilities",
        "ListVolumes",
        "GetCapacity",
        "ControllerGetCapabilities",
        "ControllerExpandVolume",
    } <= {m.name for m in services["Controller"].methods}
    assert {m.name for m in services["Node"].methods} == {
        "NodeStageVolume",
        "NodeUnstageVolume",
        "NodePublishVolume",
        "NodeUnpublishVolume",
        "NodeGetInfo",
        "NodeGetCapabilities",
        "NodeGetVolumeStats",
        "NodeExpandVolume",
    }
    assert rpc.method("NodePublishVolume").path == "/csi.v1.Node/NodePublishVolume"


def test_field_numbers_are_the_specs() -> None:
    """A few numbers a real driver relies on (csi.proto of the spec, v1)."""

    def numbers(message: type) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    assert numbers(csi_pb2.NodePublishVolumeRequest) == {
        "volume_id": 1,
        "publish_context": 2,
        "staging_target_path": 3,
        "target_path": 4,
        "volume_capability": 5,
        "readonly": 6,
        "secrets": 7,
        "volume_context": 8,
    }
    assert numbers(csi_pb2.Volume) == {
        "capacity_bytes": 1,
        "volume_id": 2,
        "volume_context": 3,
        "content_source": 4,
        "accessible_topology": 5,
    }
    assert numbers(csi_pb2.CreateVolumeRequest)["accessibility_requirements"] == 7
    assert numbers(csi_pb2.VolumeCapability) == {"block": 1, "mount": 2, "access_mode": 3}
    assert numbers(csi_pb2.NodeGetInfoResponse) == {
        "node_id": 1,
        "max_volumes_per_node": 2,
        "accessible_topology": 3,
    }
