"""Shared builders for validation tests: minimal valid objects that cases then break."""

from __future__ import annotations

import copy
from typing import Any

from cluster.apiserver.defaults import apply_defaults
from cluster.apiserver.validation import validate_create, validate_update

CONTAINER = {"name": "web", "image": "nginx:1.27"}


def meta(name: str = "web", namespace: str | None = "default", **extra: Any) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name, **extra}
    if namespace is not None:
        m["namespace"] = namespace
    return m


def pod(**spec: Any) -> dict[str, Any]:
    body = {"containers": [dict(CONTAINER)], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta(), "spec": body}


def template(labels: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": "web"} if labels is None else labels},
        "spec": {"containers": [dict(CONTAINER)], **spec},
    }


def workload(kind: str, api_version: str = "apps/v1", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"selector": {"matchLabels": {"app": "web"}}, "template": template(), **spec}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta(), "spec": body}


def edit(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of obj with the dotted path set (list indices as numbers); value None deletes."""
    out = copy.deepcopy(obj)
    parts = path.split(".")
    node: Any = out
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return out


def create_details(obj: dict[str, Any], namespaced: bool = True) -> list[str]:
    return [c.detail() for c in validate_create(apply_defaults(obj), namespaced=namespaced)]


def update_details(new: dict[str, Any], old: dict[str, Any], namespaced: bool = True) -> list[str]:
    return [
        c.detail() for c in validate_update(apply_defaults(new), apply_defaults(old), namespaced=namespaced)
    ]
