"""The autoscaler's pure decisions: what pods ask Ray for, which nodes are released, what is drained."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.autoscaler.planning import (
    TO_BE_DELETED_TAINT,
    Bundle,
    is_releasing,
    label_selector,
    pinned_to_a_node,
    plan_scale_down,
    pods_to_evict,
    ray_resources,
    release_patch,
    restore_patch,
    scale_up_request,
)

UNSCHEDULABLE = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}


def pod(
    name: str,
    *,
    cpu: str | None = "1",
    memory: str | None = None,
    gpu: str | None = None,
    node: str | None = None,
    pending: bool = False,
    phase: str | None = None,
    owner: str | None = None,
    annotations: dict[str, str] | None = None,
    spec: dict[str, Any] | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    requests = {k: v for k, v in {"cpu": cpu, "memory": memory, "nvidia.com/gpu": gpu}.items() if v}
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "o", "controller": True}]
    if annotations:
        meta["annotations"] = annotations
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    body: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"requests": requests}}],
        **(spec or {}),
    }
    if node:
        body["nodeName"] = node
    status: dict[str, Any] = {"phase": phase or ("Pending" if pending or not node else "Running")}
    if pending:
        status["conditions"] = [UNSCHEDULABLE]
    return {"metadata": meta, "spec": body, "status": status}


def node(
    name: str,
    *,
    ready: bool = True,
    taints: list[dict[str, str]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "annotations": annotations or {}},
        "spec": {"taints": taints or []},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def affinity(*terms: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": t} for t in terms]
                }
            }
        }
    }


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(pod("a", cpu="1500m"), {"CPU": 1.5}, id="cpu"),
        pytest.param(pod("a", cpu="2", memory="1Gi"), {"CPU": 2.0, "memory": 1024.0**3}, id="memory-bytes"),
        pytest.param(pod("a", cpu=None, gpu="1"), {"GPU": 1.0}, id="gpu"),
        pytest.param(pod("a", cpu=None), {}, id="no-requests"),
    ],
)
def test_ray_resources(p: dict[str, Any], expected: dict[str, float]) -> None:
    assert ray_resources(p) == expected


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"nodeSelector": {"raykube.io/ray-node-type": "gpu"}},
            {"ray.io/node-group": "gpu"},
            id="node-type",
        ),
        pytest.param(
            {"nodeSelector": {"raykube.io/pool": "cpu2"}}, {"raykube.io/pool": "cpu2"}, id="ray-label"
        ),
        pytest.param({"nodeSelector": {"kubernetes.io/os": "linux"}}, {}, id="well-known-dropped"),
        pytest.param(
            affinity(
                [{"key": "zone", "operator": "In", "values": ["a", "b"]}, {"key": "x", "operator": "Exists"}]
            ),
            {"zone": "in(a,b)"},
            id="affinity-in-several",
        ),
        pytest.param(
            affinity([{"key": "raykube.io/ray-node-type", "operator": "NotIn", "values": ["spot"]}]),
            {"ray.io/node-group": "!in(spot)"},
            id="affinity-notin-node-type",
        ),
        pytest.param(
            affinity(
                [{"key": "zone", "operator": "In", "values": ["a"]}],
                [{"key": "zone", "operator": "In", "values": ["b"]}],
            ),
            {},
            id="alternatives-not-expressible",
        ),
    ],
)
def test_label_selector(spec: dict[str, Any], expected: dict[str, str]) -> None:
    assert label_selector(pod("a", pending=True, spec=spec)) == expected


@pytest.mark.parametrize(
    ("spec", "pinned"),
    [
        pytest.param({"nodeSelector": {"kubernetes.io/hostname": "n1"}}, True, id="hostname-selector"),
        pytest.param(
            affinity([{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]),
            True,
            id="hostname-affinity",
        ),
        pytest.param(
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {"key": "metadata.name", "operator": "In", "values": ["n1"]}
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            True,
            id="metadata-name-field",
        ),
        pytest.param(
            affinity([{"key": "zone", "operator": "In", "values": ["a"]}]), False, id="zone-affinity"
        ),
        pytest.param({}, False, id="free"),
    ],
)
def test_pinned_to_a_node(spec: dict[str, Any], pinned: bool) -> None:
    assert pinned_to_a_node(pod("a", pending=True, spec=spec)) is pinned


IDS = {"head": "id-head", "w1": "id-w1"}


def test_no_waiting_pod_clears_the_request() -> None:
    assert scale_up_request([pod("a", node="head"), pod("b", pending=False)], IDS) == []


def test_the_request_is_the_whole_demand_bound_pods_pinned_to_their_nodes() -> None:
    pods = [
        pod("bound", cpu="1", node="head"),
        pod("done", cpu="1", node="head", phase="Succeeded"),
        pod("elsewhere", cpu="1", node="not-a-ray-node"),
        pod("waits", cpu="2", pending=True, spec={"nodeSelector": {"raykube.io/ray-node-type": "cpu2"}}),
        pod("pinned", cpu="2", pending=True, spec={"nodeSelector": {"kubernetes.io/hostname": "head"}}),
    ]
    assert scale_up_request(pods, IDS) == [
        Bundle({"CPU": 1.0}, {"ray.io/node-id": "id-head"}),
        Bundle({"CPU": 2.0}, {"ray.io/node-group": "cpu2"}),
    ]


def test_only_pinned_pods_waiting_ask_for_nothing() -> None:
    pods = [pod("pinned", pending=True, spec={"nodeSelector": {"kubernetes.io/hostname": "gone"}})]
    assert scale_up_request(pods, IDS) == []


def test_a_pod_without_requests_still_asks_for_a_node() -> None:
    assert scale_up_request([pod("a", cpu=None, pending=True)], IDS) == [Bundle({"CPU": 0.001}, {})]


def plan(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], since: dict[str, float], now: float) -> Any:
    return plan_scale_down(nodes, pods, protected={"head"}, unneeded_since=since, now=now, unneeded=60.0)


def test_an_empty_node_is_released_after_the_unneeded_time() -> None:
    nodes = [node("head"), node("w1")]
    first = plan(nodes, [], {}, now=100.0)
    assert first.unneeded_since == {"w1": 100.0} and first.release == []
    assert plan(nodes, [], first.unneeded_since, now=159.0).release == []
    assert plan(nodes, [], first.unneeded_since, now=160.0).release == ["w1"]


@pytest.mark.parametrize(
    "pods",
    [
        pytest.param([pod("a", node="w1", owner="DaemonSet")], id="daemonset"),
        pytest.param([pod("a", node="w1", annotations={"kubernetes.io/config.mirror": "x"})], id="mirror"),
        pytest.param(
            [pod("a", node="w1", annotations={"raykube.io/ray-actor": "apiserver"})], id="control-plane"
        ),
        pytest.param([pod("a", node="w1", phase="Succeeded")], id="finished"),
    ],
)
def test_pods_that_stay_do_not_keep_a_node(pods: list[dict[str, Any]]) -> None:
    assert plan([node("w1")], pods, {"w1": 0.0}, now=60.0).release == ["w1"]


@pytest.mark.parametrize(
    ("nodes", "pods"),
    [
        pytest.param([node("w1")], [pod("a", node="w1", owner="ReplicaSet")], id="workload-pod"),
        pytest.param(
            [node("w1")],
            [
                pod(
                    "a",
                    node="w1",
                    owner="DaemonSet",
                    annotations={"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"},
                )
            ],
            id="not-safe-to-evict",
        ),
        pytest.param([node("w1", ready=False)], [], id="not-ready"),
        pytest.param(
            [node("w1", annotations={"cluster-autoscaler.kubernetes.io/scale-down-disabled": "true"})],
            [],
            id="scale-down-disabled",
        ),
        pytest.param(
            [node("w1", taints=[{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}])],
            [],
            id="already-releasing",
        ),
        pytest.param([node("head")], [], id="protected"),
    ],
)
def test_nodes_kept(nodes: list[dict[str, Any]], pods: list[dict[str, Any]]) -> None:
    assert plan(nodes, pods, {"w1": 0.0, "head": 0.0}, now=1000.0).release == []


def test_a_waiting_pod_holds_scale_down_and_restarts_the_clocks() -> None:
    held = plan([node("w1")], [pod("a", pending=True)], {"w1": 0.0}, now=1000.0)
    assert held.release == [] and held.unneeded_since == {}


def test_a_busy_node_loses_its_clock() -> None:
    assert plan([node("w1")], [pod("a", node="w1")], {"w1": 0.0}, now=10.0).unneeded_since == {}


def test_drain_evicts_workload_pods_only() -> None:
    pods = [
        pod("app", node="w1", owner="ReplicaSet"),
        pod("bare", node="w1"),
        pod("ds", node="w1", owner="DaemonSet"),
        pod("going", node="w1", deleting=True),
        pod("other", node="w2"),
    ]
    assert [p["metadata"]["name"] for p in pods_to_evict("w1", pods)] == ["app", "bare"]


def test_release_patch_cordons_and_taints_keeping_other_taints() -> None:
    n = node("w1", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    patch = release_patch(n, 1700000000)
    assert patch["spec"]["unschedulable"] is True
    assert patch["spec"]["taints"] == [
        {"key": "dedicated", "value": "x", "effect": "NoSchedule"},
        {"key": TO_BE_DELETED_TAINT, "value": "1700000000", "effect": "NoSchedule"},
    ]
    n["spec"] = patch["spec"]
    assert is_releasing(n)
    assert release_patch(n, 1700000001)["spec"]["taints"][-1]["value"] == "1700000001"


def test_restore_patch_undoes_the_release() -> None:
    kept = {"key": "dedicated", "value": "x", "effect": "NoSchedule"}
    n = node("w1", taints=[kept])
    n["spec"] = release_patch(n, 1)["spec"]
    assert restore_patch(n) == {"spec": {"unschedulable": None, "taints": [kept]}}
    assert restore_patch(node("w2", taints=[{"key": TO_BE_DELETED_TAINT, "effect": "NoSchedule"}])) == {
        "spec": {"unschedulable": None, "taints": None}
    }
