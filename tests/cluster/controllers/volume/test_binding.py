"""The PV controller's pure core: which volume a claim gets, and what each claim or volume sync does."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.volume import binding
from cluster.controllers.volume.binding import (
    Bind,
    ClaimEvent,
    ClaimPhase,
    EnqueueClaim,
    Event,
    SetProvisioner,
    Unbind,
    VolumePhase,
)
from tests.cluster.controllers.volume.objects import pv, pvc, ref, storage_class

RWO, ROX, RWX = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"


def _name(volume: Any) -> str | None:
    return None if volume is None else str(volume["metadata"]["name"])


@pytest.mark.parametrize(
    ("claim", "volumes", "delay", "expected"),
    [
        pytest.param(pvc("c", "1Gi"), [pv("big", "5Gi"), pv("small", "2Gi"), pv("tiny", "500Mi")], False,
                     "small", id="smallest-that-fits"),
        pytest.param(pvc("c", "1Gi"), [pv("exact", "1Gi"), pv("more", "1024Mi")], False, "exact",
                     id="equal-size-first-by-name"),
        pytest.param(pvc("c", "3Gi"), [pv("a", "1Gi"), pv("b", "2Gi")], False, None, id="none-big-enough"),
        pytest.param(pvc("c", modes=(RWX,)), [pv("rwo"), pv("rwx", modes=(RWX,))], False, "rwx",
                     id="access-modes-must-be-offered"),
        pytest.param(pvc("c", modes=(RWO,)), [pv("two", "1Gi", modes=(RWO, ROX)), pv("one", "5Gi",
                     modes=(RWO,))],
                     False, "one", id="fewest-access-modes-group-first"),
        pytest.param(pvc("c", klass="fast"), [pv("none"), pv("slow", klass="slow"), pv("fast", "9Gi",
                     klass="fast")],
                     False, "fast", id="class-must-equal"),
        pytest.param(pvc("c", klass=""), [pv("fast", klass="fast")], False, None,
                     id="empty-class-wants-empty"),
        pytest.param(pvc("c", mode="Block"), [pv("fs"), pv("block", "9Gi", mode="Block")], False, "block",
                     id="volume-mode"),
        pytest.param(pvc("c", selector={"matchLabels": {"tier": "db"}}),
                     [pv("plain"), pv("db", "9Gi", labels={"tier": "db"})], False, "db", id="selector"),
        pytest.param(pvc("c"), [pv("bound", claim_ref=ref("other", uid="u")), pv("free", "9Gi")], False,
                     "free",
                     id="volume-of-another-claim-skipped"),
        pytest.param(pvc("c"), [pv("small"), pv("mine", "9Gi", claim_ref=ref("c"))], False, "mine",
                     id="pre-bound-by-claimref-wins"),
        pytest.param(pvc("c", klass="fast"), [pv("mine", claim_ref=ref("c"))], False, "mine",
                     id="pre-bound-ignores-class"),
        pytest.param(pvc("c", "2Gi"), [pv("mine", "1Gi", claim_ref=ref("c"))], False, None,
                     id="pre-bound-too-small"),
        pytest.param(pvc("c"), [pv("gone", deleting=True), pv("pending", phase="Pending")], False, None,
                     id="deleting-or-not-available-skipped"),
        pytest.param(pvc("c"), [pv("free")], True, None, id="wait-for-first-consumer-no-free-match"),
        pytest.param(pvc("c"), [pv("free"), pv("mine", claim_ref=ref("c"))], True, "mine",
                     id="wait-for-first-consumer-pre-bound-matches"),
        pytest.param(pvc("c"), [pv("far", affinity={"topology.hostpath.csi.raykube.io/node": ["n9"]})],
                     False, "far",
                     id="node-affinity-not-considered-for-immediate"),
    ],
)  # fmt: skip
def test_find_best_match(claim: Any, volumes: list[Any], delay: bool, expected: str | None) -> None:
    assert _name(binding.find_best_match(claim, volumes, delay_binding=delay)) == expected


CLASSES = {
    "ext": storage_class("ext", "hostpath.csi.raykube.io"),
    "wffc": storage_class("wffc", "hostpath.csi.raykube.io", "WaitForFirstConsumer"),
    "local": storage_class("local", "kubernetes.io/no-provisioner", "WaitForFirstConsumer"),
}
WAIT = Event("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
NO_CLASS = Event(
    "Normal", "FailedBinding", "no persistent volumes available for this claim and no storage class is set"
)
EXT = Event(
    "Normal", "ExternalProvisioning", binding.external_provisioning_message("hostpath.csi.raykube.io")
)
SELECTED = {binding.SELECTED_NODE_ANN: "n1"}
PROVISIONER_ANNS = {binding.STORAGE_PROVISIONER_ANN: "hostpath.csi.raykube.io",
                    binding.BETA_STORAGE_PROVISIONER_ANN: "hostpath.csi.raykube.io"}  # fmt: skip
BOUND_ANNS = {binding.BIND_COMPLETED_ANN: "yes"}


@pytest.mark.parametrize(
    ("claim", "volumes", "expected"),
    [
        pytest.param(pvc("c"), [pv("v")], [Bind("v")], id="match-binds"),
        pytest.param(pvc("c"), [], [ClaimEvent(NO_CLASS), ClaimPhase("Pending")], id="no-match-no-class"),
        pytest.param(pvc("c", klass="ext"), [],
                     [SetProvisioner("hostpath.csi.raykube.io"), ClaimEvent(EXT), ClaimPhase("Pending")],
                     id="external-provisioning"),
        pytest.param(pvc("c", klass="ext", annotations=PROVISIONER_ANNS), [],
                     [ClaimEvent(EXT), ClaimPhase("Pending")], id="already-annotated"),
        pytest.param(pvc("c", klass="wffc"), [pv("v", klass="wffc")], [ClaimEvent(WAIT),
                     ClaimPhase("Pending")],
                     id="wait-for-first-consumer"),
        pytest.param(pvc("c", klass="wffc", annotations=SELECTED), [],
                     [SetProvisioner("hostpath.csi.raykube.io"), ClaimEvent(EXT), ClaimPhase("Pending")],
                     id="selected-node-provisions"),
        pytest.param(pvc("c", klass="wffc", annotations=SELECTED), [pv("v", klass="wffc",
                     claim_ref=ref("c"))],
                     [Bind("v")], id="selected-node-scheduler-pre-bound"),
        pytest.param(pvc("c", klass="missing"), [],
                     [ClaimEvent(Event("Warning", "ProvisioningFailed",
                                       'storageclass.storage.k8s.io "missing" not found')),
                                           ClaimPhase("Pending")],
                     id="class-not-found"),
        pytest.param(pvc("c", volume_name="v"), [], [ClaimPhase("Pending")], id="named-volume-missing"),
        pytest.param(pvc("c", volume_name="v"), [pv("v", "9Gi", klass="other")], [
            ClaimPhase("Pending", None, Event("Warning", "VolumeMismatch",
                "storageClassName does not match"))],
            id="named-volume-mismatch"),
        pytest.param(pvc("c", "2Gi", volume_name="v"), [pv("v", "1Gi")],
                     [ClaimPhase("Pending", None, Event("Warning", "VolumeMismatch",
                         "requested PV is too small"))],
                     id="named-volume-too-small"),
        pytest.param(pvc("c", volume_name="v"), [pv("v")], [Bind("v")], id="named-volume-binds"),
        pytest.param(pvc("c", volume_name="v"), [pv("v", claim_ref=ref("other", uid="x"))],
                     [ClaimPhase("Pending", None, Event("Warning", "FailedBinding",
                                                        'volume "v" already bound to a different claim.'))],
                     id="named-volume-taken"),
        pytest.param(pvc("c", volume_name="v", annotations=BOUND_ANNS),
                     [pv("v", claim_ref=ref("c", uid="uid-c"))], [Bind("v")], id="bound-and-consistent"),
        pytest.param(pvc("c", volume_name="v", annotations=BOUND_ANNS), [pv("v")], [Bind("v")],
                     id="bound-volume-lost-claimref-rebinds"),
        pytest.param(pvc("c", volume_name="v", annotations=BOUND_ANNS), [],
                     [ClaimPhase("Lost", None, Event("Warning", "ClaimLost",
                      "Bound claim has lost its PersistentVolume. Data on the volume is lost!"))],
                     id="bound-volume-gone-lost"),
        pytest.param(pvc("c", volume_name="v", annotations=BOUND_ANNS),
                     [pv("v", claim_ref=ref("c", uid="someone-else"))],
                     [ClaimPhase("Lost", None, Event("Warning", "ClaimMisbound",
                      "Two claims are bound to the same volume, this one is bound incorrectly"))],
                     id="misbound"),
    ],
)  # fmt: skip
def test_sync_claim(claim: Any, volumes: list[Any], expected: list[Any]) -> None:
    by_name = {v["metadata"]["name"]: v for v in volumes}
    assert binding.sync_claim(claim, volumes, by_name.get, CLASSES.get) == expected


PROVISIONED = {binding.PROVISIONED_BY_ANN: "hostpath.csi.raykube.io"}
BY_CONTROLLER = {binding.BOUND_BY_CONTROLLER_ANN: "yes"}
MINE = ref("c", uid="uid-c")


@pytest.mark.parametrize(
    ("volume", "claim", "expected"),
    [
        pytest.param(pv("v", phase=""), None, [VolumePhase("Available")], id="unused-available"),
        pytest.param(pv("v", claim_ref=ref("c")), None, [VolumePhase("Available")], id="pre-bound-available"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound"), pvc("c", volume_name="v"),
                     [VolumePhase("Bound")],
                     id="bound"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound"), pvc("c"), [EnqueueClaim("ns/c")],
                     id="half-bound-claim-finishes"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound"), None, [VolumePhase("Released")],
                     id="claim-deleted-retain-released"),
        pytest.param(pv("v", claim_ref=ref("c", uid="old"), phase="Bound"), pvc("c"),
                     [VolumePhase("Released")],
                     id="claim-recreated-same-name-released"),
        pytest.param(pv("v", claim_ref=MINE, phase="Released"), None, [], id="released-retain-stays"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound", reclaim="Delete", annotations=PROVISIONED), None,
                     [VolumePhase("Released")], id="delete-provisioned-left-to-provisioner"),
        pytest.param(pv("v", claim_ref=MINE, phase="Released", reclaim="Delete"), None,
                     binding.reclaim(pv("v", reclaim="Delete")), id="delete-static-fails"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound", reclaim="Delete", annotations=PROVISIONED),
                     pvc("c", volume_name="other"), [VolumePhase("Released")],
                     id="provisioned-for-claim-bound-elsewhere-released"),
        pytest.param(pv("v", claim_ref=MINE, phase="Bound", annotations=BY_CONTROLLER),
                     pvc("c", volume_name="other"), [Unbind()], id="controller-binding-elsewhere-unbinds"),
    ],
)  # fmt: skip
def test_sync_volume(volume: Any, claim: Any, expected: list[Any]) -> None:
    assert binding.sync_volume(volume, claim) == expected


def test_reclaim_policies() -> None:
    assert binding.reclaim(pv("v", reclaim="Retain")) == []
    assert binding.reclaim(pv("v", reclaim="Delete", annotations=PROVISIONED)) == []
    [delete] = binding.reclaim(pv("v", reclaim="Delete"))
    assert isinstance(delete, VolumePhase) and delete.phase == "Failed"
    assert delete.event is not None and delete.event.reason == "VolumeFailedDelete"
    [recycle] = binding.reclaim(pv("v", reclaim="Recycle"))
    assert isinstance(recycle, VolumePhase) and recycle.phase == "Failed"
    assert recycle.event is not None and recycle.event.reason == "VolumeFailedRecycle"
    assert "Retain or Delete" in recycle.message


def test_bind_edits() -> None:
    claim = pvc("c", "1Gi")
    volume = pv("v", "2Gi", modes=(RWO, ROX))
    bound_volume = binding.volume_bound_to(volume, claim)
    assert bound_volume is not None
    assert bound_volume["spec"]["claimRef"] == {
        "kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": "ns", "name": "c",
        "uid": "uid-c", "resourceVersion": "7",
    }  # fmt: skip
    assert bound_volume["metadata"]["annotations"] == {binding.BOUND_BY_CONTROLLER_ANN: "yes"}
    assert binding.volume_bound_to(bound_volume, claim) is None
    assert "claimRef" not in volume["spec"]  # the cached object is not touched

    pre_bound = binding.volume_bound_to(pv("v", claim_ref=ref("c")), claim)
    assert pre_bound is not None and pre_bound["spec"]["claimRef"]["uid"] == "uid-c"
    assert binding.BOUND_BY_CONTROLLER_ANN not in pre_bound["metadata"].get("annotations", {})

    bound_claim = binding.claim_bound_to(claim, volume)
    assert bound_claim is not None and bound_claim["spec"]["volumeName"] == "v"
    assert bound_claim["metadata"]["annotations"] == {
        binding.BIND_COMPLETED_ANN: "yes",
        binding.BOUND_BY_CONTROLLER_ANN: "yes",
    }
    assert binding.claim_bound_to(bound_claim, volume) is None
    user_named = binding.claim_bound_to(pvc("c", volume_name="v"), volume)
    assert user_named is not None
    assert user_named["metadata"]["annotations"] == {binding.BIND_COMPLETED_ANN: "yes"}

    status = binding.claim_status(claim, "Bound", volume)
    assert status is not None
    assert status["status"] == {"phase": "Bound", "accessModes": [RWO, ROX], "capacity": {"storage": "2Gi"}}
    assert binding.claim_status(status, "Bound", volume) is None
    lost = binding.claim_status(status, "Lost", None)
    assert lost is not None and lost["status"] == {"phase": "Lost"}


def test_claim_capacity_kept_while_resizing() -> None:
    resizing = {"phase": "Bound", "accessModes": [RWO], "capacity": {"storage": "1Gi"},
                "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}  # fmt: skip
    claim = pvc("c", "2Gi", volume_name="v", status=resizing)
    assert binding.claim_status(claim, "Bound", pv("v", "2Gi")) is None
    done = pvc("c", "2Gi", volume_name="v", status={**resizing, "conditions": []})
    grown = binding.claim_status(done, "Bound", pv("v", "2Gi"))
    assert grown is not None and grown["status"]["capacity"] == {"storage": "2Gi"}
