"""Direct HTTPS requests to the API server started by `raykube up`, with the kubeconfig's client
certificate: the error codes kubectl and client-go rely on, and that no body leaks a traceback."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.integration.conftest import RaykubeCluster


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Api:
    """One HTTPS connection per request to the API server, with or without the admin certificate."""

    def __init__(self, cluster: RaykubeCluster, certs: Path, *, client_cert: bool = True) -> None:
        config = yaml.safe_load(cluster.kubeconfig.read_text())
        url = urlparse(config["clusters"][0]["cluster"]["server"])
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 443
        ca = certs / "ca.crt"
        ca.write_bytes(base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]))
        self.context = ssl.create_default_context(cafile=str(ca))
        if client_cert:
            user = config["users"][0]["user"]
            (certs / "client.crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
            (certs / "client.key").write_bytes(base64.b64decode(user["client-key-data"]))
            self.context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
        self.replies: list[Reply] = []

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            reply = Reply(resp.status, resp.read())
        finally:
            conn.close()
        self.replies.append(reply)
        return reply


@pytest.fixture
def api(raykube_cluster: RaykubeCluster, tmp_path: Path) -> Iterator[Api]:
    client = Api(raykube_cluster, tmp_path)
    yield client
    for reply in client.replies:
        assert b"Traceback" not in reply.body and b'File "' not in reply.body, reply.body[:2000]


JSON = {"Content-Type": "application/json"}


def configmap(name: str, data: dict[str, str] | None = None) -> bytes:
    return json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data or {}}
    ).encode()


def cm_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/configmaps" + (f"/{name}" if name else "")


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "code", "reason"),
    [
        pytest.param(
            "POST", "{cms}", b"{" + b" " * (3 * 1024 * 1024 + 10) + b"}", JSON, 413, "RequestEntityTooLarge",
            id="413-body-over-3MiB",
        ),
        pytest.param(
            "POST", "{cms}", configmap("x"), {"Content-Type": "application/x-unknown"}, 415,
            "UnsupportedMediaType", id="415-unknown-content-type",
        ),
        pytest.param(
            "PATCH", "{cms}/x", b"{}", {"Content-Type": "text/plain"}, 415, "UnsupportedMediaType",
            id="415-unknown-patch-type",
        ),
        pytest.param(
            "PUT", "{cms}", configmap("x"), JSON, 405, "MethodNotAllowed", id="405-put-on-collection",
        ),
        pytest.param("POST", "{cms}", b'{"kind": ', JSON, 400, "BadRequest", id="400-malformed-json"),
        pytest.param("POST", "{cms}", b"[1, 2]", JSON, 400, "BadRequest", id="400-body-not-object"),
        pytest.param("GET", "{cms}/missing", None, {}, 404, "NotFound", id="404-missing-object"),
        pytest.param("GET", "/api/v1/nosuchresource", None, {}, 404, "NotFound", id="404-unknown-resource"),
        pytest.param(
            "GET", "{cms}?labelSelector=a%20in%20(", None, {}, 400, "BadRequest", id="400-bad-label-selector",
        ),
        pytest.param(
            "GET", "{cms}?fieldSelector=spec.nope%3Dx", None, {}, 400, "BadRequest",
            id="400-bad-field-selector",
        ),
        pytest.param("GET", "{cms}?limit=abc", None, {}, 400, "BadRequest", id="400-bad-limit"),
    ],
)  # fmt: skip
def test_error_statuses(
    api: Api,
    namespace: str,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    code: int,
    reason: str,
) -> None:
    reply = api.request(method, path.format(cms=cm_path(namespace)), body, headers)
    assert reply.status == code, reply.body[:500]
    status = reply.json()
    assert (status["kind"], status["status"], status["code"], status["reason"]) == (
        "Status",
        "Failure",
        code,
        reason,
    )


def test_put_with_stale_resource_version_is_conflict(api: Api, namespace: str) -> None:
    created = api.request("POST", cm_path(namespace), configmap("c", {"v": "1"}), JSON)
    assert created.status == 201
    obj = created.json()
    fresh = dict(obj, data={"v": "2"})
    assert api.request("PUT", cm_path(namespace, "c"), json.dumps(fresh).encode(), JSON).status == 200
    stale = dict(obj, data={"v": "3"})  # still carries the first resourceVersion
    reply = api.request("PUT", cm_path(namespace, "c"), json.dumps(stale).encode(), JSON)
    assert reply.status == 409
    status = reply.json()
    assert status["reason"] == "Conflict"
    assert status["message"] == (
        'Operation cannot be fulfilled on configmaps "c": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    assert api.request("GET", cm_path(namespace, "c")).json()["data"] == {"v": "2"}


def test_watch_from_a_resource_version_before_the_window_is_expired(api: Api, namespace: str) -> None:
    # A list starts the configmaps watch cache; its window begins at the store revision of that
    # moment, so resourceVersion 1 (the store's first write) is older than anything it can replay.
    assert api.request("GET", cm_path(namespace)).status == 200
    api.request("POST", cm_path(namespace), configmap("w"), JSON)
    reply = api.request("GET", cm_path(namespace) + "?watch=true&resourceVersion=1&timeoutSeconds=5")
    events = [json.loads(line) for line in reply.body.splitlines() if line.strip()]
    if reply.status == 410:
        status = reply.json()
    else:
        assert reply.status == 200
        assert events and events[0]["type"] == "ERROR", events
        status = events[0]["object"]
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 410, "Expired")
    assert status["message"].startswith("too old resource version: 1 (")


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        pytest.param(
            "/api/v1/namespaces",
            403,
            'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" '
            'in API group "" at the cluster scope',
            id="resources-are-forbidden-to-anonymous",
        ),
        pytest.param(
            "/api",
            403,
            'forbidden: User "system:anonymous" cannot get path "/api"',
            id="discovery-is-for-authenticated-users",
        ),
        pytest.param("/version", 200, None, id="version-is-public"),
        pytest.param("/healthz", 200, None, id="healthz-is-public"),
    ],
)
def test_without_client_certificate(
    raykube_cluster: RaykubeCluster, tmp_path: Path, path: str, code: int, message: str | None
) -> None:
    """No credential: the anonymous user, allowed only what system:public-info-viewer grants (as a
    kube-apiserver with --anonymous-auth, the default), refused with RBAC's 403 elsewhere."""
    anonymous = Api(raykube_cluster, tmp_path, client_cert=False)
    reply = anonymous.request("GET", path)
    assert reply.status == code, reply.body[:500]
    if message is not None:
        status = reply.json()
        assert (status["kind"], status["code"], status["reason"]) == ("Status", 403, "Forbidden")
        assert status["message"] == message
    assert b"Traceback" not in reply.body


def test_success_paths_round_trip(api: Api, namespace: str) -> None:
    """The happy path over plain HTTP: create, get, merge-patch, list, delete."""
    assert api.request("POST", cm_path(namespace), configmap("ok", {"a": "1"}), JSON).status == 201
    patched = api.request(
        "PATCH",
        cm_path(namespace, "ok"),
        b'{"data": {"b": "2"}}',
        {"Content-Type": "application/merge-patch+json"},
    )
    assert patched.status == 200 and patched.json()["data"] == {"a": "1", "b": "2"}
    listed = api.request("GET", cm_path(namespace)).json()
    names = [i["metadata"]["name"] for i in listed["items"]]
    # the root-ca-cert-publisher puts kube-root-ca.crt in every namespace, as in Kubernetes (maybe not yet)
    assert listed["kind"] == "ConfigMapList" and [n for n in names if n != "kube-root-ca.crt"] == ["ok"]
    deleted = api.request("DELETE", cm_path(namespace, "ok"))
    assert deleted.status == 200 and deleted.json()["status"] == "Success"
    assert api.request("GET", cm_path(namespace, "ok")).status == 404
