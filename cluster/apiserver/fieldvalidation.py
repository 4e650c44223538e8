"""Server-side field validation (``?fieldValidation=Strict|Warn|Ignore``) against the kinds' schemas.

Kubernetes decodes request bodies strictly when asked: an unknown field is a 400 ``BadRequest``
(``strict decoding error: unknown field "spec.containers[0].imagee"``) under ``Strict``, a
``Warning`` response header under ``Warn``, and silently dropped under ``Ignore`` (the default for
clients that do not ask). kubectl asks for ``Strict`` because our OpenAPI documents advertise the
``fieldValidation`` parameter. The schemas are the same ones ``/openapi/v3`` serves.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.errors import bad_request
from cluster.apiserver.openapi.schemas import REF_PREFIX, all_schemas, schema_name
from cluster.apiserver.resources import ResourceInfo

MODES = ("Strict", "Warn", "Ignore")


def _resolve(schema: dict[str, Any]) -> dict[str, Any] | None:
    seen = 0
    while seen < 8:
        seen += 1
        ref = schema.get("$ref")
        if ref is None and len(schema.get("allOf") or []) == 1:
            ref = schema["allOf"][0].get("$ref")
        if ref is None:
            return schema
        entry = all_schemas().get(ref[len(REF_PREFIX) :] if ref.startswith(REF_PREFIX) else ref)
        if entry is None:
            return None
        schema = entry[0]
    return None


def unknown_fields(value: Any, schema: dict[str, Any] | None, path: str = "") -> list[str]:
    """Paths of fields in ``value`` that ``schema`` does not know, in Kubernetes' notation."""
    if schema is None:
        return []
    schema = _resolve(schema)
    if (
        schema is None
        or schema.get("x-kubernetes-preserve-unknown-fields")
        or schema.get("x-kubernetes-int-or-string")
    ):
        return []
    out: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                for k, v in value.items():
                    out += unknown_fields(v, extra, f"{path}.{k}" if path else k)
            return out
        for k, v in value.items():
            sub = props.get(k)
            child = f"{path}.{k}" if path else k
            if sub is None:
                out.append(child)
            else:
                out += unknown_fields(v, sub, child)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, v in enumerate(value):
                out += unknown_fields(v, items, f"{path}[{i}]")
    return out


def check(info: ResourceInfo, obj: dict[str, Any], mode: str | None) -> list[str]:
    """Apply ``mode`` to ``obj``: raise 400 (Strict), return warnings (Warn), or return [] (Ignore)."""
    mode = mode or "Ignore"
    if mode not in MODES:
        raise bad_request(f'fieldValidation must be one of "Ignore", "Warn" or "Strict", not "{mode}"')
    if mode == "Ignore":
        return []
    name = schema_name(info.group, info.version, info.kind)
    if name is None:
        return []
    unknown = unknown_fields(obj, all_schemas()[name][0])
    if not unknown:
        return []
    messages = [f'unknown field "{p}"' for p in unknown]
    if mode == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(messages))
    return messages
