"""Builders shared by the kubelet core tests: pods and runtime views in a line each."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from nodeagent.kubelet.runtime_view import PodRuntimeView, RuntimeContainer, Sandbox, container_hash

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def pod(
    containers: tuple[str, ...] = ("app",),
    inits: tuple[str, ...] = (),
    policy: str = "Always",
    **extra: Any,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "restartPolicy": policy,
        "containers": [{"name": n, "image": "busybox"} for n in containers],
    }
    if inits:
        spec["initContainers"] = [{"name": n, "image": "busybox"} for n in inits]
    spec.update(extra)
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "uid-1"}, "spec": spec}


def spec_of(p: dict[str, Any], name: str) -> dict[str, Any]:
    for c in [*p["spec"].get("initContainers", ()), *p["spec"]["containers"]]:
        if c["name"] == name:
            return dict(c)
    raise KeyError(name)


def running(p: dict[str, Any], name: str, restarts: int = 0, started: float = 0) -> RuntimeContainer:
    return RuntimeContainer(
        name=name,
        id=f"process://{name}-{restarts}",
        state="running",
        restart_count=restarts,
        started_at=at(started),
        spec_hash=container_hash(spec_of(p, name)),
        image="busybox",
    )


def exited(
    p: dict[str, Any], name: str, code: int = 0, restarts: int = 0, finished: float = 5
) -> RuntimeContainer:
    return RuntimeContainer(
        name=name,
        id=f"process://{name}-{restarts}",
        state="exited",
        exit_code=code,
        restart_count=restarts,
        started_at=at(0),
        finished_at=at(finished),
        spec_hash=container_hash(spec_of(p, name)),
        image="busybox",
    )


def view(
    *containers: RuntimeContainer, ready: bool = True, ips: tuple[str, ...] = ("10.1.0.2",)
) -> PodRuntimeView:
    return PodRuntimeView(sandbox=Sandbox(id="sb", ready=ready, ips=ips), containers=containers)
