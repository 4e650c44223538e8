"""metadata.managedFields: decoding, encoding, and recording what ordinary writes changed.

An entry is identified by (manager, operation, apiVersion, subresource) and owns a field set. Entries are
kept sorted as Kubernetes sorts them (operation, then time, then manager, apiVersion, subresource) and
entries that own nothing are dropped. An Update takes ownership of every field it added or changed
(other managers lose those fields: updates never conflict) and no one keeps fields that were removed.

Pure: `now` is passed in; inputs are not mutated.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cluster.apiserver.patch.fieldpath import FieldSet, Path, flatten, from_fields_v1, to_fields_v1
from cluster.apiserver.patch.json_patch import json_equal
from cluster.apiserver.patch.merge_keys import root_type
from cluster.machinery.times import rfc3339


@dataclass(frozen=True, slots=True)
class ManagedEntry:
    manager: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str | None
    fields: FieldSet
    subresource: str = ""

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return (self.manager, self.operation, self.api_version, self.subresource)


def decode_entries(obj: dict[str, Any] | None) -> list[ManagedEntry]:
    raw = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    entries: list[ManagedEntry] = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str):
            continue
        entries.append(
            ManagedEntry(
                manager=item["manager"],
                operation=str(item.get("operation", "Update")),
                api_version=str(item.get("apiVersion", "")),
                time=item.get("time"),
                fields=from_fields_v1(item.get("fieldsV1") or {}),
                subresource=str(item.get("subresource", "")),
            )
        )
    return entries


def encode_entries(entries: list[ManagedEntry]) -> list[dict[str, Any]]:
    kept = [e for e in entries if e.fields]
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    out: list[dict[str, Any]] = []
    for entry in kept:
        encoded: dict[str, Any] = {
            "manager": entry.manager,
            "operation": entry.operation,
            "apiVersion": entry.api_version,
        }
        if entry.time is not None:
            encoded["time"] = entry.time
        encoded["fieldsType"] = "FieldsV1"
        encoded["fieldsV1"] = to_fields_v1(entry.fields)
        if entry.subresource:
            encoded["subresource"] = entry.subresource
        out.append(encoded)
    return out


def set_entries(obj: dict[str, Any], entries: list[ManagedEntry]) -> None:
    """Store `entries` in obj.metadata.managedFields (the key is removed when nothing is owned)."""
    metadata = obj.setdefault("metadata", {})
    encoded = encode_entries(entries)
    if encoded:
        metadata["managedFields"] = encoded
    else:
        metadata.pop("managedFields", None)


def changed_paths(before: dict[Path, Any], after: dict[Path, Any]) -> tuple[set[Path], set[Path]]:
    """(added or modified, removed) between two flattened objects."""
    touched = {p for p, v in after.items() if p not in before or not json_equal(before[p], v)}
    removed = {p for p in before if p not in after}
    return touched, removed


def update_managed_fields(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    *,
    manager: str,
    operation: str = "Update",
    now: datetime,
    subresource: str = "",
) -> dict[str, Any]:
    """Return `new` with managedFields recording that `manager` made the change old -> new.

    Call it for create (old None), update and the non-apply patches, after the patch and defaulting.
    If `new` carries no managedFields the old entries are carried over; a client that sends its own
    list (even empty) replaces them, as in Kubernetes.
    """
    result = copy.deepcopy(new)
    metadata = result.get("metadata") or {}
    sent = metadata.get("managedFields")
    entries = decode_entries(result) if sent is not None else decode_entries(old)
    type_name = root_type((str(result.get("apiVersion", "")), str(result.get("kind", ""))))
    before = flatten(old or {}, type_name)
    after = flatten(result, type_name)
    touched, removed = changed_paths(before, after)
    api_version = str(result.get("apiVersion", ""))
    identity = (manager, operation, api_version, subresource)
    updated: list[ManagedEntry] = []
    mine: ManagedEntry | None = None
    for entry in entries:
        if entry.identity == identity:
            mine = entry
            continue
        fields = entry.fields - touched - removed
        updated.append(entry if fields == entry.fields else replace(entry, fields=frozenset(fields)))
    previous = mine.fields if mine else frozenset()
    fields = frozenset((previous | touched) - removed)
    if mine is not None and fields == previous:
        updated.append(mine)
    elif fields:
        updated.append(ManagedEntry(manager, operation, api_version, rfc3339(now), fields, subresource))
    set_entries(result, updated)
    return result
