"""The Node object the agent registers and keeps updated, and its heartbeat Lease.

``node_object(machine, health, now)`` builds the Node for registration; ``node_status(machine, health,
previous, now)`` the ``status`` for each update. Conditions follow the kubelet's setters: MemoryPressure,
DiskPressure, PIDPressure, Ready, in that order, with its reasons and messages; ``lastHeartbeatTime`` is
``now`` on every update, ``lastTransitionTime`` moves only when a condition's status changes.
``lease_object`` is the coordination.k8s.io/v1 Lease in ``kube-node-lease`` renewed every
``RENEW_INTERVAL`` (``renew_due``). Machine facts (cpu count or Ray's CPUs, memory, disk, os-release,
ids) are gathered by the caller and passed in as a ``MachineInfo`` value: no I/O, no clock here.
NotReady after the agent stops is set by the API side's node lifecycle controller, not here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from cluster.machinery.quantity import parse_quantity
from cluster.machinery.times import rfc3339, rfc3339_micro

LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
RENEW_INTERVAL = timedelta(seconds=10)
DEFAULT_MAX_PODS = 110
_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm"}


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """Facts about the node, gathered by the caller (os.cpu_count or Ray, /proc, /etc/os-release)."""

    node_name: str
    internal_ips: tuple[str, ...]
    hostname: str
    cpu: str  # a quantity: "2", "1500m" (Ray's CPU resource may be fractional)
    memory_bytes: int
    ephemeral_storage_bytes: int
    kernel_version: str = ""
    os_image: str = ""
    architecture: str = "amd64"  # Go's GOARCH name; ``go_arch`` maps uname's
    operating_system: str = "linux"
    machine_id: str = ""
    boot_id: str = ""
    system_uuid: str = ""
    container_runtime_version: str = "process://0.1"
    kubelet_version: str = "v1.30.0-raykube"
    instance_type: str = ""
    max_pods: int = DEFAULT_MAX_PODS
    kubelet_port: int = 10250
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    extended_resources: Mapping[str, str] = field(default_factory=dict)  # nvidia.com/gpu from Ray's GPUs


@dataclass(frozen=True, slots=True)
class Reserved:
    """What allocatable holds back: system-reserved + kube-reserved + hard eviction thresholds."""

    cpu: str = "0"
    memory: str = "0"
    ephemeral_storage: str = "0"


@dataclass(frozen=True, slots=True)
class NodeHealth:
    """What the agent observed; non-empty ``*_errors`` make the node NotReady with those messages."""

    memory_pressure: bool = False
    disk_pressure: bool = False
    pid_pressure: bool = False
    runtime_errors: tuple[str, ...] = ()
    network_errors: tuple[str, ...] = ()
    storage_errors: tuple[str, ...] = ()


def go_arch(uname_machine: str) -> str:
    """uname's machine (``x86_64``) as Kubernetes names it (``amd64``)."""
    return _ARCH.get(uname_machine, uname_machine)


def parse_os_release(text: str) -> str:
    """PRETTY_NAME from /etc/os-release's text (the kubelet's ``osImage``), or ``Linux``."""
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "PRETTY_NAME":
            return value.strip().strip('"').strip("'")
    return "Linux"


def _kib(n: int) -> str:
    return f"{n // 1024}Ki"


