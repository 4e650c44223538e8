"""The scheduler actor through the real kubectl: hollow nodes, pods placed as Kubernetes would.

Nodes are cluster-scoped, so they carry this run's name prefix and a NoSchedule taint that only this
test's pods tolerate (other tests' pending pods never land on them), and they are deleted at the end.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections import Counter
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kubectl

ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


def node_manifest(
    name: str, zone: str, run_taint: dict[str, str], labels: dict[str, str], taints: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {HOSTNAME: name, ZONE: zone, **labels}},
        "spec": {"taints": [run_taint, *taints]},
    }


def node_status(cpu: str) -> dict[str, Any]:
    resources = {"cpu": cpu, "memory": "16Gi", "pods": "110"}
    return {
        "status": {
            "capacity": resources,
            "allocatable": resources,
            "conditions": [
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "hollow"}
            ],
        }
    }


def pod_manifest(
    name: str,
    run_toleration: dict[str, str],
    cpu: str = "100m",
    labels: dict[str, str] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    tolerations = [run_toleration, *spec.pop("tolerations", [])]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "nginx:1.26",
                    "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}},
                }
            ],
            "tolerations": tolerations,
            **spec,
        },
    }


def add_nodes(kubectl: Kubectl, nodes: list[tuple[dict[str, Any], str]]) -> None:
    kubectl.apply(yaml.safe_dump_all([n for n, _ in nodes]))
    for node, cpu in nodes:
        kubectl.run(
            "patch", "node", node["metadata"]["name"], "--subresource=status", "--type=merge",
            "-p", json.dumps(node_status(cpu)), namespaced=False,
        )  # fmt: skip


def placements(kubectl: Kubectl) -> dict[str, str]:
    pods = kubectl.json("get", "pods")["items"]
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in pods}


def wait_for(kubectl: Kubectl, names: list[str], timeout: float = 30.0) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        placed = placements(kubectl)
        if all(placed.get(n) for n in names) or time.monotonic() > deadline:
            return placed
        time.sleep(0.5)


@pytest.mark.timeout(180)
def test_pods_land_where_kubernetes_puts_them(kubectl: Kubectl) -> None:
    p = f"sched-{secrets.token_hex(3)}"
    z1, z2, z3 = f"{p}-z1", f"{p}-z2", f"{p}-z3"
    run_taint = {"key": "raykube.test/run", "value": p, "effect": "NoSchedule"}
    run_toleration = {"key": "raykube.test/run", "operator": "Equal", "value": p, "effect": "NoSchedule"}
    gpu_taint = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}
    a, b, c, d, e = (f"{p}-{x}" for x in "abcde")
    nodes = [
        (node_manifest(a, z1, run_taint, {"disk": "ssd"}, []), "4"),
        (node_manifest(b, z1, run_taint, {"disk": "hdd"}, []), "4"),
        (node_manifest(c, z2, run_taint, {}, [gpu_taint]), "4"),
        (node_manifest(d, z2, run_taint, {}, []), "4"),
    ]
    try:
        add_nodes(kubectl, nodes)
        anti_term = {
            "labelSelector": {"matchLabels": {"app": "anti"}},
            "topologyKey": HOSTNAME,
        }
        spread = [
            {
                "maxSkew": 1,
                "topologyKey": ZONE,
                "whenUnsatisfiable": "DoNotSchedule",
                "labelSelector": {"matchLabels": {"app": "spread"}},
            }
        ]
        pods = [
            pod_manifest("selector", run_toleration, nodeSelector={"disk": "ssd"}),
            pod_manifest(
                "tolerating",
                run_toleration,
                nodeSelector={HOSTNAME: c},
                tolerations=[
                    {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}
                ],
            ),
            pod_manifest(
                "affinity",
                run_toleration,
                affinity={
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}
                            ]
                        }
                    }
                },
            ),
            *(
                pod_manifest(
                    f"anti-{i}",
                    run_toleration,
                    labels={"app": "anti"},
                    nodeSelector={ZONE: z1},
                    affinity={
                        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [anti_term]}
                    },
                )
                for i in range(2)
            ),
            *(
                pod_manifest(
                    f"spread-{i}", run_toleration, labels={"app": "spread"}, topologySpreadConstraints=spread
                )
                for i in range(4)
            ),
            pod_manifest("big", run_toleration, cpu="16"),
        ]
        kubectl.apply(yaml.safe_dump_all(pods))
        names = [pod["metadata"]["name"] for pod in pods if pod["metadata"]["name"] != "big"]
        placed = wait_for(kubectl, names)

        assert placed["selector"] == a
        assert placed["tolerating"] == c
        assert placed["affinity"] == b
        assert {placed["anti-0"], placed["anti-1"]} == {a, b}
        zone_of = {a: z1, b: z1, c: z2, d: z2}
        assert Counter(zone_of.get(placed[f"spread-{i}"]) for i in range(4)) == {z1: 2, z2: 2}
        assert all(placed[f"spread-{i}"] != c for i in range(4))  # untolerated taint
        assert placed["big"] == ""

        described = kubectl.out("describe", "pod", "big")
        for _ in range(20):
            if "FailedScheduling" in described:
                break
            time.sleep(0.5)
            described = kubectl.out("describe", "pod", "big")
        assert "FailedScheduling" in described and "default-scheduler" in described
        # every node counts, the session's real node (2 cpu, untainted) among them
        total = len(kubectl.json("get", "nodes", namespaced=False)["items"])
        assert total >= 4
        assert re.search(rf"0/{total} nodes are available: .*Insufficient cpu", described), described
        assert "1 node(s) had untolerated taint {dedicated: gpu}" in described
        condition = next(
            cond
            for cond in kubectl.json("get", "pod", "big")["status"]["conditions"]
            if cond["type"] == "PodScheduled"
        )
        assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")

        add_nodes(kubectl, [(node_manifest(e, z3, run_taint, {}, []), "32")])
        assert wait_for(kubectl, ["big"])["big"] == e
        events = kubectl.json("get", "events", "--field-selector", "involvedObject.name=big")["items"]
        assert any(
            ev["reason"] == "Scheduled"
            and ev["message"] == f"Successfully assigned {kubectl.namespace}/big to {e}"
            for ev in events
        )
    finally:
        kubectl.run("delete", "node", a, b, c, d, e, "--wait=false", "--ignore-not-found", namespaced=False,
                    check=False)  # fmt: skip


def pod_scheduled(kubectl: Kubectl, name: str) -> dict[str, Any]:
    pod = kubectl.json("get", "pod", name)
    return next(c for c in pod["status"].get("conditions", []) if c["type"] == "PodScheduled")


@pytest.mark.timeout(180)
def test_gated_pod_waits_until_kubectl_patch_removes_its_gate(kubectl: Kubectl) -> None:
    p = f"gates-{secrets.token_hex(3)}"
    run_taint = {"key": "raykube.test/run", "value": p, "effect": "NoSchedule"}
    run_toleration = {"key": "raykube.test/run", "operator": "Equal", "value": p, "effect": "NoSchedule"}
    node = f"{p}-n"
    try:
        add_nodes(kubectl, [(node_manifest(node, f"{p}-z", run_taint, {}, []), "4")])
        only_here = {HOSTNAME: node}
        gated = pod_manifest("gated", run_toleration, nodeSelector=only_here,
                             schedulingGates=[{"name": "example.com/quota"}])  # fmt: skip
        free = pod_manifest("free", run_toleration, nodeSelector=only_here)
        kubectl.apply(yaml.safe_dump_all([gated, free]))
        # The scheduler is live (it binds the ungated pod) and still leaves the gated one alone.
        assert wait_for(kubectl, ["free"])["free"] == node
        time.sleep(2.0)
        assert placements(kubectl)["gated"] == ""
        row = kubectl.out("get", "pod", "gated", "--no-headers").split()
        assert row[2] == "SchedulingGated", row
        condition = pod_scheduled(kubectl, "gated")
        assert (condition["status"], condition["reason"], condition["message"]) == (
            "False",
            "SchedulingGated",
            "Scheduling is blocked due to non-empty scheduling gates",
        )
        events = kubectl.json("get", "events", "--field-selector", "involvedObject.name=gated")["items"]
        assert not [ev for ev in events if ev["reason"] == "FailedScheduling"]

        add_gate = [{"op": "add", "path": "/spec/schedulingGates/-", "value": {"name": "x"}}]
        refused = kubectl.fails("patch", "pod", "gated", "--type=json", "-p", json.dumps(add_gate))
        forbidden = "only deletion is allowed, but found new scheduling gate 'x'"
        assert f"spec.schedulingGates[1].name: Forbidden: {forbidden}" in refused, refused

        kubectl.run("patch", "pod", "gated", "--type=json",
                    "-p", json.dumps([{"op": "remove", "path": "/spec/schedulingGates"}]))  # fmt: skip
        assert wait_for(kubectl, ["gated"])["gated"] == node
        assert pod_scheduled(kubectl, "gated")["status"] == "True"
        events = kubectl.json("get", "events", "--field-selector", "involvedObject.name=gated")["items"]
        assert any(ev["reason"] == "Scheduled" for ev in events)
    finally:
        kubectl.run("delete", "pod", "gated", "free", "--wait=false", "--ignore-not-found", check=False)
        kubectl.run(
            "delete", "node", node, "--wait=false", "--ignore-not-found", namespaced=False, check=False
        )
