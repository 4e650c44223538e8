"""VolumeBinding: PreFilter/Filter decisions as tables over fake listers, Reserve/Unreserve's assumed
PVs, and the work PreBind leaves for the shell."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.client.lister import Lister
from cluster.scheduler.framework.cycle_state import CycleState
from cluster.scheduler.framework.status import Code
from cluster.scheduler.framework.types import NodeInfo
from cluster.scheduler.plugins import volume_binding as vb

DRIVER = "hostpath.csi.raykube.io"
KEY = "topology.hostpath.csi.raykube.io/node"


def lister(*objs: dict[str, Any]) -> Lister:
    out = Lister()
    for obj in objs:
        out.upsert(obj)
    return out


def claim(
    name: str, *, volume: str = "", cls: str = "standard", size: str = "1Gi", **ann: str
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": size}},
        "storageClassName": cls,
    }
    if volume:
        spec["volumeName"] = volume
    meta = {"name": name, "namespace": "ns", "uid": f"u-{name}", "annotations": dict(ann)}
    return {"metadata": meta, "spec": spec, "status": {"phase": "Bound" if volume else "Pending"}}


def pv(
    name: str, *, node: str = "", cls: str = "standard", size: str = "1Gi", phase: str = "Available"
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "capacity": {"storage": size},
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": cls,
    }
    if node:
        terms = [{"matchExpressions": [{"key": KEY, "operator": "In", "values": [node]}]}]
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": terms}}
    return {"metadata": {"name": name}, "spec": spec, "status": {"phase": phase}}


def storage_class(
    name: str, mode: str = "WaitForFirstConsumer", provisioner: str = DRIVER, **extra: Any
) -> Any:
    return {"metadata": {"name": name}, "provisioner": provisioner, "volumeBindingMode": mode, **extra}


def csinode(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {"drivers": [{"name": DRIVER, "nodeID": name, "topologyKeys": [KEY]}]},
    }


def node(name: str, **labels: str) -> NodeInfo:
    return NodeInfo({"metadata": {"name": name, "labels": {KEY: name, **labels}}})


def pod(*claims: str) -> dict[str, Any]:
    volumes = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-p"}, "spec": {"volumes": volumes}}


CLASSES = lister(
    storage_class("standard"),
    storage_class("now", "Immediate"),
    storage_class("local", provisioner=vb.NO_PROVISIONER),
    storage_class("zoned", allowedTopologies=[{"matchLabelExpressions": [{"key": "zone", "values": ["a"]}]}]),
)


def plugin(claims: list[Any], pvs: list[Any], csinodes: tuple[str, ...] = ("n1", "n2")) -> vb.VolumeBinding:
    return vb.VolumeBinding(
        vb.VolumeListers(lister(*claims), lister(*pvs), CLASSES, lister(*(csinode(n) for n in csinodes)))
    )


def test_pod_without_claims_is_skipped() -> None:
    state = CycleState()
    p = vb.VolumeBinding()  # no listers needed
    assert p.pre_filter(state, {"spec": {"volumes": [{"name": "x", "emptyDir": {}}]}}, []).is_skip()
    assert p.reserve(state, {}, "n1").is_success() and p.pre_bind(state, {}, "n1").is_success()
    assert vb.recorded_work(state) is None


@pytest.mark.parametrize(
    ("claims", "pvs", "message"),
    [
        pytest.param([], [], 'persistentvolumeclaim "c" not found', id="missing"),
        pytest.param([claim("c", cls="now")], [], vb.ERR_UNBOUND_IMMEDIATE, id="unbound-immediate"),
        pytest.param([claim("c", cls="nope")], [], vb.ERR_UNBOUND_IMMEDIATE, id="class-missing"),
        pytest.param([claim("c", volume="gone")], [], vb.ERR_PV_NOT_EXIST, id="bound-to-missing-pv"),
    ],
)
def test_pre_filter_rejections(claims: list[Any], pvs: list[Any], message: str) -> None:
    status = plugin(claims, pvs).pre_filter(CycleState(), pod("c"), [])
    assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert status.reasons == (message,)


@pytest.mark.parametrize(
    ("claims", "pvs", "nodes"),
    [
        pytest.param([claim("c", volume="v")], [pv("v", node="n1")], {"n1": None, "n2": vb.ERR_NODE_CONFLICT},
                     id="bound-pv-affinity"),
        pytest.param([claim("c", volume="v")], [pv("v")], {"n1": None, "n2": None}, id="bound-pv-anywhere"),
        pytest.param([claim("c")], [], {"n1": None, "n2": None}, id="provision-where-driver-is"),
        pytest.param([claim("c")], [], {"n1": None, "n3": vb.ERR_BIND_CONFLICT}, id="no-driver-on-node"),
        pytest.param([claim("c", cls="zoned")], [], {"za": None, "zb": vb.ERR_BIND_CONFLICT},
                     id="allowed-topologies"),
        pytest.param([claim("c", cls="local")], [pv("v", node="n2", cls="local")],
                     {"n1": vb.ERR_BIND_CONFLICT, "n2": None}, id="static-pv-on-its-node"),
        pytest.param([claim("c", cls="local", size="2Gi")], [pv("v", node="n1", cls="local")],
                     {"n1": vb.ERR_BIND_CONFLICT}, id="static-pv-too-small"),
        pytest.param([claim("c", cls="local")], [pv("v", node="n1", cls="local", phase="Released")],
                     {"n1": vb.ERR_BIND_CONFLICT}, id="static-pv-released"),
        pytest.param([claim("c", **{vb.SELECTED_NODE_ANN: "n2"})], [],
                     {"n1": vb.ERR_BIND_CONFLICT, "n2": None}, id="provisioning-under-way-on-n2"),
        pytest.param([claim("c", volume="v"), claim("d")], [pv("v", node="n1")], {"n3": vb.ERR_NODE_CONFLICT},
                     id="both-reasons-count-once-each"),
    ],
)  # fmt: skip
def test_filter(claims: list[Any], pvs: list[Any], nodes: dict[str, str | None]) -> None:
    p = plugin(claims, pvs, csinodes=("n1", "n2", "za", "zb"))
    the_pod = pod(*(c["metadata"]["name"] for c in claims))
    state = CycleState()
    assert p.pre_filter(state, the_pod, []).is_success()
    got = {}
    for name, reason in nodes.items():
        labels = {"zone": name[1]} if name.startswith("z") else {}
        status = p.filter(state, the_pod, node(name, **labels))
        got[name] = None if status.is_success() else status.reasons[0]
        if reason is not None:
            assert status.code == Code.UNSCHEDULABLE_AND_UNRESOLVABLE
    assert got == nodes


def test_two_reasons() -> None:
    p = plugin([claim("c", volume="v"), claim("d", cls="local")], [pv("v", node="n1")])
    state = CycleState()
    the_pod = pod("c", "d")
    p.pre_filter(state, the_pod, [])
    assert p.filter(state, the_pod, node("n2")).reasons == (vb.ERR_NODE_CONFLICT, vb.ERR_BIND_CONFLICT)


def test_smallest_fitting_pv_is_chosen_and_assumed_until_unreserve() -> None:
    pvs = [
        pv("big", cls="local", size="5Gi"),
        pv("small", cls="local", size="1Gi"),
        pv("tiny", cls="local", size="1Mi"),
    ]
    p = plugin([claim("c", cls="local"), claim("d", cls="local")], pvs)
    state = CycleState()
    first = pod("c")
    p.pre_filter(state, first, [])
    assert p.filter(state, first, node("n1")).is_success()
    assert p.reserve(state, first, "n1").is_success()
    assert p.assumed == {"small": "ns/c"}
    assert p.pre_bind(state, first, "n1").is_success()
    work = vb.recorded_work(state)
    assert work is not None and [v["metadata"]["name"] for _, v in work.static] == ["small"]
    assert work.provision == () and work.claims == ("ns/c",) and work.node_name == "n1"

    # The next pod cannot take the assumed PV: it gets the bigger one.
    other = CycleState()
    second = {**pod("d"), "metadata": {"name": "q", "namespace": "ns"}}
    p.pre_filter(other, second, [])
    p.filter(other, second, node("n1"))
    p.reserve(other, second, "n1")
    assert p.assumed == {"small": "ns/c", "big": "ns/d"}
    p.unreserve(state, first, "n1")
    assert p.assumed == {"big": "ns/d"} and vb.recorded_work(state) is None
    p.forget_bound(["ns/d"])
    assert p.assumed == {}


def test_provisioning_work_names_the_node() -> None:
    p = plugin([claim("c"), claim("b", volume="v")], [pv("v", phase="Bound")])
    state = CycleState()
    the_pod = pod("c", "b")
    p.pre_filter(state, the_pod, [])
    p.filter(state, the_pod, node("n2"))
    p.reserve(state, the_pod, "n2")
    p.pre_bind(state, the_pod, "n2")
    work = vb.recorded_work(state)
    assert work is not None
    assert [c["metadata"]["name"] for c in work.provision] == ["c"]
    assert work.claims == ("ns/c",) and work.node_name == "n2"


def test_all_bound_leaves_no_work() -> None:
    p = plugin([claim("c", volume="v")], [pv("v")])
    state = CycleState()
    p.pre_filter(state, pod("c"), [])
    p.filter(state, pod("c"), node("n1"))
    p.reserve(state, pod("c"), "n1")
    p.pre_bind(state, pod("c"), "n1")
    assert vb.recorded_work(state) is None


def test_ephemeral_volume_claim_name() -> None:
    the_pod = {"metadata": {"name": "web"}, "spec": {"volumes": [{"name": "scratch", "ephemeral": {}}]}}
    assert vb.claim_names(the_pod) == ["web-scratch"]
