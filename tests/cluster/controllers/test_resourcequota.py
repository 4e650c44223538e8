"""The resource quota controller: status.hard from spec.hard, status.used from the objects."""

from __future__ import annotations

import asyncio
from typing import Any

from cluster.controllers.resourcequota import RESYNC, ResourceQuotaController, quota_status
from cluster.controllers.runtime import ControllerContext, SharedInformers
from tests.cluster.controllers.fake_client import FakeClient
from tests.cluster.controllers.fakes import FakeClock, FakeRecorder


def pod(name: str, cpu: str = "", memory: str = "", phase: str = "Running", **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "c", "image": "busybox"}
    if requests:
        container["resources"] = {"requests": requests, "limits": dict(requests)}
    return {
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"containers": [container], **spec},
        "status": {"phase": phase},
    }


def quota(hard: dict[str, str], status: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q", "namespace": "team"},
        "spec": {"hard": hard, **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def test_quota_status_counts_what_hard_names() -> None:
    objects = [
        ("", "pods", pod("a", "250m", "1Gi")),
        ("", "pods", pod("b", "500m", "512Mi")),
        ("", "pods", pod("done", "4", "8Gi", phase="Succeeded")),  # terminal pods use nothing
        ("", "services", {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}}),
        ("", "configmaps", {"metadata": {"name": "c"}}),
    ]
    hard = {
        "pods": "10",
        "requests.cpu": "2",
        "requests.memory": "4Gi",
        "limits.memory": "4Gi",
        "services": "5",
        "services.nodeports": "1",
        "count/configmaps": "3",
        "secrets": "2",
    }
    assert quota_status(quota(hard), objects) == {
        "hard": hard,
        "used": {
            "count/configmaps": "1",
            "limits.memory": "1536Mi",
            "pods": "2",
            "requests.cpu": "750m",
            "requests.memory": "1536Mi",
            "secrets": "0",
            "services": "1",
            "services.nodeports": "1",
        },
    }


def test_scoped_quota_only_sees_matching_pods() -> None:
    objects = [
        ("", "pods", pod("best-effort")),
        ("", "pods", pod("burstable", "100m")),
        ("", "pods", pod("deadline", activeDeadlineSeconds=30)),
    ]
    assert quota_status(quota({"pods": "9"}, scopes=["BestEffort"]), objects)["used"] == {"pods": "2"}
    assert quota_status(quota({"pods": "9"}, scopes=["Terminating"]), objects)["used"] == {"pods": "1"}
    assert quota_status(quota({"pods": "9"}, scopes=["NotBestEffort"]), objects)["used"] == {"pods": "1"}


def controller_with(
    client: FakeClient, q: dict[str, Any], pods: list[dict[str, Any]]
) -> ResourceQuotaController:
    informers = SharedInformers(client)  # type: ignore[arg-type]
    ctx = ControllerContext(client, informers, FakeClock(), lambda _: FakeRecorder())  # type: ignore[arg-type]
    controller = ResourceQuotaController(ctx)
    client.put("v1", "resourcequotas", q)
    informers.lister("v1", "resourcequotas").upsert(q)
    for p in pods:
        informers.lister("v1", "pods").upsert(p)
    return controller


def test_reconcile_writes_status_once() -> None:
    client = FakeClient()
    controller = controller_with(client, quota({"pods": "2"}), [pod("a"), pod("b")])
    assert asyncio.run(controller.reconcile("team/q")) == RESYNC
    updates = client.writes("update")
    assert [u[:6] for u in updates] == [("update", "v1", "resourcequotas", "team", "q", "status")]
    assert updates[0][6]["status"] == {"hard": {"pods": "2"}, "used": {"pods": "2"}}
    # already current: nothing written
    client2 = FakeClient()
    current = quota({"pods": "2"}, {"hard": {"pods": "2"}, "used": {"pods": "2"}})
    controller2 = controller_with(client2, current, [pod("a"), pod("b")])
    assert asyncio.run(controller2.reconcile("team/q")) == RESYNC
    assert client2.writes("update") == []


def test_a_pod_change_enqueues_the_namespaces_quotas() -> None:
    client = FakeClient()
    controller = controller_with(client, quota({"pods": "2"}), [])
    controller._object_changed(pod("a"))
    assert asyncio.run(controller.queue.get()) == "team/q"
