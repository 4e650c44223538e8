"""The shell half of VolumeBinding's PreBind: the writes it makes and how it waits for the claims."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.scheduler.plugins import volume_binding as vb
from cluster.scheduler.volume_binder import bind_pod_volumes
from tests.cluster.controllers.fake_client import FakeClient


def claim(name: str, **ann: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "uid": f"u-{name}", "annotations": dict(ann)}
    return {"metadata": meta, "spec": {}, "status": {"phase": "Pending"}}


class ClaimsFromClient:
    """A claim lister over the fake client's store, which a 'PV controller' step may change between
    reads (``after_reads`` reads, run ``step`` once)."""

    def __init__(self, client: FakeClient, after_reads: int, step: Any) -> None:
        self.client, self.after_reads, self.step, self.reads = client, after_reads, step, 0

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        self.reads += 1
        if self.reads == self.after_reads:
            self.step(self.client)
        return self.client.stored("v1", "persistentvolumeclaims", name, namespace)

    def list(self) -> list[dict[str, Any]]:
        return []


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def bind(client: FakeClient, work: vb.BindingWork, claims: Any, timeout: float = 100.0) -> str | None:
    return asyncio.run(
        bind_pod_volumes(client, work, claims, timeout=timeout, poll=0, clock=Ticks())  # type: ignore[arg-type]
    )


def mark_bound(name: str) -> Any:
    def step(client: FakeClient) -> None:
        stored = client.stored("v1", "persistentvolumeclaims", name, "ns")
        assert stored is not None
        stored["spec"]["volumeName"] = "pv-1"
        stored["status"]["phase"] = "Bound"

    return step


def test_static_binding_writes_claim_ref_then_waits_for_bound() -> None:
    client = FakeClient()
    c = client.put("v1", "persistentvolumeclaims", claim("c"))
    pv = client.put("v1", "persistentvolumes", {"metadata": {"name": "pv-1"}, "spec": {}})
    work = vb.BindingWork("n1", ((c, pv),), (), ("ns/c",))
    claims = ClaimsFromClient(client, 3, mark_bound("c"))
    assert bind(client, work, claims) is None
    stored = client.stored("v1", "persistentvolumes", "pv-1")
    assert stored is not None
    assert stored["spec"]["claimRef"]["uid"] == "u-c" and stored["spec"]["claimRef"]["namespace"] == "ns"
    assert stored["metadata"]["annotations"] == {vb.BOUND_BY_CONTROLLER_ANN: "yes"}
    assert claims.reads == 3


def test_provisioning_sets_selected_node() -> None:
    client = FakeClient()
    c = client.put("v1", "persistentvolumeclaims", claim("c"))
    work = vb.BindingWork("n2", (), (c,), ("ns/c",))
    assert bind(client, work, ClaimsFromClient(client, 2, mark_bound("c"))) is None
    stored = client.stored("v1", "persistentvolumeclaims", "c", "ns")
    assert stored is not None and stored["metadata"]["annotations"] == {vb.SELECTED_NODE_ANN: "n2"}


def test_selected_node_reset_fails_at_once() -> None:
    client = FakeClient()
    c = client.put("v1", "persistentvolumeclaims", claim("c"))

    def reset(client: FakeClient) -> None:
        stored = client.stored("v1", "persistentvolumeclaims", "c", "ns")
        assert stored is not None
        stored["metadata"]["annotations"].pop(vb.SELECTED_NODE_ANN)

    work = vb.BindingWork("n2", (), (c,), ("ns/c",))
    error = bind(client, work, ClaimsFromClient(client, 3, reset))
    assert error == 'binding volumes: selectedNode annotation reset for PVC "c"'


def test_wait_is_bounded_and_a_missing_claim_fails() -> None:
    client = FakeClient()
    c = client.put("v1", "persistentvolumeclaims", claim("c", **{vb.SELECTED_NODE_ANN: "n1"}))
    work = vb.BindingWork("n1", (), (c,), ("ns/c",))
    assert bind(client, work, ClaimsFromClient(client, 0, None), timeout=5) == (
        "binding volumes: timed out waiting for the condition"
    )
    assert client.writes("patch") == []  # the annotation was there already
    work = vb.BindingWork("n1", (), (), ("ns/gone",))
    assert bind(client, work, ClaimsFromClient(client, 0, None)) == (
        'binding volumes: persistentvolumeclaim "gone" not found'
    )
