"""Informer against the fake API server: initial sync, watch deltas, relist after 410 with
DeletedFinalStateUnknown tombstones, resuming after a stream ends, bookmarks, retries, resync,
late handlers, indexes, and convergence of a handler-built mirror with the server."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cluster.client.informer import Informer
from cluster.client.lister import DeletedFinalStateUnknown, object_key
from cluster.client.rest import ApiClient
from tests.cluster.client.fake_apiserver import FakeApiServer


def pod(name: str, namespace: str = "default", node: str = "", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"nodeName": node} if node else {},
    }


class Recorder:
    """Handlers that log what they were told and keep a mirror of the server built only from them."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.mirror: dict[str, dict[str, Any]] = {}
        self.updates: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.deletes: list[dict[str, Any]] = []

    def on_add(self, obj: dict[str, Any]) -> None:
        self.log.append(("add", object_key(obj)))
        self.mirror[object_key(obj)] = obj

    def on_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        self.log.append(("update", object_key(new)))
        self.updates.append((old, new))
        self.mirror[object_key(new)] = new

    def on_delete(self, obj: dict[str, Any]) -> None:
        key = obj.key if isinstance(obj, DeletedFinalStateUnknown) else object_key(obj)
        self.log.append(("tombstone" if isinstance(obj, DeletedFinalStateUnknown) else "delete", key))
        self.deletes.append(obj)
        self.mirror.pop(key, None)


async def wait_until(pred: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.005)


Scenario = Callable[[FakeApiServer, ApiClient], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        client = ApiClient(await fake.start())
        try:
            await asyncio.wait_for(scenario(fake, client), 8.0)
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(main())


async def started(informer: Informer, rec: Recorder | None = None) -> asyncio.Task[None]:
    if rec is not None:
        informer.add_handler(rec.on_add, rec.on_update, rec.on_delete)
    task = asyncio.create_task(informer.run())
    assert await informer.wait_synced(2.0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_initial_sync_then_watch_deltas() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))
        fake.put("pods", pod("b"))
        list_rv = str(fake.rv)
        rec = Recorder()
        informer = Informer(client, "v1", "pods")
        task = await started(informer, rec)
        assert rec.log == [("add", "default/a"), ("add", "default/b")]
        assert informer.has_synced and informer.lists == 1
        listed = fake.calls("GET", watch=False)[0]
        assert listed.path == "/api/v1/pods" and listed.query == {"limit": "500"}
        await wait_until(lambda: bool(fake.watchers))
        assert fake.calls("GET", watch=True)[0].query["resourceVersion"] == list_rv

        rec.log.clear()
        fake.put("pods", pod("c"))
        fake.put("pods", pod("a", node="n1"))
        deleted = fake.remove("pods", "default", "b")
        await wait_until(lambda: len(rec.log) == 3)
        assert rec.log == [("add", "default/c"), ("update", "default/a"), ("delete", "default/b")]
        old, new = rec.updates[-1]
        assert old["spec"] == {} and new["spec"] == {"nodeName": "n1"}
        assert rec.deletes == [deleted] and not isinstance(rec.deletes[0], DeletedFinalStateUnknown)
        assert [o["metadata"]["name"] for o in informer.store.list()] == ["a", "c"]
        assert informer.last_resource_version == str(fake.rv)
        await stop(task)

    run(scenario)


def test_relist_after_410_delivers_what_client_go_would() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        for name in ("keep", "change", "vanish"):
            fake.put("pods", pod(name))
        rec = Recorder()
        informer = Informer(client, "v1", "pods")
        task = await started(informer, rec)
        await wait_until(lambda: bool(fake.watchers))
        rec.log.clear()

        # Changes the watch never reports: history is compacted past them, then the watch expires.
        last_known_vanish = informer.store.get("default", "vanish")
        fake.remove_silently("pods", "default", "vanish")
        fake.objects["pods"][("default", "change")] = dict(pod("change", node="n2"))
        fake.objects["pods"][("default", "change")]["metadata"]["resourceVersion"] = "999"
        fake.objects["pods"][("default", "new")] = dict(pod("new"), metadata={
            "name": "new", "namespace": "default", "resourceVersion": "998"})  # fmt: skip
        fake.expire_watches()

        await wait_until(lambda: informer.lists == 2 and len(rec.log) == 4)
        assert sorted(rec.log) == [
            ("add", "default/new"),
            ("tombstone", "default/vanish"),
            ("update", "default/change"),
            ("update", "default/keep"),  # client-go reports every relisted cached key as an update
        ]
        tombstone = rec.deletes[-1]
        assert isinstance(tombstone, DeletedFinalStateUnknown)
        assert tombstone.key == "default/vanish" and tombstone == last_known_vanish
        assert informer.store.get("default", "change")["spec"] == {"nodeName": "n2"}
        assert informer.store.get("default", "vanish") is None
        await wait_until(lambda: bool(fake.watchers))
        assert fake.calls("GET", watch=True)[-1].query["resourceVersion"] == str(fake.rv)
        await stop(task)

    run(scenario)


