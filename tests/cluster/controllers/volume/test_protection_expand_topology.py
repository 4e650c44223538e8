"""The pure parts of pvc-protection, pv-protection, the expander and node_for_pv."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.controllers.volume import expand, protection
from cluster.controllers.volume.topology import node_for_pv
from tests.cluster.controllers.volume.objects import pv, pvc

TOPOLOGY = "topology.hostpath.csi.raykube.io/node"


def pod(
    name: str,
    *,
    claim: str = "",
    ephemeral: str = "",
    node: str = "n1",
    phase: str = "Running",
    uid: str = "",
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = []
    if claim:
        volumes.append({"name": "data", "persistentVolumeClaim": {"claimName": claim}})
    if ephemeral:
        volumes.append({"name": ephemeral, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}})
    spec: dict[str, Any] = {"volumes": volumes}
    if node:
        spec["nodeName"] = node
    meta = {"name": name, "namespace": "ns", "uid": uid or f"uid-{name}"}
    return {"metadata": meta, "spec": spec, "status": {"phase": phase}}


def owned(claim: dict[str, Any], uid: str) -> dict[str, Any]:
    claim["metadata"]["ownerReferences"] = [{"kind": "Pod", "uid": uid, "controller": True, "name": "p"}]
    return claim


@pytest.mark.parametrize(
    ("pod_obj", "claim", "used"),
    [
        pytest.param(pod("p", claim="c"), pvc("c"), True, id="claim-name"),
        pytest.param(pod("p", claim="other"), pvc("c"), False, id="other-claim"),
        pytest.param(pod("p", claim="c", phase="Succeeded"), pvc("c"), False, id="succeeded-frees"),
        pytest.param(pod("p", claim="c", phase="Failed"), pvc("c"), False, id="failed-frees"),
        pytest.param(pod("p", claim="c", node=""), pvc("c"), False, id="unscheduled-does-not-hold"),
        pytest.param(pod("p", ephemeral="scratch"), pvc("p-scratch"), True, id="generic-ephemeral"),
        pytest.param(pod("p", ephemeral="scratch"), owned(pvc("p-scratch"), "uid-p"), True,
                     id="generic-ephemeral-owned-by-pod"),
        pytest.param(pod("p", ephemeral="scratch"), owned(pvc("p-scratch"), "another"), False,
                     id="generic-ephemeral-owned-by-other-pod"),
    ],
)  # fmt: skip
def test_pod_uses_claim(pod_obj: Any, claim: Any, used: bool) -> None:
    assert protection.pod_uses_claim(pod_obj, claim) is used


def test_claim_names_and_finalizers() -> None:
    both = pod("p", claim="c", ephemeral="e")
    assert protection.claim_names_of_pod(both) == ["c", "p-e"]
    claim = pvc("c")
    added = protection.with_finalizer(claim, protection.PVC_PROTECTION_FINALIZER, True)
    assert added is not None and added["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert protection.with_finalizer(added, protection.PVC_PROTECTION_FINALIZER, True) is None
    removed = protection.with_finalizer(added, protection.PVC_PROTECTION_FINALIZER, False)
    assert removed is not None and removed["metadata"]["finalizers"] == []
    assert protection.volume_in_use(pv("v", phase="Bound"))
    assert not protection.volume_in_use(pv("v", phase="Released"))


def node(name: str, *, ready: bool = True, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {TOPOLOGY: name, **labels}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


@pytest.mark.parametrize(
    ("volume", "nodes", "expected"),
    [
        pytest.param(pv("v", affinity={TOPOLOGY: ["n2"]}), [node("n1"), node("n2")], "n2", id="topology-key"),
        pytest.param(pv("v", affinity={TOPOLOGY: ["n9"]}), [node("n1")], None, id="node-not-there"),
        pytest.param(pv("v"), [node("n2"), node("n1", ready=False)], "n2", id="no-affinity-first-ready"),
        pytest.param(pv("v", affinity={"zone": ["a"]}), [node("n1", zone="b"), node("n3", zone="a"),
                     node("n2", zone="a", ready=False)], "n3", id="zone-ready-first"),
    ],
)  # fmt: skip
def test_node_for_pv(volume: Any, nodes: list[Any], expected: str | None) -> None:
    assert node_for_pv(volume, nodes) == expected


def test_node_for_pv_match_fields() -> None:
    volume = pv("v")
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
    volume["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [term]}}
    assert node_for_pv(volume, [node("n1"), node("n2")]) == "n2"


BOUND_1G = {"phase": "Bound", "capacity": {"storage": "1Gi"}}
PENDING_FS = {**BOUND_1G, "conditions": [{"type": "FileSystemResizePending", "status": "True"}]}


@pytest.mark.parametrize(
    ("claim", "volume", "needed"),
    [
        pytest.param(pvc("c", "2Gi", status=BOUND_1G), pv("v", "1Gi"), True, id="grow"),
        pytest.param(pvc("c", "1Gi", status=BOUND_1G), pv("v", "1Gi"), False, id="same"),
        pytest.param(pvc("c", "2Gi", status={"phase": "Pending"}), pv("v", "1Gi"), False, id="not-bound"),
        pytest.param(pvc("c", "2Gi", status=BOUND_1G), pv("v", "1Gi", csi={"x": 1}), False, id="not-csi"),
        pytest.param(pvc("c", "2Gi", status=PENDING_FS), pv("v", "2Gi"), False, id="left-to-the-node"),
        pytest.param(pvc("c", "3Gi", status=PENDING_FS), pv("v", "2Gi"), True, id="grow-again"),
    ],
)  # fmt: skip
def test_needs_expansion(claim: Any, volume: Any, needed: bool) -> None:
    assert expand.needs_expansion(claim, volume) is needed


def test_expand_helpers() -> None:
    assert expand.format_bytes(2 * 1024**3) == "2Gi"
    assert expand.format_bytes(1536 * 1024) == "1536Ki"
    assert expand.format_bytes(1000) == "1000"
    status = expand.with_condition(pvc("c", status=PENDING_FS), "Resizing", "", "2026-01-01T00:00:00Z")
    assert [c["type"] for c in status["conditions"]] == ["Resizing"]
    assert expand.with_condition(pvc("c", status=PENDING_FS), None, "", "t")["conditions"] == []
    capability = expand.volume_capability(pv("v", mode="Block"))
    assert capability.HasField("block")
