"""ControllerRevisions: the recorded history of a workload's pod template (pure helpers).

The StatefulSet and DaemonSet controllers keep one ``apps/v1 ControllerRevision`` per distinct pod
template they have run, as kube-controller-manager's ``pkg/controller/history`` does. A revision holds
``data`` (the patch that restores the template), a ``revision`` number (1, 2, ...: the newest is the
highest) and a name ``<owner>-<hash>`` where the hash is taken over ``data`` and the owner's
``status.collisionCount``; when a different revision already holds that name, the caller bumps the
collision count and tries again, so names stay unique and stable.

Invariants:
- ``hash_revision`` depends only on the JSON value of ``data`` (key order does not matter) and on the
  collision count; it is stable across processes and releases (FNV-1 32-bit over canonical JSON,
  rendered as Kubernetes' "safe encoded" string of the decimal value: no vowels, no 0/1/3).
- Revisions are compared by ``data`` only (``equal_revision``): names and numbers do not matter.
- Nothing here does I/O; callers create, update and delete the objects through the API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The label kube's history package puts on every ControllerRevision it creates (StatefulSet).
CONTROLLER_REVISION_HASH_LABEL = "controller.kubernetes.io/hash"
# The label pods carry to name their revision (apps.StatefulSetRevisionLabel and
# apps.DefaultDaemonSetUniqueLabelKey); DaemonSet revisions carry it too.
POD_REVISION_LABEL = "controller-revision-hash"

# rand.SafeEncodeString's alphabet: no vowels and no easily confused digits, so hashes spell no words.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193
# A revision name keeps at most 223 characters of its prefix so that "<prefix>-<hash>" fits in 253.
_MAX_PREFIX = 223


def _fnv1_32(data: bytes) -> int:
    value = _FNV32_OFFSET
    for byte in data:
        value = (value * _FNV32_PRIME) & 0xFFFFFFFF
        value ^= byte
    return value


def safe_encode(text: str) -> str:
    """Kubernetes' ``rand.SafeEncodeString``: each character mapped into a vowel-free alphabet."""
    return "".join(_SAFE_ALPHABET[ord(ch) % len(_SAFE_ALPHABET)] for ch in text)


def canonical_json(data: Any) -> bytes:
    """The bytes hashed for ``data``: compact JSON with sorted keys."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def hash_revision(data: Mapping[str, Any], collision_count: int | None) -> str:
    """The hash naming a revision of ``data``; a collision count (even 0) is mixed in when given."""
    payload = canonical_json(data)
    if collision_count is not None:
        payload += str(int(collision_count)).encode()
    return safe_encode(str(_fnv1_32(payload)))


def revision_name(prefix: str, hash_: str) -> str:
    """``<prefix>-<hash>``, the prefix cut to 223 characters so the name fits in 253."""
    return f"{prefix[:_MAX_PREFIX]}-{hash_}"


def new_controller_revision(
    owner: Mapping[str, Any],
    api_version: str,
    kind: str,
    template_labels: Mapping[str, str] | None,
    data: Mapping[str, Any],
    revision: int,
    collision_count: int | None,
    *,
    hash_label: str = POD_REVISION_LABEL,
    annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ControllerRevision body for ``owner`` (not yet created): name ``<owner>-<hash>``, the template's
    labels plus ``hash_label: <hash>``, a controller ownerReference to ``owner`` (``api_version``/``kind``),
    ``data`` and ``revision``. ``hash_label`` defaults to ``controller-revision-hash`` (DaemonSet);
    the StatefulSet controller passes ``CONTROLLER_REVISION_HASH_LABEL`` as kube's history package does.
    On an AlreadyExists whose ``data`` differs, bump the collision count and build again."""
    meta = owner.get("metadata") or {}
    hash_ = hash_revision(data, collision_count)
    labels = dict(template_labels or {})
    labels[hash_label] = hash_
    metadata: dict[str, Any] = {
        "name": revision_name(str(meta.get("name", "")), hash_),
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": api_version,
                "kind": kind,
                "name": meta.get("name"),
                "uid": meta.get("uid"),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if meta.get("namespace"):
        metadata["namespace"] = meta["namespace"]
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": metadata,
        "data": json.loads(canonical_json(data)),
        "revision": int(revision),
    }


def _number(revision: Mapping[str, Any]) -> int:
    try:
        return int(revision.get("revision") or 0)
    except (TypeError, ValueError):
        return 0


def _sort_key(revision: Mapping[str, Any]) -> tuple[int, str, str]:
    meta = revision.get("metadata") or {}
    # RFC 3339 timestamps in UTC ("Z") sort as strings; a missing one sorts first.
    return (_number(revision), str(meta.get("creationTimestamp") or ""), str(meta.get("name") or ""))


def sort_revisions(revisions: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Oldest first: by ``revision``, then creationTimestamp, then name (a new, stable list)."""
    return sorted(revisions, key=_sort_key)


def next_revision(revisions: Iterable[Mapping[str, Any]]) -> int:
    """The number for a new revision: one past the highest present, 1 when there is none."""
    return max((_number(r) for r in revisions), default=0) + 1


def equal_revision(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """True when both are None, or both hold the same ``data`` (as JSON values)."""
    if a is None or b is None:
        return a is None and b is None
    return canonical_json(a.get("data")) == canonical_json(b.get("data"))


def find_equal_revisions(revisions: Sequence[Any], needle: Mapping[str, Any]) -> list[Any]:
    """The revisions equal to ``needle`` (``equal_revision``), in their given order."""
    return [r for r in revisions if equal_revision(r, needle)]


def owned_revisions(revisions: Iterable[Any], owner_uid: str) -> list[Any]:
    """Revisions whose controller is ``owner_uid`` or that have no controller (adoption candidates), as
    kube's ListControllerRevisions returns them."""
    out = []
    for revision in revisions:
        refs = (revision.get("metadata") or {}).get("ownerReferences") or []
        controller = next((r for r in refs if r.get("controller")), None)
        if controller is None or controller.get("uid") == owner_uid:
            out.append(revision)
    return out
