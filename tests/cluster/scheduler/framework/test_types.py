"""Quantities, Resource arithmetic, pod requests, NodeInfo and Snapshot."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import pytest

from cluster.scheduler.framework import (
    NodeInfo,
    Resource,
    Snapshot,
    parse_quantity,
    pod_requests,
    pod_requests_nonzero,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("100m", Fraction(1, 10), id="milli"),
        pytest.param("1Gi", Fraction(2**30), id="gibi"),
        pytest.param("0.5", Fraction(1, 2), id="decimal"),
        pytest.param("1e3", Fraction(1000), id="exponent"),
        pytest.param("1E-3", Fraction(1, 1000), id="negative-exponent"),
        pytest.param("2k", Fraction(2000), id="kilo"),
        pytest.param("1.5M", Fraction(1_500_000), id="mega"),
        pytest.param("128Mi", Fraction(128 * 2**20), id="mebi"),
        pytest.param("10u", Fraction(1, 100_000), id="micro"),
        pytest.param(".5", Fraction(1, 2), id="leading-dot"),
        pytest.param(3, Fraction(3), id="int"),
        pytest.param(0.25, Fraction(1, 4), id="float"),
    ],
)
def test_parse_quantity(text: str | int | float, value: Fraction) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize(
    "text",
    [
        *(pytest.param(t, id=t or "empty") for t in ["", "abc", "1Gb", "1 Gi", "--1"]),
        # Kubernetes' rules (the API server would have rejected these before the scheduler saw them):
        pytest.param(" 1Gi", id="leading-space"),
        pytest.param("100m ", id="trailing-space"),
        pytest.param("1Gi\n", id="trailing-newline"),
    ],
)
def test_parse_quantity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        pytest.param({"cpu": "1500m", "memory": "1Gi"}, Resource(1500, 2**30), id="cpu-memory"),
        pytest.param({"cpu": "0.0001"}, Resource(1), id="cpu-rounds-up"),
        pytest.param(
            {"pods": "110", "ephemeral-storage": "1k"}, Resource(0, 0, 1000, 110), id="pods-storage"
        ),
        pytest.param({"nvidia.com/gpu": "2"}, Resource(scalar={"nvidia.com/gpu": 2}), id="scalar"),
        pytest.param(None, Resource(), id="none"),
    ],
)
def test_resource_from_list(resources: dict[str, Any] | None, expected: Resource) -> None:
    assert Resource.from_list(resources) == expected


def test_resource_arithmetic() -> None:
    a = Resource(100, 10, 1, 1, {"gpu": 1})
    b = Resource(50, 5, 0, 1, {"gpu": 2, "fpga": 1})
    c = a.clone()
    c.add(b)
    assert c == Resource(150, 15, 1, 2, {"gpu": 3, "fpga": 1})
    assert a == Resource(100, 10, 1, 1, {"gpu": 1})
    c.sub(b)
    assert c == Resource(100, 10, 1, 1, {"gpu": 1, "fpga": 0})


def _container(cpu: str | None = None, memory: str | None = None, **extra: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    return {"name": "c", "resources": {"requests": requests} if requests else {}, **extra}


def _pod(
    containers: list[dict[str, Any]],
    init: list[dict[str, Any]] | None = None,
    overhead: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {"containers": containers, **spec}
    if init:
        s["initContainers"] = init
    if overhead:
        s["overhead"] = overhead
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": s}


@pytest.mark.parametrize(
    ("pod", "cpu", "memory"),
    [
        pytest.param(_pod([_container("100m", "1Mi"), _container("200m")]), 300, 2**20, id="sum"),
        pytest.param(_pod([_container("100m")], init=[_container("500m")]), 500, 0, id="init-max"),
        pytest.param(_pod([_container("600m")], init=[_container("500m")]), 600, 0, id="containers-max"),
        pytest.param(
            _pod([_container("100m")], init=[_container("200m", restartPolicy="Always"), _container("250m")]),
            450,
            0,
            id="sidecar-adds",
        ),
        pytest.param(_pod([_container("100m")], overhead={"cpu": "50m"}), 150, 0, id="overhead"),
        pytest.param(_pod([_container()]), 0, 0, id="no-requests"),
        pytest.param(
            _pod([{"name": "c", "resources": {"limits": {"cpu": "1"}}}]),
            1000,
            0,
            id="limits-default-requests",
        ),
    ],
)
def test_pod_requests(pod: dict[str, Any], cpu: int, memory: int) -> None:
    requests = pod_requests(pod)
    assert (requests.milli_cpu, requests.memory) == (cpu, memory)


@pytest.mark.parametrize(
    ("pod", "cpu", "memory"),
    [
        pytest.param(_pod([_container()]), 100, 200 * 2**20, id="defaults"),
        pytest.param(
            _pod([_container("1"), _container(memory="1Mi")]), 1100, 201 * 2**20, id="per-container"
        ),
    ],
)
def test_pod_requests_nonzero(pod: dict[str, Any], cpu: int, memory: int) -> None:
    requests = pod_requests_nonzero(pod)
    assert (requests.milli_cpu, requests.memory) == (cpu, memory)


def _node(name: str, cpu: str = "4", pods: str = "110", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, **meta},
        "spec": {},
        "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": pods}},
    }


def _bound(name: str, node: str, cpu: str = "100m", **spec: Any) -> dict[str, Any]:
    pod = _pod([_container(cpu)], nodeName=node, **spec)
    pod["metadata"] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    return pod


TERMS = [{"topologyKey": "k"}]


def test_node_info_add_remove() -> None:
    info = NodeInfo(_node("n1"))
    assert info.allocatable.milli_cpu == 4000 and info.allocatable.allowed_pod_number == 110
    ported = _bound("a", "n1")
    ported["spec"]["containers"][0]["ports"] = [{"containerPort": 80, "hostPort": 8080}]
    anti = _bound(
        "b",
        "n1",
        affinity={"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": TERMS}},
    )
    info.add_pod(ported)
    info.add_pod(anti)
    assert info.requested.milli_cpu == 200
    assert info.used_ports == {("0.0.0.0", "TCP", 8080)}
    assert [p["metadata"]["name"] for p in info.pods_with_affinity] == ["b"]
    assert [p["metadata"]["name"] for p in info.pods_with_required_anti_affinity] == ["b"]
    clone = info.clone()
    info.remove_pod(ported)
    assert info.used_ports == set() and info.requested.milli_cpu == 100
    info.remove_pod(anti)
    assert info.pods == [] and info.pods_with_affinity == [] and info.requested == Resource(scalar={})
    assert len(clone.pods) == 2 and clone.requested.milli_cpu == 200
    with pytest.raises(KeyError):
        info.remove_pod(anti)


def test_node_info_properties() -> None:
    node = _node("n1", labels={"zone": "a"})
    node["spec"]["taints"] = [{"key": "k", "value": "v", "effect": "NoSchedule"}]
    info = NodeInfo(node)
    assert (info.name, info.labels, len(info.taints)) == ("n1", {"zone": "a"}, 1)


def test_snapshot_places_pods_and_assumes() -> None:
    required = {"requiredDuringSchedulingIgnoredDuringExecution": [{}]}
    aff_pod = _bound("c", "n2", affinity={"podAffinity": required})
    snapshot = Snapshot(
        [_node("n1"), _node("n2")],
        [_bound("a", "n1"), _bound("b", "elsewhere"), aff_pod, _pod([_container("1")])],
    )
    assert [i.name for i in snapshot.node_infos] == ["n1", "n2"]
    n1, n2 = snapshot.get("n1"), snapshot.get("n2")
    assert n1 is not None and n2 is not None
    assert len(n1.pods) == 1 and len(n2.pods) == 1
    assert snapshot.get("missing") is None
    assert snapshot.have_pods_with_affinity() == [n2]
    assert snapshot.have_pods_with_required_anti_affinity() == []
    pending = _pod([_container("1")])
    snapshot.assume(pending, "n1")
    assert n1.requested.milli_cpu == 1100 and n1.pods[-1]["spec"]["nodeName"] == "n1"
    assert "nodeName" not in pending["spec"]
    with pytest.raises(KeyError):
        snapshot.assume(pending, "missing")
