"""CRI requests for a pod, and the runtime's answers read back as the cores' values.

Pure builders: ``sandbox_config`` (hostname = pod name, the pod's DNS as ``dns_config``, log directory
``<logs>/<ns>_<name>_<uid>``,
labels ``io.kubernetes.pod.{name,namespace,uid}`` plus our node label, the pod's annotations) and
``container_config`` (argv/env/workingDir from ``container_env``, ``log_path`` =
``<container>/<attempt>.log`` relative to the sandbox's log directory as the kubelet writes it,
labels ``io.kubernetes.container.name`` and the spec hash, cgroup limits from the resources).
``read_view`` is the one I/O helper: it asks the runtime (ListPodSandbox, PodSandboxStatus,
ListContainers, ContainerStatus) for one pod's ``PodRuntimeView``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from cluster.machinery.meta import object_meta
from cluster.machinery.quantity import QuantityError, parse_quantity
from nodeagent.cri import api_pb2
from nodeagent.cri.client import CRIClient, NotFound
from nodeagent.kubelet.container_env import ContainerCommand
from nodeagent.kubelet.cri_logs import pod_log_dir
from nodeagent.kubelet.dns import ResolvConf
from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer, Sandbox, container_hash

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
POD_UID = "io.kubernetes.pod.uid"
CONTAINER_NAME = "io.kubernetes.container.name"
CONTAINER_HASH = "io.kubernetes.container.hash"
RESTART_COUNT = "io.kubernetes.container.restartCount"
NODE_LABEL = "raykube.io/node-name"
_STATES = {
    api_pb2.CONTAINER_CREATED: "created",
    api_pb2.CONTAINER_RUNNING: "running",
    api_pb2.CONTAINER_EXITED: "exited",
}


def log_directory(logs_root: str, pod: Mapping[str, Any]) -> str:
    m = object_meta(pod)
    return pod_log_dir(logs_root, m.get("namespace", ""), m.get("name", ""), m.get("uid", ""))


def sandbox_config(
    pod: Mapping[str, Any], attempt: int, logs_root: str, node_name: str, dns: ResolvConf | None = None
) -> api_pb2.PodSandboxConfig:
    """``dns``: the pod's resolv.conf (``nodeagent.kubelet.dns.pod_dns``); None leaves ``dns_config``
    unset (the runtime gives the node's)."""
    m = object_meta(pod)
    spec = pod.get("spec") or {}
    labels = {
        POD_NAME: m.get("name", ""),
        POD_NAMESPACE: m.get("namespace", ""),
        POD_UID: m.get("uid", ""),
        NODE_LABEL: node_name,
    }
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(
            name=m.get("name", ""), namespace=m.get("namespace", ""), uid=m.get("uid", ""), attempt=attempt
        ),
        hostname=m.get("name", "") if not spec.get("hostNetwork") else "",
        log_directory=log_directory(logs_root, pod),
        labels=labels,
        annotations={str(k): str(v) for k, v in (m.get("annotations") or {}).items()},
        port_mappings=port_mappings(spec),
    )
    if spec.get("hostNetwork"):
        cfg.linux.security_context.namespace_options.network = api_pb2.NODE
    if dns is not None:
        cfg.dns_config.CopyFrom(
            api_pb2.DNSConfig(
                servers=list(dns.servers), searches=list(dns.searches), options=list(dns.options)
            )
        )
    return cfg


_PROTOCOLS = {"TCP": api_pb2.TCP, "UDP": api_pb2.UDP, "SCTP": api_pb2.SCTP}


def port_mappings(spec: Mapping[str, Any]) -> list[api_pb2.PortMapping]:
    """The sandbox's port mappings, as kubelet sends them: every container port with a hostPort
    (the runtime's network plugin reserves and forwards those)."""
    out = []
    for container in spec.get("containers") or ():
        for port in container.get("ports") or ():
            if not port.get("hostPort"):
                continue
            out.append(
                api_pb2.PortMapping(
                    protocol=_PROTOCOLS.get(str(port.get("protocol") or "TCP").upper(), api_pb2.TCP),
                    container_port=int(port.get("containerPort") or 0),
                    host_port=int(port["hostPort"]),
                    host_ip=str(port.get("hostIP") or ""),
                )
            )
    return out


