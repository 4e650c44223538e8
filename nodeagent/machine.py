"""What the node agent reports about its machine: cpu, memory, disk, OS and ids, as a ``MachineInfo``.

The only module of the agent that reads the host (``/proc/meminfo``, ``/etc/os-release``, ``uname``,
``statvfs`` of the data dir, machine and boot ids). Ray's view wins where it has one: a Ray node that
was started with ``--num-cpus 2`` offers 2 cpus to pods even on a bigger machine. Missing files give
empty values, never an error (containers and VMs lack some of them).
"""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path

from nodeagent.kubelet.node_status import MachineInfo, go_arch, parse_os_release

KUBELET_VERSION = "v1.30.0-raykube"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def memory_bytes() -> int:
    """MemTotal from /proc/meminfo (0 when unreadable)."""
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            return int(parts[1]) * 1024 if len(parts) > 1 and parts[1].isdigit() else 0
    return 0


def disk_bytes(path: str) -> int:
    """The size of the filesystem holding ``path`` (where pod logs and runtime state live)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return 0
    return stat.f_blocks * stat.f_frsize


def cpu_quantity(ray_cpus: float | None) -> str:
    """Ray's CPU resource when given (may be fractional: ``1500m``), else the machine's count."""
    if ray_cpus is None or ray_cpus <= 0:
        return str(os.cpu_count() or 1)
    millis = round(ray_cpus * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def gather(
    node_name: str,
    internal_ips: list[str],
    data_dir: str,
    *,
    runtime_version: str,
    ray_cpus: float | None = None,
    ray_memory: float | None = None,
    extra_labels: dict[str, str] | None = None,
    instance_type: str = "",
    extended_resources: dict[str, str] | None = None,
) -> MachineInfo:
    """This machine's ``MachineInfo`` for ``node_name`` (see the module docstring)."""
    os_image = parse_os_release(_read("/etc/os-release"))
    uname = platform.uname()
    memory = memory_bytes()
    if ray_memory:
        memory = min(memory, int(ray_memory)) if memory else int(ray_memory)
    return MachineInfo(
        node_name=node_name,
        internal_ips=tuple(internal_ips),
        hostname=socket.gethostname(),
        cpu=cpu_quantity(ray_cpus),
        memory_bytes=memory,
        ephemeral_storage_bytes=disk_bytes(data_dir),
        kernel_version=uname.release,
        os_image=os_image,
        architecture=go_arch(uname.machine),
        operating_system="linux",
        machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        system_uuid=_read("/sys/class/dmi/id/product_uuid"),
        container_runtime_version=runtime_version,
        kubelet_version=KUBELET_VERSION,
        instance_type=instance_type,
        extra_labels=dict(extra_labels or {}),
        extended_resources=dict(extended_resources or {}),
    )
