"""Static pods through real kubectl against `raykube up`: a manifest file runs a pod without the API.

The node agent reads `<data-dir>/manifests` every 2 s. A manifest runs as a pod on the host (the process
runtime) and a mirror pod `<name>-<node>` shows it in the API; deleting the mirror pod does not stop
the static pod (the agent recreates the mirror), removing the file does.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Kubectl, RaykubeCluster
from tests.integration.test_pods_kubectl import find_real_node, host_pids, wait_until

MIRROR = "kubernetes.io/config.mirror"


@pytest.fixture
def manifests(raykube_cluster: RaykubeCluster) -> Path:
    folder = raykube_cluster.data_dir / "manifests"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def node_name(raykube_cluster: RaykubeCluster) -> str:
    return str(find_real_node(Kubectl(raykube_cluster, "1.33", None))["metadata"]["name"])


def static_pod(name: str, namespace: str | None, marker: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "labels": {"tier": "static"}}
    if namespace:
        metadata["namespace"] = namespace
    script = f"echo static up; while true; do sleep 1; done # {marker}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "terminationGracePeriodSeconds": 2,
            "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c", script]}],
        },
    }


@pytest.fixture
def manifest_file(manifests: Path) -> Iterator[Path]:
    path = manifests / f"static-{secrets.token_hex(4)}.yaml"
    yield path
    path.unlink(missing_ok=True)


def mirror(k: Kubectl, name: str) -> dict[str, Any] | None:
    proc = k.run("get", "pod", name, "-o", "json", check=False)
    if proc.returncode != 0:
        assert "NotFound" in proc.stderr, proc.stderr
        return None
    found = json.loads(proc.stdout)
    return found if found.get("metadata", {}).get("deletionTimestamp") is None else None


def test_static_pod_lifecycle(
    raykube_cluster: RaykubeCluster, namespace: str, manifest_file: Path, node_name: str
) -> None:
    k = Kubectl(raykube_cluster, "1.33", namespace)
    base = f"web-{secrets.token_hex(3)}"
    marker = f"static-{secrets.token_hex(6)}"
    manifest_file.write_text(yaml.safe_dump(static_pod(base, namespace, marker)))
    name = f"{base}-{node_name.lower()}"

    def running() -> dict[str, Any] | None:
        found = mirror(k, name)
        return found if found and found.get("status", {}).get("phase") == "Running" else None

    first = wait_until(running, f"mirror pod {name} Running")
    annotations = first["metadata"]["annotations"]
    assert annotations[MIRROR] == annotations["kubernetes.io/config.hash"]
    assert annotations["kubernetes.io/config.source"] == "file"
    assert first["spec"]["nodeName"] == node_name
    assert first["metadata"]["labels"]["tier"] == "static"
    owners = first["metadata"].get("ownerReferences", [])
    assert [(o["kind"], o["name"]) for o in owners] == [("Node", node_name)]
    pids = wait_until(lambda: host_pids(marker), "the static pod's process on the host")
    assert k.out("logs", name) == "static up\n"
    assert "Running" in k.out("get", "pods")

    # deleting the mirror pod brings it back; the pod itself keeps running
    k.run("delete", "pod", name, "--wait=false")
    again = wait_until(
        lambda: (m := mirror(k, name)) and m["metadata"]["uid"] != first["metadata"]["uid"] and m,
        "the mirror pod recreated",
    )
    assert again["metadata"]["annotations"][MIRROR] == annotations[MIRROR]
    assert host_pids(marker) == pids
    statuses = wait_until(
        lambda: (m := mirror(k, name)) and m.get("status", {}).get("containerStatuses"),
        "status on the new mirror",
    )
    assert statuses[0]["restartCount"] == 0 and "running" in statuses[0]["state"]

    # removing the file stops it and the mirror pod goes
    manifest_file.unlink()
    wait_until(lambda: not host_pids(marker), "the static pod's process gone")
    wait_until(lambda: "NotFound" in k.run("get", "pod", name, check=False).stderr, "the mirror pod gone")


def test_static_pod_defaults_to_the_default_namespace(
    raykube_cluster: RaykubeCluster, manifest_file: Path, node_name: str
) -> None:
    k = Kubectl(raykube_cluster, "1.33", "default")
    base = f"plain-{secrets.token_hex(3)}"
    marker = f"static-{secrets.token_hex(6)}"
    manifest_file.write_text(yaml.safe_dump(static_pod(base, None, marker)))
    name = f"{base}-{node_name.lower()}"
    try:
        found = wait_until(lambda: mirror(k, name), f"mirror pod {name} in default")
        assert MIRROR in found["metadata"]["annotations"]
        wait_until(lambda: host_pids(marker), "the static pod's process on the host")
    finally:
        manifest_file.unlink(missing_ok=True)
    wait_until(lambda: not host_pids(marker), "the static pod's process gone")
    wait_until(lambda: mirror(k, name) is None, "the mirror pod gone")
