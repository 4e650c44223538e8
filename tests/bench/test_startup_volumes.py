"""`raykube bench startup`'s pods with volumes: their manifests, and ``measure`` creating a claim
before its pod (the clock started at the claim), deleting claims after pods, waiting for volumes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from rich.console import Console

from bench import startup
from bench import startup_volumes as sv


def test_volume_pod_mounts_a_configmap_an_emptydir_and_its_claim() -> None:
    (claim_v, claim_plural, claim), (pod_v, pod_plural, pod) = sv.volume_pod_objects(3, "img")
    assert (claim_v, claim_plural, pod_v, pod_plural) == ("v1", "persistentvolumeclaims", "v1", "pods")
    assert claim["metadata"]["name"] == "startup-vol-00003-data"
    assert "storageClassName" not in claim["spec"]  # the default class
    assert pod["metadata"]["name"] == "startup-vol-00003"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == sv.CONFIGMAP
    assert volumes["scratch"]["emptyDir"] == {}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "startup-vol-00003-data"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == "img" and {m["name"] for m in c["volumeMounts"]} == set(volumes)
    ((_, plural, plain),) = sv.plain_pod_objects(3, "img")
    assert plural == "pods" and "volumes" not in plain["spec"]
    assert plain["spec"]["containers"][0]["image"] == "img"


class FakeApi:
    """Creates succeed; every created pod shows Running on the watch; deletes show DELETED."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.volumes = 2

    async def create(self, version: str, plural: str, body: dict[str, Any], namespace: str = "") -> None:
        self.calls.append(("create", plural, body["metadata"]["name"]))
        if plural == "pods":
            running = {
                "metadata": {"name": body["metadata"]["name"], "resourceVersion": "2"},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
            }
            await self.events.put({"type": "MODIFIED", "object": running})

    async def delete(self, version: str, plural: str, name: str, namespace: str = "", **kw: Any) -> None:
        self.calls.append(("delete", plural, name))
        if plural == "pods":
            await self.events.put({"type": "DELETED", "object": {"metadata": {"name": name}}})

    async def list(self, version: str, plural: str, namespace: str = "", **kw: Any) -> dict[str, Any]:
        if plural == "persistentvolumes":
            self.volumes = max(0, self.volumes - 1)  # the provisioner deletes them over two polls
            return {"items": [{}] * self.volumes}
        return {"metadata": {"resourceVersion": "1"}, "items": []}

    async def watch(
        self, version: str, plural: str, namespace: str, **kw: Any
    ) -> AsyncIterator[dict[str, Any]]:
        while True:
            yield await self.events.get()


def test_measure_creates_claims_first_and_deletes_them_after_the_pods() -> None:
    api = FakeApi()
    entry = asyncio.run(
        startup.measure(
            api, "process", 2, lambda m: None, lambda i: sv.volume_pod_objects(i, "img"), "volumes"
        )
    )
    assert (entry["running"], entry["not_running"], entry["not_deleted"]) == (2, 0, 0)
    assert entry["volumes_not_deleted"] == 0
    creates = [(plural, name) for op, plural, name in api.calls if op == "create" and plural != "namespaces"]
    for i in range(2):
        pod = f"startup-vol-{i:05d}"
        assert creates.index(("persistentvolumeclaims", f"{pod}-data")) < creates.index(("pods", pod))
    deletes = [plural for op, plural, _ in api.calls if op == "delete"]
    assert deletes == ["pods", "pods", "persistentvolumeclaims", "persistentvolumeclaims"]


def test_volume_flag_and_render_rows() -> None:
    assert startup.build_parser().parse_args([]).volumes is True
    assert startup.build_parser().parse_args(["--no-volumes"]).volumes is False
    entry = startup.startup_entry("process", 1, {"a": 0.0}, {"a": 0.5}, 0.0)
    entry["volumes"] = startup.startup_entry("process", 1, {"b": 0.0}, {"b": 0.7}, 0.0)
    entry["image_root"] = {"error": "boom"}
    doc = startup.document([entry], [], {"cpu_count": 2})
    console = Console(width=200, record=True)
    startup.render(doc, console)
    text = console.export_text()
    assert "raykube, volumes" in text and "700.0" in text and "boom" in text
