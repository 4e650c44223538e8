"""JSON merge patch (RFC 7386), the `application/merge-patch+json` patch type.

Pure: the inputs are never mutated; the result shares no mutable structure with them.
"""

from __future__ import annotations

import copy
from typing import Any

from cluster.apiserver.patch.errors import PatchError


def merge_patch_value(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch(Target, Patch) on any JSON values (the RFC's own algorithm)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch_value(result.get(key), value)
    return result


def json_merge_patch(doc: dict[str, Any], patch: Any) -> dict[str, Any]:
    """Apply a merge patch to an object; a patch that is not a JSON object is a 400 like Kubernetes'."""
    if not isinstance(patch, dict):
        raise PatchError("Invalid JSON Patch", 400)
    result = merge_patch_value(doc, patch)
    assert isinstance(result, dict)
    return result
