"""The node agent stops -> the node goes NotReady (and unreachable-tainted); `raykube up` brings it back.
Also: the control-plane components show as pods in kube-system and come back when deleted.

Runs on the session cluster (node monitor grace 15 s, see conftest) and leaves it as it found it:
the agent is restarted by `raykube up`, which is idempotent.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import subprocess
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

UNREACHABLE = "node.kubernetes.io/unreachable"


wait_until = functools.partial(support.wait_until, timeout=90.0, every=1.0)


def real_node(admin: Kubectl) -> dict[str, Any]:
    """The node with a running agent (hollow nodes from other tests have no kubelet port)."""
    nodes = admin.json("get", "nodes", namespaced=False)["items"]
    real = [
        n for n in nodes if (n["status"].get("daemonEndpoints") or {}).get("kubeletEndpoint", {}).get("Port")
    ]
    assert real, [n["metadata"]["name"] for n in nodes]
    return real[0]


def status_column(admin: Kubectl, name: str) -> str:
    for line in admin.out("get", "nodes", namespaced=False).splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == name:
            return fields[1]
    return ""


@pytest.mark.timeout(300)
def test_node_goes_not_ready_when_its_agent_stops_and_ready_again(raykube_cluster: RaykubeCluster) -> None:
    admin = Kubectl(raykube_cluster, "1.33", None)
    name = real_node(admin)["metadata"]["name"]
    assert status_column(admin, name) == "Ready"
    support.stop_agent(name, raykube_cluster.env["RAYKUBE_NAMESPACE"], env=raykube_cluster.env)
    wait_until(lambda: status_column(admin, name) == "NotReady", "NotReady")
    node = admin.json("get", "node", name, namespaced=False)
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("Unknown", "NodeStatusUnknown")
    assert ready["message"] == "Kubelet stopped posting node status."
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
    assert {(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")} <= taints

    up = subprocess.run(
        [*RAYKUBE, "up", "--port", "0", "--data-dir", str(raykube_cluster.data_dir)],
        env=raykube_cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    wait_until(lambda: status_column(admin, name) == "Ready", "Ready again")
    wait_until(
        lambda: (
            not any(
                t["key"] == UNREACHABLE
                for t in admin.json("get", "node", name, namespaced=False)["spec"].get("taints") or []
            )
        ),
        "taints removed",
    )


def test_control_plane_components_are_pods_in_kube_system(raykube_cluster: RaykubeCluster) -> None:
    admin = Kubectl(raykube_cluster, "1.33", "kube-system")
    node = real_node(admin)["metadata"]["name"]
    wanted = {f"{c}-{node}" for c in ("kube-apiserver", "kube-scheduler", "kube-controller-manager", "etcd")}

    def running() -> dict[str, Any]:
        pods = {p["metadata"]["name"]: p for p in admin.json("get", "pods")["items"]}
        ok = all(pods.get(n, {}).get("status", {}).get("phase") == "Running" for n in wanted)
        return pods if ok else {}

    pods = wait_until(running, "control-plane pods Running")
    for name in wanted:
        pod = pods[name]
        assert pod["spec"]["nodeName"] == node
        assert pod["metadata"]["annotations"]["raykube.io/ray-actor"]
        assert next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
    old_uid = pods[f"kube-scheduler-{node}"]["metadata"]["uid"]
    admin.run("delete", "pod", f"kube-scheduler-{node}", "--wait=false")

    def recreated() -> bool:
        found = admin.run("get", "pod", f"kube-scheduler-{node}", "-o", "json", check=False)
        return found.returncode == 0 and f'"uid": "{old_uid}"' not in found.stdout

    wait_until(recreated, "kube-scheduler pod recreated", timeout=60)


@pytest.mark.timeout(180)
def test_every_node_gets_a_pod_cidr_inside_the_cluster_cidr(raykube_cluster: RaykubeCluster) -> None:
    """The node IPAM controller (default cluster CIDR 10.244.0.0/16, kept in cluster.json) gives each
    Node its own /24 in spec.podCIDR and spec.podCIDRs."""
    admin = Kubectl(raykube_cluster, "1.33", None)
    cluster = ipaddress.ip_network("10.244.0.0/16")
    saved = json.loads((raykube_cluster.data_dir / "cluster.json").read_text())
    assert saved["cluster_cidr"] == str(cluster)

    def all_assigned() -> list[tuple[str, str, list[str]]]:
        nodes = admin.json("get", "nodes", namespaced=False)["items"]
        got = [
            (n["metadata"]["name"], n["spec"].get("podCIDR", ""), n["spec"].get("podCIDRs", []))
            for n in nodes
        ]
        return got if nodes and all(cidr for _, cidr, _ in got) else []

    nodes = wait_until(all_assigned, "a podCIDR on every node")
    for name, cidr, cidrs in nodes:
        net = ipaddress.ip_network(cidr)
        assert net.subnet_of(cluster) and net.prefixlen == 24, (name, cidr)
        assert cidrs == [cidr], (name, cidrs)
    assert len({cidr for _, cidr, _ in nodes}) == len(nodes), nodes  # no two nodes share one
