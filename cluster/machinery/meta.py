"""Reading ``metadata`` (metav1.ObjectMeta) from objects held as JSON dicts.

Objects in raykube are the Kubernetes JSON documents themselves, so every layer reads
``obj["metadata"]``; one helper keeps the "missing or not an object" case the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def object_meta(obj: Mapping[str, Any]) -> dict[str, Any]:
    """``obj["metadata"]`` itself (not a copy: writes go to the object), or a new empty dict when it
    is missing, null or not an object."""
    value = obj.get("metadata")
    return value if isinstance(value, dict) else {}
