"""ApiClient against the fake API server: URLs, query parameters, bodies, content types, Status
errors, paging, watch streams (including 410), bind_many and the QPS limiter."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cluster.client.rest import ApiClient, ApiError, TransportError, resource_path
from tests.cluster.client.fake_apiserver import FakeApiServer

Scenario = Callable[[FakeApiServer, ApiClient], Awaitable[None]]


def run(scenario: Scenario, **client_kwargs: Any) -> None:
    async def main() -> None:
        fake = FakeApiServer()
        url = await fake.start()
        client = ApiClient(url, **client_kwargs)
        try:
            await asyncio.wait_for(scenario(fake, client), 5.0)
        finally:
            await client.close()
            await fake.stop()

    asyncio.run(main())


def pod(name: str, namespace: str = "default", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("v1", "pods"), "/api/v1/pods", id="core-cluster-wide"),
        pytest.param(("v1", "pods", "ns"), "/api/v1/namespaces/ns/pods", id="core-namespaced-list"),
        pytest.param(
            ("v1", "pods", "ns", "web", "binding"), "/api/v1/namespaces/ns/pods/web/binding", id="sub"
        ),
        pytest.param(
            ("apps/v1", "deployments", "ns", "d"), "/apis/apps/v1/namespaces/ns/deployments/d", id="grp"
        ),
        pytest.param(
            ("v1", "nodes", None, "n1", "status"), "/api/v1/nodes/n1/status", id="cluster-scoped-sub"
        ),
        pytest.param(
            ("v1", "namespaces", None, "kube-system"), "/api/v1/namespaces/kube-system", id="namespace"
        ),
    ],
)
def test_resource_path(args: tuple[Any, ...], expected: str) -> None:
    assert resource_path(*args) == expected


@pytest.mark.parametrize(
    ("http_status", "raw", "status", "reason", "message"),
    [
        pytest.param(
            404,
            b'{"kind":"Status","status":"Failure","reason":"NotFound","code":404,'
            b'"message":"pods \\"x\\" not found"}',
            404, "NotFound", 'pods "x" not found', id="status-body",
        ),
        pytest.param(409, b'{"kind":"Status","reason":"AlreadyExists","code":409,"message":"m"}', 409,
                     "AlreadyExists", "m", id="already-exists"),
        pytest.param(503, b"upstream down", 503, "ServiceUnavailable", "upstream down", id="plain-text"),
        pytest.param(418, b"", 418, "Unknown", "HTTP 418", id="empty-unknown-code"),
        pytest.param(500, b'{"kind":"Status"}', 500, "InternalError", "", id="status-without-code"),
    ],
)  # fmt: skip
def test_api_error_from_response(
    http_status: int, raw: bytes, status: int, reason: str, message: str
) -> None:
    err = ApiError.from_response(http_status, raw)
    assert (err.status, err.reason, err.message) == (status, reason, message)


def test_api_error_predicates() -> None:
    assert ApiError(404, "NotFound", "").not_found
    assert ApiError(409, "Conflict", "").conflict and not ApiError(409, "Conflict", "").already_exists
    assert (
        ApiError(409, "AlreadyExists", "").already_exists and not ApiError(409, "AlreadyExists", "").conflict
    )
    assert ApiError(410, "Expired", "").expired


def test_crud_round_trip() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        created = await client.create("v1", "pods", pod("web", app="web"), "default", field_manager="me")
        assert created["metadata"]["resourceVersion"] == "101"
        post = fake.calls("POST")[-1]
        assert post.path == "/api/v1/namespaces/default/pods"
        assert post.query == {"fieldManager": "me"}
        assert post.headers["Content-Type"] == "application/json"
        assert post.headers["Accept"] == "application/json"

        got = await client.get("v1", "pods", "web", "default")
        assert got == created

        got["metadata"]["labels"]["tier"] = "front"
        updated = await client.update("v1", "pods", got, "default")
        assert updated["metadata"]["labels"] == {"app": "web", "tier": "front"}
        assert fake.calls("PUT")[-1].path == "/api/v1/namespaces/default/pods/web"

        with pytest.raises(ApiError) as stale:
            await client.update("v1", "pods", got, "default")  # got still holds the old resourceVersion
        assert stale.value.conflict and stale.value.body["kind"] == "Status"

        patched = await client.patch("v1", "pods", "web", {"metadata": {"labels": {"tier": None}}}, "default")
        assert patched["metadata"]["labels"] == {"app": "web"}
        assert fake.calls("PATCH")[-1].headers["Content-Type"] == "application/merge-patch+json"

        uid = created["metadata"]["uid"]
        deleted = await client.delete(
            "v1", "pods", "web", "default", propagation_policy="Background", grace_period_seconds=0,
            preconditions={"uid": uid},
        )  # fmt: skip
        assert deleted["metadata"]["name"] == "web"
        assert fake.calls("DELETE")[-1].body == {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": uid},
        }
        with pytest.raises(ApiError) as missing:
            await client.get("v1", "pods", "web", "default")
        assert missing.value.not_found and missing.value.reason == "NotFound"

    run(scenario)


def test_create_errors_and_dry_run() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        await client.create("v1", "pods", pod("a"), "default")
        with pytest.raises(ApiError) as dup:
            await client.create("v1", "pods", pod("a"), "default")
        assert dup.value.already_exists and dup.value.status == 409
        dry = await client.create("v1", "pods", pod("b"), "default", dry_run=True)
        assert dry["metadata"]["name"] == "b"
        assert fake.calls("POST")[-1].query == {"dryRun": "All"}
        assert ("default", "b") not in fake.objects["pods"]

    run(scenario)


@pytest.mark.parametrize(
    ("patch_type", "kwargs", "content_type", "query"),
    [
        pytest.param("merge", {}, "application/merge-patch+json", {}, id="merge"),
        pytest.param("json", {}, "application/json-patch+json", {}, id="json"),
        pytest.param("strategic", {}, "application/strategic-merge-patch+json", {}, id="strategic"),
        pytest.param("apply", {"field_manager": "sched", "force": True}, "application/apply-patch+yaml",
                     {"fieldManager": "sched", "force": "true"}, id="apply-forced"),
        pytest.param("apply", {"field_manager": "sched", "force": False}, "application/apply-patch+yaml",
                     {"fieldManager": "sched", "force": "false"}, id="apply-unforced"),
    ],
)  # fmt: skip
def test_patch_content_types(
    patch_type: str, kwargs: dict[str, Any], content_type: str, query: dict[str, str]
) -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("web"))
        body: Any = [{"op": "add", "path": "/x", "value": 1}] if patch_type == "json" else {"x": 1}
        await client.patch("v1", "pods", "web", body, "default", patch_type=patch_type, **kwargs)
        sent = fake.calls("PATCH")[-1]
        assert sent.headers["Content-Type"] == content_type
        assert sent.query == query
        assert sent.body == body

    run(scenario)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param({"patch_type": "yaml"}, "unknown patch_type", id="unknown-type"),
        pytest.param({"patch_type": "apply"}, "field_manager", id="apply-needs-manager"),
    ],
)
def test_patch_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        with pytest.raises(ValueError, match=message):
            await client.patch("v1", "pods", "web", {}, "default", **kwargs)
        assert fake.requests == []

    run(scenario)


def test_update_status_subresource_and_missing_name() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        created = fake.put("pods", pod("web"))
        body = dict(created, status={"phase": "Running"})
        await client.update("v1", "pods", body, "default", subresource="status")
        assert fake.calls("PUT")[-1].path == "/api/v1/namespaces/default/pods/web/status"
        assert fake.objects["pods"][("default", "web")]["status"] == {"phase": "Running"}
        with pytest.raises(ValueError):
            await client.update("v1", "pods", {"metadata": {}}, "default")

    run(scenario)


def test_list_query_parameters_and_paging() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        for i in range(5):
            fake.put("pods", pod(f"p{i}", app="web" if i % 2 == 0 else "db"))
        fake.put("pods", pod("other", namespace="kube-system"))
        page = await client.list(
            "v1", "pods", "default", label_selector="app=web", limit=2, resource_version="0"
        )
        assert [p["metadata"]["name"] for p in page["items"]] == ["p0", "p2"]
        assert page["metadata"]["continue"] == "2"
        sent = fake.calls("GET")[-1]
        assert sent.path == "/api/v1/namespaces/default/pods"
        assert sent.query == {"labelSelector": "app=web", "limit": "2", "resourceVersion": "0"}

        everything = await client.list_all("v1", "pods", page_size=2)
        assert len(everything["items"]) == 6
        assert everything["metadata"] == {"resourceVersion": str(fake.rv)}
        assert [r.query.get("continue") for r in fake.calls("GET")[-3:]] == [None, "2", "4"]

        named = await client.list("v1", "pods", field_selector="metadata.name=p3")
        assert [p["metadata"]["name"] for p in named["items"]] == ["p3"]
        assert fake.calls("GET")[-1].query == {"fieldSelector": "metadata.name=p3"}

    run(scenario)


def test_list_all_restarts_unpaged_when_continue_expires() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        for i in range(4):
            fake.put("pods", pod(f"p{i}"))
        orig = client.list
        calls = 0

        async def flaky_list(*args: Any, **kwargs: Any) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if kwargs.get("continue_"):
                raise ApiError(410, "Expired", "continue token expired")
            return await orig(*args, **kwargs)

        client.list = flaky_list  # type: ignore[method-assign]
        result = await client.list_all("v1", "pods", page_size=2)
        assert len(result["items"]) == 4
        assert calls == 3
        assert "limit" not in fake.calls("GET")[-1].query

    run(scenario)


def test_watch_streams_events_and_raises_on_410() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))
        start = str(fake.rv)
        fake.put("pods", pod("b"))  # already in history: replayed after `start`
        events: list[tuple[str, str]] = []

        async def consume() -> None:
            async for event in client.watch(
                "v1", "pods", "default", resource_version=start, timeout_seconds=30
            ):
                meta = event["object"]["metadata"]
                events.append((event["type"], meta.get("name", meta["resourceVersion"])))

        task = asyncio.create_task(consume())
        while len(events) < 1:
            await asyncio.sleep(0.005)
        fake.put("pods", pod("a", tier="x"))
        fake.remove("pods", "default", "b")
        fake.bookmark()
        while len(events) < 4:
            await asyncio.sleep(0.005)
        fake.expire_watches()
        with pytest.raises(ApiError) as expired:
            await task
        assert expired.value.status == 410 and expired.value.reason == "Expired"
        assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"), ("BOOKMARK", str(fake.rv))]
        sent = fake.calls("GET", watch=True)[-1]
        assert sent.query == {
            "watch": "true",
            "resourceVersion": start,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "30",
        }

    run(scenario)


def test_watch_ends_when_server_closes_and_reports_http_errors() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("a"))

        async def drain() -> list[dict[str, Any]]:
            return [e async for e in client.watch("v1", "pods", resource_version="0", allow_bookmarks=False)]

        task = asyncio.create_task(drain())
        while not fake.watchers:
            await asyncio.sleep(0.005)
        fake.end_watches()
        assert [e["type"] for e in await task] == ["ADDED"]
        assert "allowWatchBookmarks" not in fake.calls("GET", watch=True)[-1].query

        fake.fail("GET", 403, "Forbidden", watch=True)
        with pytest.raises(ApiError) as forbidden:
            await drain()
        assert forbidden.value.status == 403

        fake.compacted = fake.rv
        with pytest.raises(ApiError) as gone:
            await drain()
        assert gone.value.expired

    run(scenario)


def test_watch_splits_events_across_chunks() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        big = pod("big")
        big["metadata"]["annotations"] = {"blob": "x" * 300_000}  # many chunks for one line
        fake.put("pods", big)
        fake.put("pods", pod("small"))
        task = asyncio.create_task(
            _collect(client.watch("v1", "pods", resource_version="100"), 2)
        )  # fmt: skip
        events = await task
        assert [e["object"]["metadata"]["name"] for e in events] == ["big", "small"]
        assert len(events[0]["object"]["metadata"]["annotations"]["blob"]) == 300_000

    run(scenario)


async def _collect(stream: Any, n: int) -> list[dict[str, Any]]:
    out = []
    async for event in stream:
        out.append(event)
        if len(out) == n:
            break
    await stream.aclose()
    return out


def test_bind_many_reports_per_pod_results_in_order() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        for i in range(20):
            fake.put("pods", pod(f"p{i}"))
        fake.put("pods", dict(pod("bound"), spec={"nodeName": "n0"}))
        bindings = [("default", f"p{i}", f"n{i % 3}") for i in range(20)]
        bindings += [("default", "missing", "n1"), ("default", "bound", "n2")]
        results = await client.bind_many(bindings, concurrency=4)
        assert results[:20] == [None] * 20
        assert [(e.status, e.reason) if e else None for e in results[20:]] == [
            (404, "NotFound"),
            (409, "Conflict"),
        ]
        assert fake.objects["pods"][("default", "p4")]["spec"]["nodeName"] == "n1"
        sent = fake.calls("POST")[0]
        assert sent.path == "/api/v1/namespaces/default/pods/p0/binding"
        assert sent.body == {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "p0", "namespace": "default"},
            "target": {"apiVersion": "v1", "kind": "Node", "name": "n0"},
        }

    run(scenario)


def test_bearer_token_header() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        await client.list("v1", "pods")
        assert fake.requests[-1].headers["Authorization"] == "Bearer s3cret"

    run(scenario, token="s3cret")


def test_qps_limit_spaces_requests_after_burst() -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        start = time.monotonic()
        await asyncio.gather(*(client.list("v1", "pods") for _ in range(24)))
        # burst 20 at 20 qps: the 21st..24th requests wait 50, 100, 150 and 200 ms
        assert time.monotonic() - start >= 0.19
        assert len(fake.requests) == 24

    run(scenario, qps_limit=20)


def test_transport_error_when_server_unreachable() -> None:
    async def main() -> None:
        client = ApiClient("http://127.0.0.1:9", request_timeout=2)
        try:
            with pytest.raises(TransportError) as err:
                await client.get("v1", "pods", "x", "default")
            assert err.value.status == 0 and isinstance(err.value, ApiError)
            results = await client.bind_many([("default", "p", "n")])
            assert isinstance(results[0], TransportError)
        finally:
            await client.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("status", "retry_after", "times", "attempts", "outcome"),
    [
        pytest.param(429, "0", 2, 3, None, id="429-retried-until-success"),
        pytest.param(503, "0", 1, 2, None, id="503-with-retry-after-retried"),
        pytest.param(503, None, 1, 1, 503, id="503-without-retry-after-is-final"),
        pytest.param(500, None, 1, 1, 500, id="500-is-final"),
        pytest.param(429, "0", 10, 4, 429, id="gives-up-after-max-retries"),
    ],
)
def test_retry_after(
    status: int, retry_after: str | None, times: int, attempts: int, outcome: int | None
) -> None:
    async def scenario(fake: FakeApiServer, client: ApiClient) -> None:
        fake.put("pods", pod("web"))
        fake.fail("POST", status, "x", times=times, retry_after=retry_after)
        body = {"metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}}
        if outcome is None:
            await client.create("v1", "pods", body, "default", subresource="binding")
        else:
            with pytest.raises(ApiError) as err:
                await client.create("v1", "pods", body, "default", subresource="binding")
            assert err.value.status == outcome
        assert len(fake.calls("POST")) == attempts

    run(scenario, max_retries=3)
