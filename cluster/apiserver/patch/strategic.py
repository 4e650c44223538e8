"""Strategic merge patch, the `application/strategic-merge-patch+json` patch type (server side).

Semantics follow Kubernetes' strategic merge: maps merge recursively and `null` deletes a key; lists
whose field declares `patchStrategy: merge` merge element by element (objects by their merge key,
primitives as a set), every other list is replaced whole. Directives: `$patch: replace|delete` on a map,
`$patch: delete|replace` as a list element, `$retainKeys`, `$setElementOrder/<field>` and
`$deleteFromPrimitiveList/<field>`. Directives never reach the result.

Order of merged lists: items named by the patch (or by `$setElementOrder`) in that order, interleaved
with server-only items which keep their relative order, as Kubernetes does.

Pure: the inputs are not mutated.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from cluster.apiserver.patch.errors import PatchError
from cluster.apiserver.patch.merge_keys import FieldSpec, field_spec, root_type

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"

# mergepatch's error texts; the first group is 400, the second 422 (see the apiserver's patch handler).
ERR_BAD_PRIMITIVE_LIST = "invalid patch format of primitive list"
ERR_BAD_RETAIN_KEYS = "invalid patch format of retainKeys"
ERR_BAD_SET_ELEMENT_ORDER = "invalid patch format of setElementOrder list"
ERR_NO_LIST_OF_LISTS = "lists of lists are not supported"
ERR_RETAIN_KEYS_MISMATCH = "patch content doesn't match retainKeys list"


def strategic_merge_patch(doc: dict[str, Any], patch: Any, kind_key: tuple[str, str]) -> dict[str, Any]:
    """Apply a strategic merge patch to `doc`, an object of kind `kind_key` = (apiVersion, kind)."""
    if not isinstance(patch, dict):
        raise PatchError(
            f"json: cannot unmarshal {type(patch).__name__} into Go value of type map[string]interface {{}}",
            400,
        )
    return _merge_map(copy.deepcopy(doc), copy.deepcopy(patch), root_type(kind_key))


def _go_repr(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], type_name: str | None) -> dict[str, Any]:
    """Merge `patch` into `original` (both private copies; `original` is modified and returned)."""
    if DIRECTIVE in patch:
        directive = patch.pop(DIRECTIVE)
        if directive == "replace":
            return _merge_map({}, patch, type_name)
        if directive == "delete":
            return {}
        if directive != "merge":
            raise PatchError(f"unknown patch type: {directive} in map: {_go_repr(patch)}", 500)
    _apply_retain_keys(original, patch)
    _apply_element_orders(original, patch, type_name)
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            field = key[len(DELETE_FROM_PRIMITIVE_LIST) :]
            if not isinstance(value, list):
                raise PatchError(ERR_BAD_PRIMITIVE_LIST, 400)
            if isinstance(original.get(field), list):
                original[field] = [item for item in original[field] if item not in value]
            continue
        if key.startswith("$"):
            continue
        if value is None:
            original.pop(key, None)
            continue
        spec = field_spec(type_name, key)
        if key not in original:
            original[key] = _fresh(value, spec)
            continue
        current = original[key]
        if isinstance(current, dict) and isinstance(value, dict):
            if "replace" in spec.strategies:
                original[key] = _fresh(value, spec)
            else:
                original[key] = _merge_map(current, value, spec.elem)
        elif isinstance(current, list) and isinstance(value, list) and spec.merges:
            original[key] = _merge_list(current, value, spec)
        else:
            original[key] = _fresh(value, spec)
    return original


def _fresh(value: Any, spec: FieldSpec) -> Any:
    """A patch value that meets nothing in the original: directives and nulls are dropped from it."""
    if isinstance(value, dict):
        return _merge_map({}, value, spec.elem)
    if isinstance(value, list) and spec.merges:
        return _merge_list([], value, spec)
    return value


def _apply_retain_keys(original: dict[str, Any], patch: dict[str, Any]) -> None:
    if RETAIN_KEYS not in patch:
        return
    retain = patch.pop(RETAIN_KEYS)
    if not isinstance(retain, list):
        raise PatchError(ERR_BAD_RETAIN_KEYS, 400)
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((DELETE_FROM_PRIMITIVE_LIST, SET_ELEMENT_ORDER)):
            continue
        if key not in keep:
            raise PatchError(ERR_RETAIN_KEYS_MISMATCH, 422)
    for key in list(original):
        if key not in keep:
            del original[key]


def _apply_element_orders(original: dict[str, Any], patch: dict[str, Any], type_name: str | None) -> None:
    """Handle each `$setElementOrder/<field>` together with its list, then drop both from `patch`."""
    for key in [k for k in patch if k.startswith(SET_ELEMENT_ORDER)]:
        order = patch.pop(key)
        field = key[len(SET_ELEMENT_ORDER) :]
        spec = field_spec(type_name, field)
        if not isinstance(order, list):
            raise PatchError(ERR_BAD_SET_ELEMENT_ORDER, 400)
        if field in patch and patch[field] is None:
            continue  # the null still deletes the field in the main pass
        found = original.get(field)
        has_original = isinstance(found, list)
        has_patch = isinstance(patch.get(field), list)
        current: list[Any] = found if isinstance(found, list) else []
        if not has_original and not has_patch:
            continue
        if has_original and has_patch:
            merged = _merge_list(current, patch[field], spec) if spec.merges else _fresh(patch[field], spec)
        elif has_patch:
            merged = _fresh(patch[field], spec)
        else:
            merged = current
        patch.pop(field, None)
        if not spec.merges:
            original[field] = merged
            continue
        if spec.merge_key is not None and not all(isinstance(o, dict) and spec.merge_key in o for o in order):
            raise PatchError(ERR_BAD_SET_ELEMENT_ORDER, 400)
        identity = _identity(spec)
        order_ids = [identity(o) for o in order]
        named = [item for item in merged if identity(item) in order_ids]
        others = [item for item in merged if identity(item) not in order_ids]
        original[field] = _normalize_order(named, others, order_ids, [identity(i) for i in current], identity)


def _identity(spec: FieldSpec) -> Any:
    """Function giving a hashable identity of a list element: its merge key value, or itself."""
    key = spec.merge_key

    def of(item: Any) -> str:
        if key is not None and isinstance(item, dict):
            return _go_repr(item.get(key))
        return _go_repr(item)

    return of


def _merge_list(original: list[Any], patch: list[Any], spec: FieldSpec) -> list[Any]:
    """Merge two lists of a field with `patchStrategy: merge`."""
    if any(isinstance(item, list) for item in (*original, *patch)):
        raise PatchError(ERR_NO_LIST_OF_LISTS, 422)
    identity = _identity(spec)
    objects = spec.merge_key is not None and any(isinstance(item, dict) for item in (*original, *patch))
    if not objects:
        merged: list[Any] = []
        seen: set[str] = set()
        for item in (*original, *patch):
            if identity(item) not in seen:
                seen.add(identity(item))
                merged.append(item)
    else:
        assert spec.merge_key is not None
        replace, original, patch = _special_elements(original, patch, spec.merge_key)
        if replace:
            return [_merge_map({}, copy.deepcopy(item), spec.elem) for item in patch]
        merged = list(original)
        for item in patch:
            if not isinstance(item, dict) or spec.merge_key not in item:
                raise PatchError(
                    f"map: {_go_repr(item)} does not contain declared merge key: {spec.merge_key}", 500
                )
            index = next((i for i, o in enumerate(merged) if identity(o) == identity(item)), None)
            if index is None:
                merged.append(_merge_map({}, item, spec.elem))
            elif isinstance(merged[index], dict):
                merged[index] = _merge_map(merged[index], item, spec.elem)
            else:
                merged[index] = _merge_map({}, item, spec.elem)
    patch_ids = [identity(p) for p in patch]
    named = [item for item in merged if identity(item) in patch_ids]
    others = [item for item in merged if identity(item) not in patch_ids]
    return _normalize_order(named, others, patch_ids, [identity(o) for o in original], identity)


def _special_elements(
    original: list[Any], patch: list[Any], merge_key: str
) -> tuple[bool, list[Any], list[Any]]:
    """Apply `$patch` list elements: delete-by-key removes originals, replace discards the original."""
    plain: list[Any] = []
    replace = False
    for item in patch:
        if not isinstance(item, dict) or DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[DIRECTIVE]
        if directive == "delete":
            if merge_key not in item:
                raise PatchError(
                    f"map: {_go_repr(item)} does not contain declared merge key: {merge_key}", 500
                )
            original = [
                o for o in original if not (isinstance(o, dict) and o.get(merge_key) == item[merge_key])
            ]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", 500)
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {_go_repr(item)}", 500)
    return replace, original, plain


def _normalize_order(
    named: list[Any], others: list[Any], named_order: list[str], server_order: list[str], identity: Any
) -> list[Any]:
    """Sort `named` by `named_order` and `others` by `server_order`, then interleave them: a named item
    goes before a server-only item only when both exist on the server and it came first there."""
    named = sorted(named, key=lambda item: named_order.index(identity(item)))
    position = {ident: i for i, ident in reversed(list(enumerate(server_order)))}
    others = sorted(others, key=lambda item: position.get(identity(item), len(server_order)))
    result: list[Any] = []
    i = j = 0
    while i < len(named) or j < len(others):
        if j >= len(others):
            result.append(named[i])
            i += 1
        elif i >= len(named):
            result.append(others[j])
            j += 1
        else:
            left = position.get(identity(named[i]))
            right = position.get(identity(others[j]))
            if left is not None and right is not None and left < right:
                result.append(named[i])
                i += 1
            else:
                result.append(others[j])
                j += 1
    return result
