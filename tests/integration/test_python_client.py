"""The official Python ``kubernetes`` client against a real ``raykube up``, unchanged.

CRUD and watch for several kinds, optimistic concurrency (409 on a stale resourceVersion), and 1,000
concurrent read-modify-write increments with 409 retries that must end at exactly 1,000.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import RaykubeCluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api(raykube_cluster: RaykubeCluster) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(raykube_cluster.kubeconfig))
    api_client.configuration.connection_pool_maxsize = 64
    yield api_client
    api_client.close()


def test_crud_and_watch_several_kinds(api: client.ApiClient, namespace: str) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    cm = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings", "labels": {"app": "demo"}}, "data": {"mode": "blue"}}
    )
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("settings", namespace)
    assert got.data == {"mode": "blue"} and got.metadata.labels == {"app": "demo"}
    patched = core.patch_namespaced_config_map("settings", namespace, {"data": {"mode": "green"}})
    assert patched.data["mode"] == "green"
    assert int(patched.metadata.resource_version) > int(cm.metadata.resource_version)
    listed = core.list_namespaced_config_map(namespace, label_selector="app=demo")
    assert [i.metadata.name for i in listed.items] == ["settings"]

    dep = apps.create_namespaced_deployment(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]},
                },
            },
        },
    )
    assert dep.spec.strategy.type == "RollingUpdate"  # defaulted by the server
    assert dep.metadata.generation == 1
    scale = apps.patch_namespaced_deployment_scale("web", namespace, {"spec": {"replicas": 5}})
    assert scale.spec.replicas == 5
    after = apps.read_namespaced_deployment("web", namespace)
    assert after.spec.replicas == 5 and after.metadata.generation == 2

    svc = core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "web"},
            "spec": {
                "type": "NodePort",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}],
            },
        },
    )
    assert svc.spec.cluster_ip.startswith("10.") and 30000 <= svc.spec.ports[0].node_port <= 32767

    # Watch: events for changes made after the list's resourceVersion, in order.
    rv = core.list_namespaced_config_map(namespace).metadata.resource_version
    seen: list[tuple[str, str]] = []
    w = watch.Watch()

    def writer() -> None:
        time.sleep(0.5)
        core.create_namespaced_config_map(namespace, {"metadata": {"name": "later"}, "data": {"a": "1"}})
        core.patch_namespaced_config_map("later", namespace, {"data": {"a": "2"}})
        core.delete_namespaced_config_map("later", namespace)

    t = threading.Thread(target=writer)
    t.start()
    for ev in w.stream(core.list_namespaced_config_map, namespace, resource_version=rv, timeout_seconds=20):
        seen.append((ev["type"], ev["object"].metadata.name))
        if ev["type"] == "DELETED":
            w.stop()
    t.join()
    assert seen == [("ADDED", "later"), ("MODIFIED", "later"), ("DELETED", "later")]

    # Optimistic concurrency: a write with a stale resourceVersion is refused with 409 Conflict.
    stale = core.read_namespaced_config_map("settings", namespace)
    core.patch_namespaced_config_map("settings", namespace, {"data": {"mode": "red"}})
    stale.data["mode"] = "stale"
    with pytest.raises(ApiException) as err:
        core.replace_namespaced_config_map("settings", namespace, stale)
    assert err.value.status == 409

    core.delete_namespaced_service("web", namespace)
    apps.delete_namespaced_deployment("web", namespace)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_service("web", namespace)
    assert err.value.status == 404


def test_thousand_concurrent_increments_end_at_exactly_1000(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "counter"}, "data": {"n": "0"}})
    conflicts = 0
    lock = threading.Lock()

    def increment(_: int) -> None:
        nonlocal conflicts
        while True:
            cm: Any = core.read_namespaced_config_map("counter", namespace)
            cm.data["n"] = str(int(cm.data["n"]) + 1)
            try:
                core.replace_namespaced_config_map("counter", namespace, cm)
                return
            except ApiException as e:
                if e.status != 409:
                    raise
                with lock:
                    conflicts += 1

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(increment, range(1000)))
    final = core.read_namespaced_config_map("counter", namespace)
    print(f"\n1000 increments, {conflicts} conflicts retried")
    assert final.data["n"] == "1000"
    assert conflicts > 0  # the increments really raced
