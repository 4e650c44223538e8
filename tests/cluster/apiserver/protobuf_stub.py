"""A recording stub API server for running the real kubectl against (plain HTTP on loopback).

It answers just enough discovery for kubectl's typed clients (core, apps, batch, autoscaling,
rbac, networking, policy, scheduling, authorization, authentication subresources), records every
request's method, path, Content-Type and body, and replies to writes with a JSON echo of the
decoded body (201 for POST, 200 otherwise) so kubectl exits 0. GETs of single objects (and PATCHes)
answer from ``objects`` (path -> object); other GETs 404.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cluster.apiserver.protobuf import ProtobufDecodeError, decode_k8s_protobuf, is_protobuf_content_type

VERBS = ["create", "get", "list", "update", "patch", "delete"]


def _resources(*specs: tuple[str, str, bool]) -> list[dict[str, Any]]:
    return [
        {"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": VERBS}
        for name, kind, namespaced in specs
    ]


def _subresource(name: str, kind: str, group: str, version: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespaced": True,
        "kind": kind,
        "group": group,
        "version": version,
        "verbs": VERBS,
    }


GROUP_RESOURCES: dict[str, list[dict[str, Any]]] = {
    "apps/v1": [
        *_resources(("deployments", "Deployment", True)),
        _subresource("deployments/scale", "Scale", "autoscaling", "v1"),
    ],
    "batch/v1": _resources(("jobs", "Job", True), ("cronjobs", "CronJob", True)),
    "autoscaling/v2": _resources(("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)),
    "autoscaling/v1": _resources(("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)),
    "rbac.authorization.k8s.io/v1": _resources(
        ("roles", "Role", True),
        ("clusterroles", "ClusterRole", False),
        ("rolebindings", "RoleBinding", True),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ),
    "networking.k8s.io/v1": _resources(("ingresses", "Ingress", True)),
    "policy/v1": _resources(("poddisruptionbudgets", "PodDisruptionBudget", True)),
    "scheduling.k8s.io/v1": _resources(("priorityclasses", "PriorityClass", False)),
    "authorization.k8s.io/v1": _resources(
        ("selfsubjectaccessreviews", "SelfSubjectAccessReview", False),
        ("selfsubjectrulesreviews", "SelfSubjectRulesReview", False),
    ),
}
CORE_RESOURCES = [
    *_resources(
        ("pods", "Pod", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("resourcequotas", "ResourceQuota", True),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("namespaces", "Namespace", False),
        ("nodes", "Node", False),
    ),
    _subresource("pods/eviction", "Eviction", "policy", "v1"),
    _subresource("serviceaccounts/token", "TokenRequest", "authentication.k8s.io", "v1"),
]


def discovery() -> dict[str, Any]:
    """Legacy discovery documents by path."""
    groups: dict[str, list[str]] = {}
    for group_version in GROUP_RESOURCES:
        group, version = group_version.split("/")
        groups.setdefault(group, []).append(version)
    documents: dict[str, Any] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"]},
        "/apis": {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
                for group, versions in groups.items()
            ],
        },
        "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": CORE_RESOURCES},
    }
    for group_version, resources in GROUP_RESOURCES.items():
        documents[f"/apis/{group_version}"] = {
            "kind": "APIResourceList",
            "groupVersion": group_version,
            "resources": resources,
        }
    return documents


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str  # without the query
    query: str
    content_type: str | None
    body: bytes

    @property
    def is_protobuf(self) -> bool:
        return is_protobuf_content_type(self.content_type)


class StubServer:
    """Start with ``StubServer()``, point kubectl at ``url``, read ``requests``, then ``close()``."""

    def __init__(self, objects: dict[str, dict[str, Any]] | None = None) -> None:
        self.requests: list[Recorded] = []
        self.objects = objects or {}
        documents = discovery()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _reply(self, code: int, document: dict[str, Any]) -> None:
                payload = json.dumps(document).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def _record(self) -> Recorded:
                path, _, query = self.path.partition("?")
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                entry = Recorded(self.command, path, query, self.headers.get("Content-Type"), body)
                stub.requests.append(entry)
                return entry

            def do_GET(self) -> None:
                entry = self._record()
                document = documents.get(entry.path) or stub.objects.get(entry.path)
                if document is None:
                    self._reply(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404})
                else:
                    self._reply(200, document)

            def _write(self) -> None:
                entry = self._record()
                try:
                    echo = (
                        decode_k8s_protobuf(entry.body)
                        if entry.is_protobuf
                        else json.loads(entry.body or b"{}")
                    )
                except (ProtobufDecodeError, ValueError):
                    self._reply(400, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 400})
                    return
                if self.command == "PATCH" and entry.path in stub.objects:
                    # Patches answer with the stored object; the stub does not apply them.
                    echo = stub.objects[entry.path]
                elif echo.get("kind") == "TokenRequest":
                    echo["status"] = {"token": "t0k3n", "expirationTimestamp": "2030-01-01T00:00:00Z"}
                elif echo.get("kind") in ("DeleteOptions", "Eviction") or "kind" not in echo:
                    echo = {"kind": "Status", "apiVersion": "v1", "status": "Success"}
                elif str(echo.get("kind")).startswith("SelfSubject"):
                    echo["status"] = {"allowed": True}
                self._reply(201 if self.command == "POST" else 200, echo)

            do_POST = do_PUT = do_PATCH = do_DELETE = _write

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def writes_since(self, index: int) -> list[Recorded]:
        return [r for r in self.requests[index:] if r.method != "GET"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
