"""OpenAPI v3 ``paths`` for one resource: the usual REST operations with Kubernetes' extensions.

Role: list/create/deletecollection on the collection, get/replace/patch/delete on the item,
list-for-all-namespaces, and the subresources, each with ``x-kubernetes-action`` and
``x-kubernetes-group-version-kind``. Every ``patch`` operation lists ``fieldValidation`` inline,
which is what kubectl checks before sending ``fieldValidation=Strict``.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.openapi.schemas import META_PACKAGE, REF_PREFIX, schema_name
from cluster.apiserver.resources import ResourceInfo

# ---------------------------------------------------------------------------------------------


def _query(name: str, description: str, schema_type: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "description": description,
        "schema": {"type": schema_type, "uniqueItems": True},
    }


_PRETTY = _query("pretty", "If 'true', then the output is pretty printed.")
_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted. Valid: All")
_FIELD_MANAGER = _query(
    "fieldManager", "fieldManager is a name associated with the actor or entity making these changes."
)
_FIELD_VALIDATION = _query(
    "fieldValidation",
    "fieldValidation instructs the server on how to handle objects in the request containing unknown "
    "or duplicate fields. Valid values are: Ignore, Warn (the default) and Strict.",
)
_FORCE = _query("force", 'Force is going to "force" Apply requests. Only for apply patches.', "boolean")
_LIST_PARAMS = [
    _PRETTY,
    _query("allowWatchBookmarks", "allowWatchBookmarks requests watch events with type BOOKMARK.", "boolean"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query(
        "resourceVersion",
        "resourceVersion sets a constraint on what resource versions a request may be served from.",
    ),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources.", "boolean"),
]
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "uniqueItems": True},
    }


def _json_body(ref: str) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": {"$ref": REF_PREFIX + ref}}}, "required": True}


def _responses(ref: str, codes: tuple[str, ...] = ("200",)) -> dict[str, Any]:
    body = {"content": {"application/json": {"schema": {"$ref": REF_PREFIX + ref}}}}
    return {code: {"description": "OK" if code == "200" else "Created", **body} for code in codes}


def _operation(
    action: str,
    op_id: str,
    gvk: dict[str, str],
    params: list[dict[str, Any]],
    responses: dict[str, Any],
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "parameters": params, "responses": responses}
    if body is not None:
        op["requestBody"] = body
    op["x-kubernetes-action"] = action
    op["x-kubernetes-group-version-kind"] = gvk
    return op


def _op_prefix(info: ResourceInfo) -> str:
    group = "".join(
        part.capitalize() for part in (info.group.split(".")[0] if info.group else "core").split("-")
    )
    return f"{group}{info.version.capitalize()}"


def resource_paths(info: ResourceInfo, base: str) -> dict[str, Any]:
    kind_ref = schema_name(info.group, info.version, info.kind)
    list_ref = schema_name(info.group, info.version, info.list_kind)
    if kind_ref is None:
        return {}
    gvk = {"group": info.group, "version": info.version, "kind": info.kind}
    scope = "Namespaced" if info.namespaced else ""
    prefix = _op_prefix(info)
    collection = (
        f"{base}/namespaces/{{namespace}}/{info.plural}" if info.namespaced else f"{base}/{info.plural}"
    )
    path_ns = (
        [_path_param("namespace", "object name and auth scope, such as for teams and projects")]
        if info.namespaced
        else []
    )
    name_param = [_path_param("name", f"name of the {info.kind}")]
    write = [_PRETTY, _DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
    status_ref = f"{META_PACKAGE}.Status"
    paths: dict[str, Any] = {}
    ops: dict[str, Any] = {}
    verbs = set(info.verbs)
    if "list" in verbs and list_ref:
        ops["get"] = _operation(
            "list", f"list{prefix}{scope}{info.kind}", gvk, path_ns + _LIST_PARAMS, _responses(list_ref)
        )
    if "create" in verbs:
        ops["post"] = _operation(
            "post",
            f"create{prefix}{scope}{info.kind}",
            gvk,
            path_ns + write,
            _responses(kind_ref, ("200", "201")),
            _json_body(kind_ref),
        )
    if "deletecollection" in verbs:
        ops["delete"] = _operation(
            "deletecollection",
            f"deleteCollection{prefix}{scope}{info.kind}",
            gvk,
            path_ns + _LIST_PARAMS,
            _responses(status_ref),
        )
    if ops:
        paths[collection] = ops
    item: dict[str, Any] = {}
    item_params = path_ns + name_param
    if "get" in verbs:
        item["get"] = _operation(
            "get", f"read{prefix}{scope}{info.kind}", gvk, [*item_params, _PRETTY], _responses(kind_ref)
        )
    if "update" in verbs:
        item["put"] = _operation(
            "put",
            f"replace{prefix}{scope}{info.kind}",
            gvk,
            item_params + write,
            _responses(kind_ref, ("200", "201")),
            _json_body(kind_ref),
        )
    if "patch" in verbs:
        item["patch"] = _patch_operation(f"patch{prefix}{scope}{info.kind}", gvk, item_params, kind_ref)
    if "delete" in verbs:
        item["delete"] = _operation(
            "delete",
            f"delete{prefix}{scope}{info.kind}",
            gvk,
            [*item_params, _PRETTY, _DRY_RUN],
            _responses(kind_ref),
        )
    if item:
        paths[f"{collection}/{{name}}"] = item
    if info.namespaced and "list" in verbs and list_ref:
        paths[f"{base}/{info.plural}"] = {
            "get": _operation(
                "list", f"list{prefix}{info.kind}ForAllNamespaces", gvk, _LIST_PARAMS, _responses(list_ref)
            )
        }
    for sub in info.subresources:
        sub_ref = schema_name(sub.group, sub.version, sub.kind)
        if sub_ref is None:
            continue
        sub_gvk = {"group": sub.group, "version": sub.version, "kind": sub.kind}
        suffix = f"{scope}{info.kind}{sub.name.capitalize()}"
        sub_ops: dict[str, Any] = {}
        if "get" in sub.verbs:
            sub_ops["get"] = _operation(
                "get", f"read{prefix}{suffix}", sub_gvk, [*item_params, _PRETTY], _responses(sub_ref)
            )
        if "create" in sub.verbs:
            sub_ops["post"] = _operation(
                "post",
                f"create{prefix}{suffix}",
                sub_gvk,
                item_params + write,
                _responses(sub_ref, ("200", "201")),
                _json_body(sub_ref),
            )
        if "update" in sub.verbs:
            sub_ops["put"] = _operation(
                "put",
                f"replace{prefix}{suffix}",
                sub_gvk,
                item_params + write,
                _responses(sub_ref, ("200", "201")),
                _json_body(sub_ref),
            )
        if "patch" in sub.verbs:
            sub_ops["patch"] = _patch_operation(f"patch{prefix}{suffix}", sub_gvk, item_params, sub_ref)
        if sub_ops:
            paths[f"{collection}/{{name}}/{sub.name}"] = sub_ops
    return paths


def _patch_operation(
    op_id: str, gvk: dict[str, str], params: list[dict[str, Any]], ref: str
) -> dict[str, Any]:
    body = {"content": {t: {"schema": {"type": "object"}} for t in _PATCH_TYPES}, "required": True}
    return _operation(
        "patch",
        op_id,
        gvk,
        [*params, _PRETTY, _DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION, _FORCE],
        _responses(ref, ("200", "201")),
        body,
    )
