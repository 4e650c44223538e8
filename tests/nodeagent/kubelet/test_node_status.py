"""node_status: capacity/allocatable, labels, nodeInfo, kubelet's condition texts and times, the Lease."""

from __future__ import annotations

from typing import Any

import pytest

from nodeagent.kubelet.node_status import (
    MachineInfo,
    NodeHealth,
    Reserved,
    allocatable,
    capacity,
    go_arch,
    lease_object,
    node_conditions,
    node_object,
    parse_os_release,
    renew_due,
    renewed,
)
from tests.nodeagent.kubelet.helpers import T0, at

GiB = 1024**3
M = MachineInfo(
    node_name="node-a",
    internal_ips=("10.0.0.5",),
    hostname="node-a",
    cpu="2",
    memory_bytes=8 * GiB,
    ephemeral_storage_bytes=100 * GiB,
    kernel_version="6.18.0",
    os_image="Debian GNU/Linux 12 (bookworm)",
    machine_id="m",
    boot_id="b",
    system_uuid="s",
    container_runtime_version="containerd://1.6.20",
    instance_type="ray.node",
)


def test_capacity_and_allocatable() -> None:
    assert capacity(M) == {
        "cpu": "2",
        "ephemeral-storage": f"{100 * 1024 * 1024}Ki",
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": f"{8 * 1024 * 1024}Ki",
        "pods": "110",
    }
    alloc = allocatable(M, Reserved(cpu="100m", memory="1Gi", ephemeral_storage="10Gi"))
    assert (alloc["cpu"], alloc["memory"], alloc["ephemeral-storage"]) == (
        "1900m",
        f"{7 * 1024 * 1024}Ki",
        str(90 * GiB),
    )


def test_extended_resources_in_capacity_and_allocatable() -> None:
    machine = MachineInfo("n", (), "n", "2", GiB, GiB, extended_resources={"nvidia.com/gpu": "4"})
    assert capacity(machine)["nvidia.com/gpu"] == "4"
    assert allocatable(machine)["nvidia.com/gpu"] == "4"
    assert "nvidia.com/gpu" not in capacity(M)


def test_fractional_ray_cpu() -> None:
    assert capacity(MachineInfo("n", (), "n", "1.5", GiB, GiB))["cpu"] == "1500m"


def test_node_object_labels_addresses_info() -> None:
    node = node_object(M, NodeHealth(), T0)
    assert node["metadata"]["labels"] == {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": "node-a",
        "kubernetes.io/os": "linux",
        "node.kubernetes.io/instance-type": "ray.node",
        "beta.kubernetes.io/instance-type": "ray.node",
    }
    status = node["status"]
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "10.0.0.5"},
        {"type": "Hostname", "address": "node-a"},
    ]
    assert status["nodeInfo"]["containerRuntimeVersion"] == "containerd://1.6.20"
    assert status["nodeInfo"]["osImage"] == "Debian GNU/Linux 12 (bookworm)"
    assert [c["type"] for c in status["conditions"]] == [
        "MemoryPressure",
        "DiskPressure",
        "PIDPressure",
        "Ready",
    ]


@pytest.mark.parametrize(
    ("health", "ctype", "status", "reason", "message"),
    [
        pytest.param(
            NodeHealth(), "Ready", "True", "KubeletReady", "kubelet is posting ready status", id="ready"
        ),
        pytest.param(
            NodeHealth(runtime_errors=("container runtime is down",)),
            "Ready",
            "False",
            "KubeletNotReady",
            "container runtime is down",
            id="not-ready-one",
        ),
        pytest.param(
            NodeHealth(runtime_errors=("a",), network_errors=("b",)),
            "Ready",
            "False",
            "KubeletNotReady",
            "[a, b]",
            id="not-ready-aggregate",
        ),
        pytest.param(
            NodeHealth(),
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            id="memory-ok",
        ),
        pytest.param(
            NodeHealth(memory_pressure=True),
            "MemoryPressure",
            "True",
            "KubeletHasInsufficientMemory",
            "kubelet has insufficient memory available",
            id="memory-pressure",
        ),
        pytest.param(
            NodeHealth(),
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            id="disk",
        ),
        pytest.param(
            NodeHealth(disk_pressure=True),
            "DiskPressure",
            "True",
            "KubeletHasDiskPressure",
            "kubelet has disk pressure",
            id="disk-pressure",
        ),
        pytest.param(
            NodeHealth(),
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            id="pid",
        ),
    ],
)
def test_conditions(health: NodeHealth, ctype: str, status: str, reason: str, message: str) -> None:
    c = next(c for c in node_conditions(health, [], T0) if c["type"] == ctype)
    assert (c["status"], c["reason"], c["message"]) == (status, reason, message)


def test_heartbeat_moves_transition_only_on_change() -> None:
    first = node_conditions(NodeHealth(), [], T0)
    second = node_conditions(NodeHealth(), first, at(10))
    ready = second[-1]
    assert (ready["lastHeartbeatTime"], ready["lastTransitionTime"]) == (
        "2026-01-01T12:00:10Z",
        "2026-01-01T12:00:00Z",
    )
    third = node_conditions(NodeHealth(runtime_errors=("x",)), second, at(20))
    assert third[-1]["lastTransitionTime"] == "2026-01-01T12:00:20Z"
    assert third[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"  # MemoryPressure unchanged


def test_lease() -> None:
    lease = lease_object("node-a", "uid-n", at(0.5))
    assert lease["apiVersion"] == "coordination.k8s.io/v1"
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-n"
    assert lease["spec"] == {
        "holderIdentity": "node-a",
        "leaseDurationSeconds": 40,
        "renewTime": "2026-01-01T12:00:00.500000Z",
    }
    stored: dict[str, Any] = {**lease, "metadata": {**lease["metadata"], "resourceVersion": "7"}}
    again = renewed(stored, "node-a", at(10))
    assert again["metadata"]["resourceVersion"] == "7"
    assert again["spec"]["renewTime"] == "2026-01-01T12:00:10.000000Z"


@pytest.mark.parametrize(
    ("last", "now", "want"),
    [
        pytest.param(None, 0, True, id="never"),
        pytest.param(0, 9.9, False, id="too-soon"),
        pytest.param(0, 10, True, id="ten-seconds"),
    ],
)
def test_renew_due(last: float | None, now: float, want: bool) -> None:
    assert renew_due(None if last is None else at(last), at(now)) is want


@pytest.mark.parametrize(
    ("text", "want"),
    [
        pytest.param(
            'NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
            "Debian GNU/Linux 12 (bookworm)",
            id="debian",
        ),
        pytest.param("ID=alpine\n", "Linux", id="no-pretty-name"),
    ],
)
def test_os_release(text: str, want: str) -> None:
    assert parse_os_release(text) == want


@pytest.mark.parametrize(("m", "want"), [("x86_64", "amd64"), ("aarch64", "arm64"), ("riscv64", "riscv64")])
def test_go_arch(m: str, want: str) -> None:
    assert go_arch(m) == want
