"""The four Kubernetes patch types and server-side apply, as pure functions on wire-form objects.

- `json_merge_patch` — application/merge-patch+json (RFC 7386)
- `json_patch` — application/json-patch+json (RFC 6902)
- `strategic_merge_patch` — application/strategic-merge-patch+json (built-in kinds only;
  `supports_strategic_merge` says which; custom resources answer 415)
- `apply_patch` — application/apply-patch+yaml (server-side apply with managedFields)
- `update_managed_fields` — managedFields bookkeeping for create/update/non-apply patches

Errors: `PatchError.code` is the HTTP status (400/422/500); `ApplyConflict` is a 409 whose `causes()`
and `message()` give the Status body.
"""

from cluster.apiserver.patch.apply import apply_patch
from cluster.apiserver.patch.errors import ApplyConflict, FieldConflict, PatchError
from cluster.apiserver.patch.json_merge import json_merge_patch, merge_patch_value
from cluster.apiserver.patch.json_patch import json_patch, json_patch_value
from cluster.apiserver.patch.managed_fields import update_managed_fields
from cluster.apiserver.patch.merge_keys import supports_strategic_merge
from cluster.apiserver.patch.strategic import strategic_merge_patch

__all__ = [
    "ApplyConflict",
    "FieldConflict",
    "PatchError",
    "apply_patch",
    "json_merge_patch",
    "json_patch",
    "json_patch_value",
    "merge_patch_value",
    "strategic_merge_patch",
    "supports_strategic_merge",
    "update_managed_fields",
]
