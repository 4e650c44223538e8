"""Parsing a Kubernetes REST request: which resource, which verb, which body.

``parse_path`` maps ``/api/v1/namespaces/default/pods/web/log`` to (ResourceInfo, namespace, name,
subresource); ``read_body`` decodes JSON, YAML or Kubernetes protobuf bodies with the 3 MiB limit and
Kubernetes' error texts; ``encode_json`` is the one JSON encoder for responses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml
from aiohttp import web

from cluster.apiserver.errors import StatusError, bad_request, too_large, unsupported_media_type
from cluster.apiserver.protobuf import ProtobufDecodeError, UnsupportedProtobufKindError, decode_k8s_protobuf
from cluster.apiserver.resources import ResourceInfo, lookup

MAX_BODY_BYTES = 3 * 1024 * 1024  # kube-apiserver's MaxRequestBodyBytes

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply-cbor",
}


@dataclass(frozen=True, slots=True)
class Target:
    info: ResourceInfo
    namespace: str | None
    name: str | None
    subresource: str | None


NAMESPACE_SUBRESOURCES = frozenset({"status", "finalize"})


def parse_path(group: str, version: str, parts: list[str]) -> Target:
    """``parts`` is the path after ``/api/v1`` or ``/apis/<group>/<version>``."""
    namespace: str | None = None
    # ``namespaces/<name>/status`` and ``/finalize`` are the Namespace's own subresources, not a
    # resource called "status" inside namespace <name> (no namespaced resource has those names).
    own_subresource = len(parts) == 3 and not group and parts[2] in NAMESPACE_SUBRESOURCES
    if parts and parts[0] == "namespaces" and len(parts) >= 3 and not own_subresource:
        namespace, parts = parts[1], parts[2:]
    if not parts or len(parts) > 3:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    info = lookup(group, version, parts[0])
    if info is None:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    if namespace is not None and not info.namespaced:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    name = parts[1] if len(parts) > 1 else None
    sub = parts[2] if len(parts) > 2 else None
    if sub is not None and info.subresource(sub) is None:
        raise StatusError(404, "NotFound", "the server could not find the requested resource")
    return Target(info, namespace, name, sub)


def media_type(request: web.Request) -> str:
    return (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()


async def read_raw(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise too_large(MAX_BODY_BYTES)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large(MAX_BODY_BYTES)
        chunks.append(chunk)
    body = request["raw_body"] = b"".join(chunks)  # the audit log's requestObject (apiserver.audit)
    return body


def decode_body(raw: bytes, mtype: str) -> Any:
    if mtype in ("", "application/json", "*/*") or mtype.endswith("+json"):
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError as e:
            raise bad_request(f"json parse error: {e}") from None
    if mtype in ("application/yaml", "application/x-yaml", "text/yaml") or mtype.endswith("+yaml"):
        try:
            return yaml.safe_load(raw) if raw else None
        except yaml.YAMLError as e:
            raise bad_request(f"yaml parse error: {e}") from None
    if mtype == "application/vnd.kubernetes.protobuf":
        try:
            return decode_k8s_protobuf(raw)
        except UnsupportedProtobufKindError as e:
            raise StatusError(415, "UnsupportedMediaType", f"protobuf body not supported: {e}") from None
        except ProtobufDecodeError as e:
            raise bad_request(f"malformed protobuf body: {e}") from None
    raise unsupported_media_type(mtype)


async def read_object(request: web.Request) -> dict[str, Any]:
    body = decode_body(await read_raw(request), media_type(request))
    if not isinstance(body, dict):
        raise bad_request("the body of the request must be a JSON object")
    return body


def encode_json(obj: Any) -> bytes:
    return orjson.dumps(obj)


def json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode_json(obj), status=status, content_type="application/json")


def query_bool(request: web.Request, name: str) -> bool:
    return request.query.get(name, "").lower() in ("true", "1")


def query_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"invalid value for {name}: {raw!r}") from None


def dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for v in values:
        if v != "All":
            raise bad_request(f'Invalid dryRun value "{v}": supported values: "All"')
    return bool(values)
