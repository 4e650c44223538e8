"""The audit middleware in a real aiohttp application (no Ray): the events' fields per level and
stage, Audit-Id, annotations, impersonation, failures and panics, and the log file writer."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cluster.apiserver.audit import AuditLog, Auditor
from cluster.apiserver.audit_policy import parse
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.context import add_audit_annotation
from cluster.apiserver.errors import StatusError
from cluster.apiserver.request import json_response, read_object

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

POLICY = """
apiVersion: audit.k8s.io/v1
kind: Policy
omitManagedFields: true
rules:
  - level: None
    users: [quiet]
  - level: Metadata
    resources: [{group: "", resources: [secrets]}]
  - level: RequestResponse
    resources: [{group: "", resources: [configmaps]}]
  - level: Request
    resources: [{group: "", resources: [pods, pods/log, pods/exec]}]
  - level: Metadata
    omitStages: [RequestReceived]
    nonResourceURLs: ["/boom"]
"""


class Sink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def write(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def make_app(sink: Sink) -> web.Application:
    auditor = Auditor(parse(POLICY), sink, clock=lambda: 1_700_000_000.123456)

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except StatusError as e:
            return json_response(e.body(), e.code)
        except RuntimeError:
            return json_response({"kind": "Status", "code": 500}, 500)

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if "X-Refuse" in request.headers:
            raise StatusError(401, "Unauthorized", "Unauthorized")
        request["user"] = UserInfo(
            request.headers.get("X-User", "alice"), groups=("devs", "system:authenticated")
        )
        return await handler(request)

    @web.middleware
    async def impersonate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if as_user := request.headers.get("Impersonate-User"):
            request["impersonated_user"] = request["user"] = UserInfo(as_user)
        return await handler(request)

    @web.middleware
    async def authorize(request: web.Request, handler: Handler) -> web.StreamResponse:
        add_audit_annotation("authorization.k8s.io/decision", "allow")
        add_audit_annotation("authorization.k8s.io/reason", "because")
        return await handler(request)

    async def create(request: web.Request) -> web.Response:
        obj = await read_object(request)
        add_audit_annotation("example.com/plugin", "saw it")
        return json_response({**obj, "metadata": {**obj["metadata"], "uid": "u1"}}, 201)

    async def get_cm(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name == "missing":
            raise StatusError(
                404,
                "NotFound",
                f'configmaps "{name}" not found',
                details={"name": name, "kind": "configmaps"},
            )
        meta = {"name": name, "managedFields": [{"manager": "kubectl"}]}
        return json_response({"kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}})

    async def log(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"line\n")
        return resp

    async def exec_(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        await resp.write(b"partial")
        raise asyncio.CancelledError  # the client went away mid-stream

    async def healthz(request: web.Request) -> web.Response:
        return json_response("ok")

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("kaput")

    app = web.Application(middlewares=[errors, authenticate, auditor.middleware, impersonate, authorize])
    app.on_response_prepare.append(auditor.on_response_prepare)
    app.router.add_post("/api/v1/namespaces/{ns}/secrets", create)
    app.router.add_post("/api/v1/namespaces/{ns}/configmaps", create)
    app.router.add_get("/api/v1/namespaces/{ns}/configmaps/{name}", get_cm)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}/log", log)
    app.router.add_get("/boom", boom)
    app.router.add_post("/api/v1/namespaces/{ns}/pods/{name}/exec", exec_)
    app.router.add_get("/healthz", healthz)
    return app


def run(scenario: Callable[[TestClient[Any, Any], Sink], Awaitable[None]]) -> Sink:
    sink = Sink()

    async def main() -> None:
        async with TestClient(TestServer(make_app(sink))) as client:
            await scenario(client, sink)

    asyncio.run(main())
    return sink


SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"}, "data": {"password": "c2VjcmV0"}}


def test_metadata_level_logs_who_and_what_but_no_object() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        resp = await client.post(
            "/api/v1/namespaces/ns/secrets?fieldManager=kubectl",
            json=SECRET,
            headers={"User-Agent": "kubectl/v1.33"},
        )
        assert resp.status == 201
        ids = {e["auditID"] for e in sink.events}
        assert ids == {resp.headers["Audit-Id"]}

    events = run(scenario).events
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseComplete"]
    done = events[1]
    assert done == {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": done["auditID"],
        "stage": "ResponseComplete",
        "requestURI": "/api/v1/namespaces/ns/secrets?fieldManager=kubectl",
        "verb": "create",
        "user": {"username": "alice", "groups": ["devs", "system:authenticated"]},
        "sourceIPs": ["127.0.0.1"],
        "userAgent": "kubectl/v1.33",
        "objectRef": {"resource": "secrets", "namespace": "ns", "name": "s1", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": 201},
        "requestReceivedTimestamp": "2023-11-14T22:13:20.123456Z",
        "stageTimestamp": "2023-11-14T22:13:20.123456Z",
        "annotations": {
            "authorization.k8s.io/decision": "allow",
            "authorization.k8s.io/reason": "because",
            "example.com/plugin": "saw it",
        },
    }
    assert "annotations" not in events[0]  # written before the authorizer ran
    assert "c2VjcmV0" not in json.dumps(events)


def test_request_response_level_logs_both_objects_without_managed_fields() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        cm = {
            "kind": "ConfigMap",
            "metadata": {"name": "c", "managedFields": [{"manager": "x"}]},
            "data": {"a": "b"},
        }
        assert (await client.post("/api/v1/namespaces/ns/configmaps", json=cm)).status == 201
        assert (await client.get("/api/v1/namespaces/ns/configmaps/c")).status == 200

    created, got = run(scenario).events[1], run(scenario).events[3]
    assert created["requestObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "b"}}
    assert created["responseObject"]["metadata"] == {"name": "c", "uid": "u1"}
    assert got["verb"] == "get" and "requestObject" not in got
    assert got["responseObject"] == {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "v"}}


def test_a_failure_carries_the_status_fields() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        assert (await client.get("/api/v1/namespaces/ns/configmaps/missing")).status == 404

    done = run(scenario).events[-1]
    assert done["responseStatus"] == {
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "details": {"name": "missing", "kind": "configmaps"},
        "code": 404,
    }


def test_long_running_requests_get_response_started() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        resp = await client.get("/api/v1/namespaces/ns/pods/p/log", headers={"Impersonate-User": "bob"})
        assert await resp.text() == "line\n"
        assert resp.headers["Audit-Id"]

    events = run(scenario).events
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert events[1]["responseStatus"] == {"metadata": {}, "code": 200}
    assert events[1]["objectRef"]["subresource"] == "log"
    assert "impersonatedUser" not in events[0]
    assert events[2]["user"]["username"] == "alice" and events[2]["impersonatedUser"] == {"username": "bob"}


def test_a_panic_and_omitted_stages() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        assert (await client.get("/boom")).status == 500

    events = run(scenario).events
    assert [e["stage"] for e in events] == ["Panic"]  # RequestReceived omitted by the rule
    assert "objectRef" not in events[0] and events[0]["verb"] == "get"
    assert events[0]["responseStatus"]["message"] == "APIServer panic'd: RuntimeError: kaput"
    assert events[0]["responseStatus"]["code"] == 500


def test_level_none_writes_nothing_but_sends_the_audit_id() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        quiet = await client.post("/api/v1/namespaces/ns/secrets", json=SECRET, headers={"X-User": "quiet"})
        assert quiet.status == 201 and quiet.headers["Audit-Id"]
        given = await client.get("/healthz", headers={"Audit-Id": "mine"})
        assert given.headers["Audit-Id"] == "mine"  # a client's own id is kept, as kube does

    assert run(scenario).events == []


def test_the_log_file_gets_one_json_line_per_event(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.log"
    sink = AuditLog(str(path))
    for i in range(500):
        sink.write({"kind": "Event", "i": i})
    sink.close()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["i"] for line in lines] == list(range(500))
    assert path.stat().st_mode & 0o777 == 0o600


def test_the_log_can_be_the_process_log(caplog: pytest.LogCaptureFixture) -> None:
    sink = AuditLog("-")
    with caplog.at_level("INFO", logger="raykube.apiserver.audit"):
        sink.write({"kind": "Event", "stage": "ResponseComplete"})
        sink.close()
    assert '{"kind":"Event","stage":"ResponseComplete"}' in caplog.text


def test_a_refused_authentication_is_one_response_started_event() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        headers = {"X-Refuse": "1", "Authorization": "Bearer not-a-token"}
        resp = await client.post("/api/v1/namespaces/ns/secrets", json=SECRET, headers=headers)
        assert resp.status == 401 and resp.headers["Audit-Id"] == sink.events[0]["auditID"]
        assert (await client.get("/api/v1/namespaces/ns/services", headers={"X-Refuse": "1"})).status == 401

    events = run(scenario).events
    assert len(events) == 1  # the services request matches no rule
    assert events[0]["stage"] == "ResponseStarted" and events[0]["user"] == {}
    assert events[0]["verb"] == "create" and events[0]["objectRef"]["resource"] == "secrets"
    assert events[0]["responseStatus"] == {
        "metadata": {},
        "message": "Authentication failed, attempted: bearer",
        "code": 401,
    }


def test_a_request_cancelled_mid_stream_still_completes() -> None:
    async def scenario(client: TestClient[Any, Any], sink: Sink) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            resp = await client.post("/api/v1/namespaces/ns/pods/p/exec")
            await resp.read()

    events = run(scenario).events
    assert [e["stage"] for e in events] == ["RequestReceived", "ResponseStarted", "ResponseComplete"]
    assert events[2]["responseStatus"] == {"metadata": {}, "code": 200}
    assert events[2]["objectRef"]["subresource"] == "exec"