def test_stream_end_resumes_from_last_version_without_relist() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        rec = Recorder()
        informer = Informer(client, "v1", "pods", namespace="default")
        task = await started(informer, rec)
        await wait_until(lambda: bool(fake.watchers))
        fake.put("pods", pod("a"))
        await wait_until(lambda: rec.log == [("add", "default/a")])
        seen_rv = str(fake.rv)
        fake.end_watches()
        await wait_until(lambda: len(fake.calls("GET", watch=True)) == 2 and bool(fake.watchers))
        assert fake.calls("GET", watch=True)[-1].query["resourceVersion"] == seen_rv

        fake.bookmark()
        await wait_until(lambda: informer.last_resource_version == str(fake.rv))
        fake.end_watches()
        await wait_until(lambda: len(fake.calls("GET", watch=True)) == 3)
        assert fake.calls("GET", watch=True)[-1].query["resourceVersion"] == str(fake.rv)
        assert fake.calls("GET", watch=True)[-1].path == "/api/v1/namespaces/default/pods"
        assert informer.lists == 1 and rec.log == [("add", "default/a")]
        await stop(task)

    run(scenario)


def test_list_and_watch_failures_are_retried() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))
        fake.fail("GET", 500, "InternalError", times=2, watch=False)
        fake.fail("GET", 503, "ServiceUnavailable", times=2, watch=True)
        rec = Recorder()
        informer = Informer(client, "v1", "pods", backoff_base=0.01, backoff_max=0.02)
        task = await started(informer, rec)
        assert informer.lists == 1 and len(fake.calls("GET", watch=False)) == 3
        await wait_until(lambda: bool(fake.watchers))
        assert len(fake.calls("GET", watch=True)) == 3
        fake.put("pods", pod("b"))
        await wait_until(lambda: ("add", "default/b") in rec.log)
        await stop(task)

    run(scenario)


def test_wait_synced_times_out_while_list_keeps_failing() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.fail("GET", 403, "Forbidden", times=10_000, watch=False)
        informer = Informer(client, "v1", "pods", backoff_base=0.01, backoff_max=0.02)
        task = asyncio.create_task(informer.run())
        assert await informer.wait_synced(0.15) is False
        assert not informer.has_synced and len(fake.calls("GET")) >= 2
        await stop(task)

    run(scenario)


def test_resync_redelivers_cached_objects_as_updates() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))
        rec = Recorder()
        informer = Informer(client, "v1", "pods", resync_seconds=0.03)
        task = await started(informer, rec)
        await wait_until(lambda: rec.log.count(("update", "default/a")) >= 2)
        old, new = rec.updates[0]
        assert old is new
        assert informer.lists == 1
        await stop(task)

    run(scenario)


def test_late_handler_gets_adds_and_a_raising_handler_does_not_stop_delivery() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))
        fake.put("pods", pod("b"))
        informer = Informer(client, "v1", "pods")

        def explode(obj: dict[str, Any]) -> None:
            raise RuntimeError("bad handler")

        informer.add_handler(on_add=explode)
        task = await started(informer)
        late = Recorder()
        informer.add_handler(late.on_add, late.on_update, late.on_delete)
        assert late.log == [("add", "default/a"), ("add", "default/b")]
        await wait_until(lambda: bool(fake.watchers))
        fake.put("pods", pod("c"))
        await wait_until(lambda: ("add", "default/c") in late.log)
        await stop(task)

    run(scenario)


def test_custom_index_follows_events() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a", node="n1"))
        informer = Informer(client, "v1", "pods", label_selector="app=web")
        fake.put("pods", pod("web1", node="n1", app="web"))
        informer.store.add_index(
            "node", lambda o: [o["spec"]["nodeName"]] if o["spec"].get("nodeName") else []
        )
        task = await started(informer)
        assert fake.calls("GET", watch=False)[0].query == {"labelSelector": "app=web", "limit": "500"}
        assert [o["metadata"]["name"] for o in informer.store.by_index("node", "n1")] == ["web1"]
        await wait_until(lambda: bool(fake.watchers))
        fake.put("pods", pod("web1", node="n2", app="web"))
        fake.put("pods", pod("web2", node="n2", app="web"))
        await wait_until(lambda: len(informer.store.by_index("node", "n2")) == 2)
        assert informer.store.by_index("node", "n1") == []
        assert fake.calls("GET", watch=True)[-1].query["labelSelector"] == "app=web"
        await stop(task)

    run(scenario)


@pytest.mark.parametrize("seed", [pytest.param(s, id=f"seed-{s}") for s in range(3)])
def test_mirror_converges_through_changes_and_expirations(seed: int) -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        rng = random.Random(seed)
        names = [f"p{i}" for i in range(8)]
        for name in names[:4]:
            fake.put("pods", pod(name))
        rec = Recorder()
        informer = Informer(client, "v1", "pods", backoff_base=0.01)
        task = await started(informer, rec)
        for _ in range(60):
            name = rng.choice(names)
            exists = ("default", name) in fake.objects.get("pods", {})
            roll = rng.random()
            if roll < 0.1:
                fake.expire_watches()
            elif roll < 0.2 and exists:
                fake.remove_silently("pods", "default", name)
            elif roll < 0.4 and exists:
                fake.remove("pods", "default", name)
            elif roll < 0.45:
                fake.end_watches()
            else:
                fake.put("pods", pod(name, node=f"n{rng.randrange(3)}"))
            if rng.random() < 0.3:
                await asyncio.sleep(0.002)

        def converged() -> bool:
            want = {
                f"default/{n}": o["metadata"]["resourceVersion"] for (_, n), o in fake.objects["pods"].items()
            }
            have = {k: o["metadata"]["resourceVersion"] for k, o in rec.mirror.items()}
            cached = {object_key(o): o["metadata"]["resourceVersion"] for o in informer.store.list()}
            return want == have == cached

        if fake.compacted:  # anything missed must be recovered by a relist, so force one at the end
            fake.expire_watches()
        await wait_until(converged, timeout=4.0)
        await stop(task)

    run(scenario)
