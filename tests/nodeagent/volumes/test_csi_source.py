"""The pure parts of the node's CSI side: what a claim, a PV and a CSIDriver turn into, what the
CSINode and Node get from a driver, and the kubelet's names."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from nodeagent.csi import csi_pb2
from nodeagent.volumes import csi_layout as layout
from nodeagent.volumes.csi_node_info import (
    NODE_ID_ANNOTATION,
    DriverNodeInfo,
    TopologyCollision,
    csinode_driver,
    merged_drivers,
    node_patch,
)
from nodeagent.volumes.csi_source import (
    DriverPolicy,
    access_mode,
    attachment_state,
    claim_source,
    inline_source,
    volume_context,
)
from nodeagent.volumes.errors import FAILED_ATTACH, VolumeError

Mode = csi_pb2.VolumeCapability.AccessMode
INFO = DriverNodeInfo("d.example", "n1", {"zone": "z1", "node": "n1"}, max_volumes=8)


def pvc(phase: str = "Bound", volume: str = "pv-1", uid: str = "u1") -> dict[str, Any]:
    return {
        "metadata": {"name": "c", "namespace": "ns", "uid": uid},
        "spec": {"volumeName": volume},
        "status": {"phase": phase},
    }


def pv(**csi: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "pv-1"},
        "spec": {
            "accessModes": ["ReadOnlyMany"], "mountOptions": ["noatime"], "claimRef": {"uid": "u1"},
            "csi": {"driver": "d.example", "volumeHandle": "h1", "fsType": "ext4", **csi},
        },
    }  # fmt: skip


def test_names_are_kubernetes_hashes() -> None:
    digest = hashlib.sha256(b"h1d.examplen1").hexdigest()
    assert layout.attachment_name("h1", "d.example", "n1") == f"csi-{digest}"
    assert layout.ephemeral_handle("uid", "vol") == "csi-" + hashlib.sha256(b"uidvol").hexdigest()
    assert layout.staging_path("/d", "drv", "h1") == (
        f"/d/plugins/kubernetes.io/csi/drv/{hashlib.sha256(b'h1').hexdigest()}/globalmount"
    )
    assert layout.target_path("/d", "u", "pv-1") == "/d/pods/u/volumes/kubernetes.io~csi/pv-1/mount"


@pytest.mark.parametrize(
    ("claim", "volume", "message"),
    [
        pytest.param(
            pvc(phase="Pending", volume=""), pv(), 'persistentvolumeclaim "c" is not bound yet', id="pending"
        ),
        pytest.param(pvc(volume=""), pv(), "is not bound yet", id="bound-without-volume"),
        pytest.param(pvc(uid="other"), pv(), "bound to another claim", id="claimref-uid"),
        pytest.param(pvc(), {"metadata": {}, "spec": {"nfs": {}}}, "has no csi source", id="not-csi"),
    ],
)
def test_claims_that_cannot_be_mounted(claim: dict[str, Any], volume: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        claim_source({"claimName": "c"}, claim, volume, False)


def test_claim_source_reads_the_pv() -> None:
    source = claim_source({"claimName": "c", "readOnly": True}, pvc(), pv(readOnly=False), False)
    assert (source.name, source.driver, source.handle, source.mode) == (
        "pv-1",
        "d.example",
        "h1",
        "Persistent",
    )
    assert (source.fs_type, source.mount_flags, source.access_modes) == (
        "ext4",
        ("noatime",),
        ("ReadOnlyMany",),
    )
    assert source.readonly  # the pod's claim says so
    assert claim_source({"claimName": "c"}, pvc(), None, False).name == "pv-1"  # the claim alone


@pytest.mark.parametrize(
    ("modes", "snmw", "want"),
    [
        pytest.param([], False, Mode.SINGLE_NODE_WRITER, id="default-rwo"),
        pytest.param(["ReadWriteOnce"], True, Mode.SINGLE_NODE_MULTI_WRITER, id="rwo-snmw"),
        pytest.param(["ReadOnlyMany", "ReadWriteOnce"], False, Mode.MULTI_NODE_READER_ONLY, id="first-wins"),
        pytest.param(["ReadWriteMany"], False, Mode.MULTI_NODE_MULTI_WRITER, id="rwx"),
        pytest.param(["ReadWriteOncePod"], False, Mode.SINGLE_NODE_WRITER, id="rwop"),
        pytest.param(["ReadWriteOncePod"], True, Mode.SINGLE_NODE_SINGLE_WRITER, id="rwop-snmw"),
    ],
)
def test_access_modes(modes: list[str], snmw: bool, want: int) -> None:
    assert access_mode(modes, snmw) == want


POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {"serviceAccountName": "sa"}}


@pytest.mark.parametrize(
    ("policy", "inline", "want"),
    [
        pytest.param(DriverPolicy(), False, {"a": "1"}, id="persistent-no-pod-info"),
        pytest.param(
            DriverPolicy(pod_info_on_mount=True), False,
            {"a": "1", "csi.storage.k8s.io/pod.name": "p", "csi.storage.k8s.io/pod.namespace": "ns",
             "csi.storage.k8s.io/pod.uid": "u", "csi.storage.k8s.io/serviceAccount.name": "sa",
             "csi.storage.k8s.io/ephemeral": "false"},
            id="persistent-pod-info",
        ),
        pytest.param(DriverPolicy(), True, {"a": "1", "csi.storage.k8s.io/ephemeral": "true"}, id="inline"),
    ],
)  # fmt: skip
def test_volume_context(policy: DriverPolicy, inline: bool, want: dict[str, str]) -> None:
    if inline:
        source = inline_source(
            "u", {"name": "v", "csi": {"driver": "d", "volumeAttributes": {"a": "1"}}}, False
        )
        assert source.handle == layout.ephemeral_handle("u", "v")
    else:
        source = claim_source({"claimName": "c"}, pvc(), pv(volumeAttributes={"a": "1"}), False)
    assert volume_context(source, policy, POD) == want


def test_driver_policy_defaults_as_kubernetes() -> None:
    assert DriverPolicy.of(None) == DriverPolicy(
        attach_required=True, pod_info_on_mount=False, modes=("Persistent",)
    )
    spec = {
        "attachRequired": False,
        "podInfoOnMount": True,
        "volumeLifecycleModes": ["Persistent", "Ephemeral"],
    }
    assert DriverPolicy.of({"spec": spec}) == DriverPolicy(False, True, ("Persistent", "Ephemeral"))


def test_attachment_state() -> None:
    source = claim_source({"claimName": "c"}, pvc(), pv(), False)
    assert attachment_state(None, source) is None
    assert attachment_state({"metadata": {"name": "a"}, "status": {"attached": False}}, source) is None
    attached = {"metadata": {"name": "a"}, "status": {"attached": True, "attachmentMetadata": {"k": "v"}}}
    assert attachment_state(attached, source) == {"k": "v"}
    failed = {"metadata": {"name": "a"}, "status": {"attachError": {"message": "no such disk"}}}
    with pytest.raises(VolumeError, match="no such disk") as err:
        attachment_state(failed, source)
    assert err.value.reason == FAILED_ATTACH
    with pytest.raises(VolumeError, match="being deleted"):
        attachment_state(
            {"metadata": {"name": "a", "deletionTimestamp": "t"}, "status": {"attached": True}}, source
        )


def test_csinode_entry_and_merge() -> None:
    entry = csinode_driver(INFO)
    assert entry == {
        "name": "d.example",
        "nodeID": "n1",
        "topologyKeys": ["node", "zone"],
        "allocatable": {"count": 8},
    }
    assert "allocatable" not in csinode_driver(DriverNodeInfo("d", "n", {}))
    other = {"name": "other.example", "nodeID": "x"}
    assert merged_drivers([other], entry) == [other, entry]
    assert merged_drivers([other, dict(entry, topologyKeys=["zone", "node"])], entry) is None  # the same
    assert merged_drivers([dict(entry, nodeID="old"), other], entry) == [other, entry]


@pytest.mark.parametrize(
    ("meta", "want"),
    [
        pytest.param(
            {"name": "n1", "labels": {"keep": "1"}},
            {"metadata": {"labels": {"zone": "z1", "node": "n1"},
                          "annotations": {NODE_ID_ANNOTATION: '{"d.example":"n1"}'}}},
            id="fresh",
        ),
        pytest.param(
            {"name": "n1", "labels": {"zone": "z1", "node": "n1"},
             "annotations": {NODE_ID_ANNOTATION: '{"a.example":"x","d.example":"n1"}'}},
            None, id="already-there",
        ),
        pytest.param(
            {"name": "n1", "labels": {"zone": "z1"},
             "annotations": {NODE_ID_ANNOTATION: '{"a.example":"x"}'}},
            {"metadata": {"labels": {"node": "n1"},
                          "annotations": {NODE_ID_ANNOTATION: '{"a.example":"x","d.example":"n1"}'}}},
            id="keeps-other-drivers",
        ),
    ],
)  # fmt: skip
def test_node_patch(meta: dict[str, Any], want: dict[str, Any] | None) -> None:
    assert node_patch({"metadata": meta}, INFO) == want


def test_node_patch_refuses_a_topology_collision() -> None:
    with pytest.raises(TopologyCollision, match="zone=z1 but node n1 has the label zone=z9"):
        node_patch({"metadata": {"name": "n1", "labels": {"zone": "z9"}}}, INFO)
