"""OpenAPI v3 documents (and the v2 stub) generated from the kubernetes client's models.

Role: ``/openapi/v3`` (the index) and ``/openapi/v3/<api|apis/group>/<version>`` (one document per
group-version), good enough for what kubectl does with them:
- server-side field validation: kubectl sends ``fieldValidation=Strict`` only when a ``patch``
  operation carrying ``x-kubernetes-group-version-kind`` of the kind lists a ``fieldValidation``
  query parameter (every patch operation here does, inline, as kube-apiserver does);
- ``kubectl explain``: schemas carry the Kubernetes field descriptions, and top-level kinds carry
  ``x-kubernetes-group-version-kind`` which is how explain finds them;
- client-side apply patches: list fields carry ``x-kubernetes-patch-merge-key`` /
  ``x-kubernetes-patch-strategy`` (containers by name, ports by containerPort, ...), so kubectl's
  three-way strategic merge patch deletes removed list items as it does against kube-apiserver.

Limits (the client's models lack some of what the Go types know):
- schema names follow Kubernetes (``io.k8s.api.core.v1.Pod``,
  ``io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta``) but a nested type's package is inferred
  from the first served kind that reaches it (core first), so a few rarely-seen types may sit in
  a neighbouring package;
- ``int`` fields are int32 unless the name says otherwise (seconds, generation, user/group ids);
  ``object`` fields are int-or-string for the well-known names and free-form objects otherwise;
- patch metadata is a curated table of the Kubernetes markers for the common built-ins, not all;
- descriptions of fields that are references come from the field where the model has one; no
  ``default`` values and no validation rules (``x-kubernetes-validations``) are published.

``openapi_v2_stub`` returns the 5-byte protobuf ``Document{swagger:"2.0"}``: kubectl 1.27-1.33
accept it and then skip client-side validation of kinds they cannot find, which is what we want.

Invariants: documents are generated once per process (``functools.cache``), are deterministic, and
every ``$ref`` in a document resolves inside that document's ``components.schemas``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any

from cluster.apiserver.discovery import served_group_versions
from cluster.apiserver.openapi.paths import resource_paths
from cluster.apiserver.openapi.schemas import REF_PREFIX, closure, schema_name
from cluster.apiserver.resources import resources_in

OPENAPI_V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_V2_STUB = bytes([0x0A, 0x03, 0x32, 0x2E, 0x30])


def openapi_v2_stub() -> bytes:
    """The ``/openapi/v2`` body: protobuf ``Document{swagger:"2.0"}``; serve with OPENAPI_V2_CONTENT_TYPE."""
    return _V2_STUB


def _split_path(path: str) -> tuple[str, str] | None:
    parts = path.strip("/").split("/")
    if len(parts) == 2 and parts[0] == "api":
        return "", parts[1]
    if len(parts) == 3 and parts[0] == "apis":
        return parts[1], parts[2]
    return None


@cache
def _group_document(path: str) -> dict[str, Any] | None:
    split = _split_path(path)
    if split is None:
        return None
    group, version = split
    infos = resources_in(group, version)
    if not infos:
        return None
    base = f"/apis/{group}/{version}" if group else f"/api/{version}"
    paths: dict[str, Any] = {}
    referenced: list[str] = []
    for info in infos:
        paths.update(resource_paths(info, base))
    for ops in paths.values():
        for op in ops.values():
            referenced.extend(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(op)))
    title = "Kubernetes"
    return {
        "openapi": "3.0.0",
        "info": {"title": title, "version": "v1.33.0"},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": closure(sorted(set(referenced))),
            "securitySchemes": {
                "BearerToken": {
                    "type": "apiKey",
                    "name": "authorization",
                    "in": "header",
                    "description": "Bearer Token authentication",
                }
            },
        },
    }


def openapi_v3_group(path: str) -> dict[str, Any] | None:
    """The OpenAPI v3 document of one group-version (``api/v1`` or ``apis/apps/v1``), None if not served.

    The returned dict is shared (cached): callers must not mutate it.
    """
    return _group_document(path.strip("/"))


@cache
def openapi_v3_group_bytes(path: str) -> bytes | None:
    """``openapi_v3_group`` serialized once (canonical, compact JSON) for serving and hashing."""
    doc = openapi_v3_group(path)
    if doc is None:
        return None
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def document_hash(path: str) -> str:
    """The content hash used in ``serverRelativeURL`` (upper-case hex SHA-512, as kube-apiserver)."""
    body = openapi_v3_group_bytes(path.strip("/"))
    return hashlib.sha512(body or b"").hexdigest().upper()


def openapi_v3_index(hash_of: Callable[[str], str] = document_hash) -> dict[str, Any]:
    """``GET /openapi/v3``: every served group-version with the URL (carrying ``?hash=``) of its document.

    ``hash_of(path)`` gives the hash of a path's document; the default hashes the real content, so a
    client's cached copy is reused exactly while the document is unchanged.
    """
    return {
        "paths": {
            path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={hash_of(path)}"}
            for path in served_group_versions()
        }
    }


__all__ = [
    "OPENAPI_V2_CONTENT_TYPE",
    "REF_PREFIX",
    "document_hash",
    "openapi_v2_stub",
    "openapi_v3_group",
    "openapi_v3_group_bytes",
    "openapi_v3_index",
    "schema_name",
]