def _resources(container: Mapping[str, Any]) -> api_pb2.LinuxContainerResources | None:
    limits = (container.get("resources") or {}).get("limits") or {}
    out = api_pb2.LinuxContainerResources()
    try:
        if "memory" in limits:
            out.memory_limit_in_bytes = math.ceil(Fraction(parse_quantity(limits["memory"])))
        if "cpu" in limits:
            millis = math.ceil(Fraction(parse_quantity(limits["cpu"])) * 1000)
            out.cpu_period = 100_000
            out.cpu_quota = max(1000, millis * 100)
    except QuantityError:
        return None
    return out if (out.memory_limit_in_bytes or out.cpu_quota) else None


def container_config(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    command: ContainerCommand,
    attempt: int,
    mounts: Sequence[api_pb2.Mount] = (),
) -> api_pb2.ContainerConfig:
    """``mounts``: the container's volumes (``VolumeManager.container_mounts``)."""
    m = object_meta(pod)
    name = container["name"]
    cfg = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=api_pb2.ImageSpec(image=container.get("image", "")),
        command=list(command.argv),
        working_dir=command.working_dir,
        envs=[api_pb2.KeyValue(key=k, value=v) for k, v in command.env],
        labels={
            CONTAINER_NAME: name,
            CONTAINER_HASH: container_hash(container),
            POD_NAME: m.get("name", ""),
            POD_NAMESPACE: m.get("namespace", ""),
            POD_UID: m.get("uid", ""),
        },
        annotations={RESTART_COUNT: str(attempt)},
        log_path=f"{name}/{attempt}.log",
        mounts=list(mounts),
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
    )
    res = _resources(container)
    if res is not None:
        cfg.linux.resources.CopyFrom(res)
    return cfg


def _time(ns: int) -> datetime | None:
    return datetime.fromtimestamp(ns / 1e9, UTC) if ns else None


def runtime_container(status: api_pb2.ContainerStatus, scheme: str) -> RuntimeContainer:
    return RuntimeContainer(
        name=status.metadata.name,
        id=f"{scheme}://{status.id}",
        state=_STATES.get(status.state, "unknown"),  # type: ignore[arg-type]
        restart_count=status.metadata.attempt,
        exit_code=status.exit_code,
        reason=status.reason,
        message=status.message,
        created_at=_time(status.created_at),
        started_at=_time(status.started_at),
        finished_at=_time(status.finished_at),
        spec_hash=status.labels.get(CONTAINER_HASH, ""),
        image=status.image.image,
        image_ref=status.image_ref,
    )


def bare_id(container_id: str) -> str:
    """``process://abc`` → ``abc`` (the CRI takes ids without the scheme)."""
    return container_id.partition("://")[2] or container_id


async def read_view(
    cri: CRIClient, uid: str, scheme: str
) -> tuple[PodRuntimeView, list[str], dict[str, str]]:
    """(the pod's view, every sandbox id of the pod, log path by container id)."""
    boxes = sorted(
        await cri.list_pod_sandbox(labels={POD_UID: uid}),
        key=lambda b: (b.metadata.attempt, b.created_at),
        reverse=True,
    )
    sandbox: Sandbox | None = None
    if boxes:
        newest = boxes[0]
        ips: tuple[str, ...] = ()
        ready = newest.state == api_pb2.SANDBOX_READY
        try:
            st = (await cri.pod_sandbox_status(newest.id)).status
            ips = tuple(ip for ip in (st.network.ip, *(a.ip for a in st.network.additional_ips)) if ip)
            ready = st.state == api_pb2.SANDBOX_READY
        except NotFound:
            ready = False
        sandbox = Sandbox(id=newest.id, ready=ready, attempt=newest.metadata.attempt, ips=ips)
    statuses: list[api_pb2.ContainerStatus] = []
    for c in await cri.list_containers(labels={POD_UID: uid}):
        try:
            statuses.append((await cri.container_status(c.id)).status)
        except NotFound:
            continue
    statuses.sort(key=lambda s: (s.metadata.attempt, s.created_at), reverse=True)
    containers = tuple(runtime_container(s, scheme) for s in statuses)
    logs = {f"{scheme}://{s.id}": s.log_path for s in statuses}
    return PodRuntimeView(sandbox, containers), [b.id for b in boxes], logs