def _quantity_text(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{int(value * 1000)}m"


def capacity(machine: MachineInfo) -> dict[str, str]:
    """The node's capacity in the kubelet's units (memory in Ki, storage in bytes), with the
    extended resources (device plugins' in the kubelet; Ray's GPUs here) after the built-in ones."""
    return {
        "cpu": _quantity_text(Fraction(parse_quantity(machine.cpu))),
        "ephemeral-storage": _kib(machine.ephemeral_storage_bytes),
        "hugepages-1Gi": "0",
        "hugepages-2Mi": "0",
        "memory": _kib(machine.memory_bytes),
        "pods": str(machine.max_pods),
        **machine.extended_resources,
    }


def allocatable(machine: MachineInfo, reserved: Reserved = Reserved()) -> dict[str, str]:
    """Capacity minus reserved, never below zero."""
    cap = capacity(machine)
    cpu = max(Fraction(parse_quantity(cap["cpu"])) - Fraction(parse_quantity(reserved.cpu)), Fraction(0))
    memory = max(machine.memory_bytes - int(parse_quantity(reserved.memory)), 0)
    storage = max(machine.ephemeral_storage_bytes - int(parse_quantity(reserved.ephemeral_storage)), 0)
    out = dict(cap)
    out["cpu"] = _quantity_text(Fraction(int(cpu * 1000), 1000))
    out["memory"] = _kib(memory)
    out["ephemeral-storage"] = str(storage)  # the kubelet prints allocatable storage in bytes
    return out


def labels(machine: MachineInfo) -> dict[str, str]:
    """The well-known node labels (and the caller's extras)."""
    out = {
        "beta.kubernetes.io/arch": machine.architecture,
        "beta.kubernetes.io/os": machine.operating_system,
        "kubernetes.io/arch": machine.architecture,
        "kubernetes.io/hostname": machine.hostname,
        "kubernetes.io/os": machine.operating_system,
    }
    if machine.instance_type:
        out["node.kubernetes.io/instance-type"] = machine.instance_type
        out["beta.kubernetes.io/instance-type"] = machine.instance_type
    out.update(machine.extra_labels)
    return out


_PRESSURE = (
    (
        "MemoryPressure",
        "memory_pressure",
        ("KubeletHasInsufficientMemory", "kubelet has insufficient memory available"),
        ("KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ),
    (
        "DiskPressure",
        "disk_pressure",
        ("KubeletHasDiskPressure", "kubelet has disk pressure"),
        ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ),
    (
        "PIDPressure",
        "pid_pressure",
        ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
        ("KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ),
)


def _aggregate(errors: Sequence[str]) -> str:
    """Go's utilerrors aggregate text: one error as is, several as ``[a, b]``."""
    return errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"


def node_conditions(
    health: NodeHealth, previous: Sequence[Mapping[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """The four kubelet conditions; transition times kept from ``previous`` while status is unchanged."""
    old = {c.get("type"): c for c in previous}
    out: list[dict[str, Any]] = []
    for ctype, attr, (bad_reason, bad_msg), (ok_reason, ok_msg) in _PRESSURE:
        bad = bool(getattr(health, attr))
        out.append(
            _condition(
                ctype,
                "True" if bad else "False",
                bad_reason if bad else ok_reason,
                bad_msg if bad else ok_msg,
                old.get(ctype),
                now,
            )
        )
    errors = [*health.runtime_errors, *health.network_errors, *health.storage_errors]
    if errors:
        ready = _condition("Ready", "False", "KubeletNotReady", _aggregate(errors), old.get("Ready"), now)
    else:
        ready = _condition(
            "Ready", "True", "KubeletReady", "kubelet is posting ready status", old.get("Ready"), now
        )
    out.append(ready)
    return out


def _condition(
    ctype: str, status: str, reason: str, message: str, old: Mapping[str, Any] | None, now: datetime
) -> dict[str, Any]:
    kept = old is not None and old.get("status") == status and old.get("lastTransitionTime")
    return {
        "type": ctype,
        "status": status,
        "lastHeartbeatTime": rfc3339(now),
        "lastTransitionTime": old["lastTransitionTime"] if kept and old is not None else rfc3339(now),
        "reason": reason,
        "message": message,
    }


def node_status(
    machine: MachineInfo,
    health: NodeHealth,
    previous: Mapping[str, Any] | None,
    now: datetime,
    reserved: Reserved = Reserved(),
) -> dict[str, Any]:
    """The Node's full ``status``; ``previous`` is the Node's current status (or None)."""
    addresses = [{"type": "InternalIP", "address": ip} for ip in machine.internal_ips]
    addresses.append({"type": "Hostname", "address": machine.hostname})
    return {
        "capacity": capacity(machine),
        "allocatable": allocatable(machine, reserved),
        "conditions": node_conditions(health, (previous or {}).get("conditions") or (), now),
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": machine.kubelet_port}},
        "nodeInfo": {
            "machineID": machine.machine_id,
            "systemUUID": machine.system_uuid,
            "bootID": machine.boot_id,
            "kernelVersion": machine.kernel_version,
            "osImage": machine.os_image,
            "containerRuntimeVersion": machine.container_runtime_version,
            "kubeletVersion": machine.kubelet_version,
            "kubeProxyVersion": "",
            "operatingSystem": machine.operating_system,
            "architecture": machine.architecture,
        },
    }


def node_object(
    machine: MachineInfo, health: NodeHealth, now: datetime, reserved: Reserved = Reserved()
) -> dict[str, Any]:
    """The Node to create at registration (the API server fills uid and the rest of metadata)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": machine.node_name,
            "labels": labels(machine),
            "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true"},
        },
        "spec": {},
        "status": node_status(machine, health, None, now, reserved),
    }


def lease_object(node_name: str, node_uid: str, now: datetime) -> dict[str, Any]:
    """The node's Lease, owned by its Node (so it goes when the Node is deleted)."""
    meta: dict[str, Any] = {"name": node_name, "namespace": LEASE_NAMESPACE}
    if node_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {
            "holderIdentity": node_name,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": rfc3339_micro(now),
        },
    }


def renewed(lease: Mapping[str, Any], node_name: str, now: datetime) -> dict[str, Any]:
    """``lease`` with our holder identity and ``renewTime`` = now (other fields, resourceVersion kept)."""
    spec = dict(lease.get("spec") or {})
    spec.update(
        holderIdentity=node_name, leaseDurationSeconds=LEASE_DURATION_SECONDS, renewTime=rfc3339_micro(now)
    )
    return {**lease, "spec": spec}


def renew_due(last_renew: datetime | None, now: datetime, interval: timedelta = RENEW_INTERVAL) -> bool:
    """Whether to renew the Lease now."""
    return last_renew is None or now - last_renew >= interval
