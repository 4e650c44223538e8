"""Field paths and field sets as server-side apply tracks them, and their FieldsV1 encoding.

A path is a tuple of FieldsV1 path elements: `f:<field>` (a struct or map member), `k:<json>` (an item of
an associative list, by its key fields), `v:<json>` (a member of a set list), `i:<n>` (positional, only
for associative items that lack their keys). A field set is a frozenset of paths; FieldsV1 nests the
elements and marks with `"."` a path that is itself owned and also has owned children.

`flatten` maps every owned path of an object to its value: leaves (scalars, atomic lists and maps,
empty maps) map to themselves, list items and set members to the `ITEM` marker. Server-managed
metadata (name, uid, resourceVersion, managedFields, ...) and apiVersion/kind are never tracked.
"""

from __future__ import annotations

import json
from typing import Any

from cluster.apiserver.patch.errors import PatchError
from cluster.apiserver.patch.merge_keys import FieldSpec, field_spec

Path = tuple[str, ...]
FieldSet = frozenset[Path]


class _Item:
    def __repr__(self) -> str:
        return "ITEM"


ITEM: Any = _Item()

UNTRACKED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",)}
    | {
        ("f:metadata", f"f:{name}")
        for name in (
            "name",
            "namespace",
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
            "managedFields",
        )
    }
)


def canonical_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def item_element(item: Any, spec: FieldSpec, index: int, *, strict: bool) -> str:
    """The `k:` element naming an associative list item; missing keys take their declared default."""
    defaults = dict(spec.key_defaults)
    keys: dict[str, Any] = {}
    for key in spec.list_keys:
        if isinstance(item, dict) and key in item:
            keys[key] = item[key]
        elif key in defaults:
            keys[key] = defaults[key]
        elif strict:
            raise PatchError(
                f'associative list with keys has an element that omits key field "{key}" '
                "(and doesn't have default value)",
                422,
            )
        else:
            return f"i:{index}"
    return "k:" + canonical_json(keys)


def is_keyed_list(value: Any, spec: FieldSpec) -> bool:
    return spec.list_type == "map" and isinstance(value, list) and all(isinstance(i, dict) for i in value)


def flatten(obj: dict[str, Any], type_name: str | None, *, strict: bool = False) -> dict[Path, Any]:
    """Every tracked path of `obj` with its value (ITEM for list items and set members)."""
    out: dict[Path, Any] = {}
    _walk(obj, type_name, (), out, strict)
    for path in [p for p in out if _untracked(p)]:
        del out[path]
    return out


def _untracked(path: Path) -> bool:
    return path[:1] in UNTRACKED or path[:2] in UNTRACKED


def _walk(
    value: dict[str, Any], type_name: str | None, prefix: Path, out: dict[Path, Any], strict: bool
) -> None:
    for key, child in value.items():
        path = (*prefix, f"f:{key}")
        spec = field_spec(type_name, key)
        if isinstance(child, dict) and child and not spec.atomic:
            _walk(child, spec.elem, path, out, strict)
        elif is_keyed_list(child, spec):
            for index, item in enumerate(child):
                item_path = (*path, item_element(item, spec, index, strict=strict))
                out[item_path] = ITEM
                _walk(item, spec.elem, item_path, out, strict)
        elif isinstance(child, list) and spec.list_type == "set":
            for member in child:
                out[(*path, "v:" + canonical_json(member))] = ITEM
        else:
            out[path] = child


def to_fields_v1(fields: FieldSet) -> dict[str, Any]:
    """Encode a field set as FieldsV1 (keys sorted, '.' for owned paths with owned children)."""
    root: dict[str, Any] = {}
    for path in sorted(fields):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    for path in fields:
        node = root
        for element in path:
            node = node[element]
        if node:
            node["."] = {}
    return _sorted(root)


def _sorted(node: dict[str, Any]) -> dict[str, Any]:
    return {key: _sorted(node[key]) for key in sorted(node)}


def from_fields_v1(fields_v1: Any) -> FieldSet:
    """Decode FieldsV1; malformed input decodes to the paths it does describe."""
    out: set[Path] = set()

    def walk(node: Any, prefix: Path) -> None:
        if not isinstance(node, dict):
            return
        if prefix and (not node or "." in node):
            out.add(prefix)
        for key, child in node.items():
            if key != ".":
                walk(child, (*prefix, key))

    walk(fields_v1, ())
    return frozenset(out)


def path_string(path: Path) -> str:
    """Kubernetes' printed form: .spec.containers[name="nginx"].image, .metadata.finalizers[="a"]."""
    parts: list[str] = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append(f".{rest}")
        elif kind == "k":
            keys = json.loads(rest)
            parts.append("[" + ",".join(f"{k}={canonical_json(v)}" for k, v in keys.items()) + "]")
        elif kind == "v":
            parts.append(f"[={rest}]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)
