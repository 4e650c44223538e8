"""The column (vectorized) path decides exactly as the per-node path, and columns mirror NodeInfos.

Random clusters (cordoned nodes, hard and soft taints, labels, extended resources, pods with ports
and affinity) and random pods go through ``schedule_one`` twice, once per path, each on its own
snapshot with the same seed; every cycle must pick the same node after evaluating the same number of
nodes, and every failure must carry the same message.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest

from cluster.scheduler.config import default_profile
from cluster.scheduler.framework import Snapshot, SnapshotHandle
from cluster.scheduler.framework.columns import NodeColumns, take
from cluster.scheduler.framework.registry import default_registry
from cluster.scheduler.framework.runtime import Framework
from cluster.scheduler.schedule_one import forget, run_binding_cycle, schedule_one

ZONES = ("a", "b", "c")


def random_node(rng: random.Random, index: int) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": f"n{index}", "topology.kubernetes.io/zone": rng.choice(ZONES)}
    if rng.random() < 0.3:
        labels["disk"] = rng.choice(["ssd", "hdd"])
    taints = []
    if rng.random() < 0.1:
        taints.append({"key": "dedicated", "value": rng.choice(["x", "y"]), "effect": "NoSchedule"})
    if rng.random() < 0.15:
        taints.append({"key": "soft", "value": "1", "effect": "PreferNoSchedule"})
    allocatable = {
        "cpu": rng.choice(["1", "2", "4", "3500m"]),
        "memory": rng.choice(["2Gi", "8Gi", "32Gi"]),
        "pods": str(rng.choice([3, 10, 110])),
    }
    if rng.random() < 0.2:
        allocatable["ephemeral-storage"] = "10Gi"
    if rng.random() < 0.1:
        allocatable["example.com/gpu"] = "2"
    spec: dict[str, Any] = {"taints": taints}
    if rng.random() < 0.05:
        spec["unschedulable"] = True
    return {
        "metadata": {"name": f"n{index:03d}", "labels": labels},
        "spec": spec,
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


def random_pod(rng: random.Random, index: int) -> dict[str, Any]:
    requests: dict[str, str] = {}
    if rng.random() < 0.8:
        requests["cpu"] = rng.choice(["100m", "500m", "1", "1500m"])
    if rng.random() < 0.7:
        requests["memory"] = rng.choice(["100Mi", "1Gi", "3Gi"])
    if rng.random() < 0.1:
        requests["ephemeral-storage"] = "1Gi"
    if rng.random() < 0.05:
        requests["example.com/gpu"] = "1"
    container: dict[str, Any] = {"name": "c", "image": "pause", "resources": {"requests": requests}}
    if rng.random() < 0.05:
        container["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    spec: dict[str, Any] = {"containers": [container]}
    app = rng.choice(["web", "db"])
    if rng.random() < 0.2:
        spec["tolerations"] = [{"key": "dedicated", "operator": "Exists"}]
    if rng.random() < 0.1:
        spec["nodeSelector"] = {"disk": "ssd"}
    affinity: dict[str, Any] = {}
    if rng.random() < 0.1:
        affinity["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    if rng.random() < 0.1:
        affinity["podAffinity"] = {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 10,
                    "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app": app}},
                        "topologyKey": "topology.kubernetes.io/zone",
                    },
                }
            ]
        }
    if affinity:
        spec["affinity"] = affinity
    if rng.random() < 0.1:
        spec["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": rng.choice(["DoNotSchedule", "ScheduleAnyway"]),
                "labelSelector": {"matchLabels": {"app": app}},
            }
        ]
    return {
        "metadata": {
            "name": f"p{index}",
            "namespace": "default",
            "uid": f"uid-{index}",
            "labels": {"app": app},
        },
        "spec": spec,
    }


def run(nodes: list[dict[str, Any]], pods: list[dict[str, Any]], *, vectorized: bool, seed: int) -> list[Any]:
    snapshot = Snapshot(nodes, [])
    fw = Framework(default_profile(), default_registry(), SnapshotHandle(snapshot))
    rng = random.Random(seed)
    start = 0
    decisions: list[Any] = []
    for pod in pods:
        result = schedule_one(
            fw,
            pod,
            snapshot,
            percentage_of_nodes_to_score=0,
            start_index=start,
            rng=rng,
            vectorized=vectorized,
        )
        start = (start + result.evaluated) % len(snapshot)
        if result.node_name is not None:
            status = run_binding_cycle(fw, result, pod, snapshot)
            decisions.append(("placed", result.node_name, result.evaluated, status.is_success()))
        else:
            decisions.append(("failed", result.message, result.evaluated, result.nominated))
            for victim in result.victims:
                forget(snapshot, victim, result.nominated or "")
    assert_columns_mirror(snapshot)
    return decisions


def assert_columns_mirror(snapshot: Snapshot) -> None:
    """Every row equals a freshly built one (no drift from incremental writes)."""
    live, fresh = snapshot.columns(), NodeColumns(snapshot.node_infos)
    for name in (*NodeColumns.INT_FIELDS, *NodeColumns.FLAG_FIELDS):
        assert np.array_equal(getattr(live, name), getattr(fresh, name)), name
        if name in NodeColumns.FLAG_FIELDS:
            assert live.flagged(name) == bool(getattr(fresh, name).any()), name


@pytest.mark.parametrize("seed", range(8))
def test_vectorized_path_decides_like_per_node_path(seed: int) -> None:
    rng = random.Random(seed)
    nodes = [random_node(rng, i) for i in range(rng.choice([7, 60, 150, 240]))]
    pods = [random_pod(rng, i) for i in range(300)]
    per_node = run(nodes, pods, vectorized=False, seed=seed)
    vector = run(nodes, pods, vectorized=True, seed=seed)
    assert vector == per_node
    assert any(d[0] == "placed" for d in vector) and any(d[0] == "failed" for d in vector)


def test_columns_follow_incremental_snapshot_changes() -> None:
    rng = random.Random(7)
    snapshot = Snapshot([random_node(rng, i) for i in range(20)], [])
    snapshot.columns()
    pods = [
        dict(random_pod(rng, i), spec={**random_pod(rng, i)["spec"], "nodeName": "n005"}) for i in range(5)
    ]
    for pod in pods:
        assert snapshot.add_pod(pod)
    assert_columns_mirror(snapshot)
    assert snapshot.remove_pod(pods[0], "n005") and not snapshot.remove_pod(pods[0], "n005")
    changed = random_node(rng, 5)
    changed["spec"] = {"unschedulable": True, "taints": [{"key": "k", "effect": "NoExecute"}]}
    snapshot.update_node(changed)
    assert_columns_mirror(snapshot)
    assert snapshot.columns().unschedulable[5] and snapshot.columns().hard_taints[5]
    snapshot.add_node(random_node(rng, 100))  # sorts after n099 names: "n100"
    snapshot.remove_node("n003")
    assert [info.name for info in snapshot.node_infos] == sorted(info.name for info in snapshot.node_infos)
    assert len(snapshot.get("n005").pods) == 4  # type: ignore[union-attr]
    assert_columns_mirror(snapshot)


@pytest.mark.parametrize(
    ("rows", "is_view"),
    [
        pytest.param([3, 4, 5, 6], True, id="run"),
        pytest.param([8, 9, 0, 1], False, id="wrapped"),
        pytest.param([1, 3, 4], False, id="gap"),
        pytest.param([], False, id="empty"),
    ],
)
def test_take_matches_fancy_indexing(rows: list[int], is_view: bool) -> None:
    column = np.arange(10, dtype=np.int64) * 10
    index = np.array(rows, dtype=np.int64)
    taken = take(column, index)
    assert taken.tolist() == column[index].tolist()
    assert (taken.base is column) == is_view
