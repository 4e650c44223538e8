"""Pods with volumes for ``raykube bench startup``: the same startup clock, pods that mount a
ConfigMap, an emptyDir and a claim of their own.

Each measured pod ``startup-vol-<n>`` has a claim ``startup-vol-<n>-data`` of the default
StorageClass (``standard``: the hostpath CSI driver, WaitForFirstConsumer), created just before it;
the pod's clock starts when the claim's create request is sent (the first request made for that
pod), so provisioning (after the scheduler picked the node), publishing and the in-tree volumes are
all inside the figure. One ConfigMap serves every pod.

The ``process`` runtime runs record images on the host's filesystem, where it never makes mount
points; the volume pods there run the busybox OCI layout under ``IMAGE_ROOT_NAME``, dropped into each
node's runtime import directory (``install_image_root``), and the suite also measures pods of that
image without volumes, so the volumes' cost is read against the same image. containerd's ``busybox``
has its root already.

The pure helpers (manifests) read no clock; ``measure_variant`` runs one set of pods against a
control plane, deletes them and their claims, and waits for the claims' volumes to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nodeagent.images.busybox import DEFAULT_BUSYBOX, applets, busybox_spec
from nodeagent.images.oci import write_layout_tar

CONFIGMAP = "startup-bench-config"
CLAIM_SIZE = "8Mi"
IMAGE_ROOT_NAME = "raykube.bench/busybox-root:1"
VOLUME_LABEL = "startup-bench-volumes"

Progress = Callable[[str], None]
# A pod's objects in creation order: (apiVersion, plural, manifest); the last one is the pod.
Objects = list[tuple[str, str, dict[str, Any]]]


def configmap_manifest() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP},
        "data": {"app.properties": "mode=bench\nlevel=3\n", "motd": "hello from the startup bench\n"},
    }


def volume_pod_objects(index: int, image: str) -> Objects:
    """Pod ``startup-vol-<index>`` and its claim: a ConfigMap, an emptyDir and the claim mounted."""
    name = f"startup-vol-{index:05d}"
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": f"{name}-data", "labels": {"app": VOLUME_LABEL}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": CLAIM_SIZE}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": VOLUME_LABEL}},
        "spec": {
            "containers": [
                {
                    "name": "sleep",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/bench", "readOnly": True},
                        {"name": "scratch", "mountPath": "/scratch"},
                        {"name": "data", "mountPath": "/data"},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": CONFIGMAP}},
                {"name": "scratch", "emptyDir": {}},
                {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}},
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
        },
    }
    return [("v1", "persistentvolumeclaims", claim), ("v1", "pods", pod)]


def plain_pod_objects(index: int, image: str) -> Objects:
    """Pod ``startup-img-<index>``: the volume pods' image, no volumes (the like-for-like baseline)."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"startup-img-{index:05d}", "labels": {"app": VOLUME_LABEL}},
        "spec": {
            "containers": [
                {
                    "name": "sleep",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"],
                }
            ],
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
        },
    }
    return [("v1", "pods", pod)]


def install_image_root(data_dir: Path, name: str = IMAGE_ROOT_NAME) -> str:
    """Write the busybox OCI layout as ``name`` into every node's process-runtime import directory
    under ``data_dir`` (a pull of that name imports it); returns the name."""
    with open(DEFAULT_BUSYBOX, "rb") as f:
        binary = f.read()
    spec = dataclasses.replace(busybox_spec(binary, applets()), name=name)
    dirs = sorted(data_dir.glob("nodes/*/runtime/images/import"))
    if not dirs:
        raise RuntimeError(f"no process-runtime import directory under {data_dir}/nodes")
    for d in dirs:
        write_layout_tar(
            spec, str(d / f"busybox-root-{hashlib.sha256(name.encode()).hexdigest()[:12]}.oci.tar")
        )
    return name


async def wait_no_volumes(client: Any, timeout: float) -> int:
    """Wait until no PersistentVolume is left (the claims' Delete policy); how many remain."""
    deadline = time.monotonic() + timeout
    while True:
        items = (await client.list("v1", "persistentvolumes")).get("items") or []
        if not items or time.monotonic() > deadline:
            return len(items)
        await asyncio.sleep(0.5)


async def delete_claims(client: Any, namespace: str, names: list[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            await client.delete("v1", "persistentvolumeclaims", name, namespace)
