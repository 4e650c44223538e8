"""Server-side apply (`application/apply-patch+yaml`): merge an applied configuration into the live
object and track which manager owns which field.

The merge uses the same structural table as strategic merge: associative lists merge item by item by
their keys (containers by name, container ports by containerPort+protocol, ...), set lists merge as
sets, atomic lists and atomic structs are replaced, maps merge key by key. `null` in the applied
configuration means "not specified".

Ownership, per Kubernetes' rules:
- a field whose value the apply would change and that another manager owns is a conflict, unless
  `force`, which moves ownership to the applier; equal values are shared, not conflicts;
- the applier's Apply entry afterwards owns exactly the fields of the applied configuration;
- a field the applier owned before and omits now is removed from the object unless another manager
  owns it.

Re-applying an unchanged configuration returns the live object unchanged (managedFields included), so
the caller can skip the write. Status is not reset here: callers applying to the main resource of a kind
with a status subresource should restore the live status afterwards.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import datetime
from typing import Any

from cluster.apiserver.patch.errors import ApplyConflict, FieldConflict, PatchError
from cluster.apiserver.patch.fieldpath import (
    FieldSet,
    Path,
    canonical_json,
    flatten,
    is_keyed_list,
    item_element,
    path_string,
)
from cluster.apiserver.patch.managed_fields import (
    ManagedEntry,
    changed_paths,
    decode_entries,
    set_entries,
)
from cluster.apiserver.patch.merge_keys import FieldSpec, field_spec, root_type
from cluster.machinery.times import rfc3339


def apply_patch(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    *,
    manager: str,
    force: bool,
    kind_key: tuple[str, str],
    now: datetime,
) -> dict[str, Any]:
    """Server-side apply of `applied` by `manager` onto `live` (None: the object does not exist yet).

    Raises ApplyConflict (409) on conflicts when not `force`, PatchError (400/422) for a malformed
    configuration. The result carries the updated metadata.managedFields.
    """
    if not isinstance(applied, dict):
        raise PatchError("error decoding YAML: the applied configuration must be an object", 400)
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise PatchError("metadata.managedFields must be nil", 400)
    if not manager:
        raise PatchError("PATCH, APPLY, and UPDATE requests must specify a fieldManager", 400)
    type_name = root_type(kind_key)
    config = _without_nulls(applied, type_name)
    current = copy.deepcopy(live) if live is not None else {}
    entries = decode_entries(current)
    current.get("metadata", {}).pop("managedFields", None)

    applied_fields = frozenset(flatten(config, type_name, strict=True))
    merged = _merge_map(current, config, type_name)
    touched, removed = changed_paths(flatten(current, type_name), flatten(merged, type_name))
    changed = touched | removed

    own_identity = (manager, "Apply")
    conflicts: list[FieldConflict] = []
    others: list[ManagedEntry] = []
    previous: ManagedEntry | None = None
    for entry in entries:
        if (entry.manager, entry.operation) == own_identity and not entry.subresource:
            previous = entry
            continue
        lost = entry.fields & changed
        for path in sorted(lost):
            conflicts.append(
                FieldConflict(
                    entry.manager, entry.operation, entry.api_version, entry.time, path_string(path)
                )
            )
        others.append(replace(entry, fields=entry.fields - lost) if lost else entry)
    if conflicts and not force:
        raise ApplyConflict(conflicts)

    owned_by_others: set[Path] = set().union(*(e.fields for e in others)) if others else set()
    previously_owned = previous.fields if previous else frozenset()
    for path in sorted(previously_owned - applied_fields - owned_by_others, key=len):
        _remove_path(merged, path, type_name, keep=owned_by_others | applied_fields)

    api_version = str(applied.get("apiVersion") or kind_key[0])
    unchanged = live is not None and merged == current and previous is not None
    if unchanged and previous is not None and previous.fields == applied_fields and not conflicts:
        return copy.deepcopy(live)  # type: ignore[arg-type]
    mine = ManagedEntry(manager, "Apply", api_version, rfc3339(now), applied_fields)
    set_entries(merged, [*others, mine])
    return merged


def _without_nulls(value: dict[str, Any], type_name: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, child in value.items():
        if child is None:
            continue
        spec = field_spec(type_name, key)
        if isinstance(child, dict) and not spec.atomic:
            out[key] = _without_nulls(child, spec.elem)
        elif is_keyed_list(child, spec):
            out[key] = [_without_nulls(item, spec.elem) for item in child]
        else:
            out[key] = copy.deepcopy(child)
    return out


def _merge_map(live: dict[str, Any], config: dict[str, Any], type_name: str | None) -> dict[str, Any]:
    out = copy.deepcopy(live)
    for key, value in config.items():
        spec = field_spec(type_name, key)
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict) and not spec.atomic:
            out[key] = _merge_map(current, value, spec.elem)
        elif isinstance(value, list) and isinstance(current, list) and spec.list_type in ("map", "set"):
            out[key] = _merge_list(current, value, spec)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _merge_list(live: list[Any], config: list[Any], spec: FieldSpec) -> list[Any]:
    if spec.list_type == "map" and not is_keyed_list(live, spec):
        return copy.deepcopy(config)

    def ident(item: Any, index: int, strict: bool) -> str:
        if spec.list_type == "set":
            return canonical_json(item)
        return item_element(item, spec, index, strict=strict)

    live_ids = [ident(item, i, False) for i, item in enumerate(live)]
    config_ids = [ident(item, i, True) for i, item in enumerate(config)]
    live_by_id = dict(zip(reversed(live_ids), reversed(live)))
    config_by_id = dict(zip(config_ids, config))
    out: list[Any] = []
    for ident_ in _interleave(live_ids, config_ids):
        if ident_ not in config_by_id:
            out.append(copy.deepcopy(live_by_id[ident_]))
        elif ident_ in live_by_id and spec.list_type == "map":
            out.append(_merge_map(live_by_id[ident_], config_by_id[ident_], spec.elem))
        else:
            out.append(copy.deepcopy(config_by_id[ident_]))
    return out


def _interleave(live: list[str], config: list[str]) -> list[str]:
    """Merged order: items shared with the configuration follow its order, live-only items keep their
    place relative to them, new items are placed where the configuration puts them."""
    live_set, config_set = set(live), set(config)
    shared = [c for c in config if c in live_set]
    out: list[str] = []
    done: set[str] = set()
    li = ri = si = 0
    while li < len(live) or ri < len(config):
        if li < len(live) and ri < len(config):
            if live[li] == config[ri]:
                out.append(live[li])
                done.add(live[li])
                if si < len(shared) and shared[si] == live[li]:
                    si += 1
                li += 1
                ri += 1
                continue
            if live[li] in config_set and si < len(shared) and shared[si] != live[li]:
                li += 1
                continue
        if li < len(live):
            if live[li] not in config_set:
                out.append(live[li])
                li += 1
                continue
            if live[li] in done:
                li += 1
                continue
        if ri < len(config):
            if config[ri] not in done:
                out.append(config[ri])
                done.add(config[ri])
            if si < len(shared) and shared[si] == config[ri]:
                si += 1
            ri += 1
    return [x for i, x in enumerate(out) if x not in out[:i]]


def _remove_path(
    obj: dict[str, Any], path: Path, type_name: str | None, *, keep: set[Path] | FieldSet
) -> None:
    """Remove the field or item at `path` unless a kept path lies below it; prune emptied parents."""
    if any(len(k) > len(path) and k[: len(path)] == path for k in keep):
        return
    trail: list[tuple[Any, Any]] = []
    node: Any = obj
    spec: FieldSpec | None = None
    current_type = type_name
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f" and isinstance(node, dict) and rest in node:
            spec = field_spec(current_type, rest)
            trail.append((node, rest))
            node, current_type = node[rest], spec.elem
        elif kind in ("k", "i") and isinstance(node, list) and spec is not None:
            found = [i for i, item in enumerate(node) if item_element(item, spec, i, strict=False) == element]
            if not found:
                return
            trail.append((node, found[0]))
            node = node[found[0]]
        elif kind == "v" and isinstance(node, list):
            found = [i for i, item in enumerate(node) if canonical_json(item) == rest]
            if not found:
                return
            trail.append((node, found[0]))
            node = node[found[0]]
        else:
            return
    for depth in range(len(trail) - 1, -1, -1):
        container, key = trail[depth]
        if depth < len(trail) - 1:
            child = container[key]
            if child or path[: depth + 1] in keep:
                break
        del container[key]
