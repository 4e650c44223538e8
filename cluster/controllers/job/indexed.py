"""Indexed completion mode (kube's ``indexed_job_utils.go``): every pod carries a completion index in
``[0, completions)``; the Job is complete when every index has a succeeded pod.

An index lives on the pod as the ``batch.kubernetes.io/job-completion-index`` annotation (and label),
reaches the containers as ``JOB_COMPLETION_INDEX`` (a downward-API reference to the annotation) and
names the pod's host ``<job>-<index>``. Completed indexes are written as sorted ranges: ``"0-2,5"``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_LABEL = "batch.kubernetes.io/job-completion-index"
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"


def completion_index(pod: Mapping[str, Any], completions: int) -> int | None:
    """The pod's index when it is a valid one for ``completions``, else None."""
    text = ((pod.get("metadata") or {}).get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION)
    if not isinstance(text, str) or not text.isdigit():
        return None
    index = int(text)
    return index if index < completions else None


def format_intervals(indexes: Iterable[int]) -> str:
    """Sorted, merged ranges: ``{0, 1, 2, 5}`` -> ``"0-2,5"``; an empty set -> ``""``."""
    parts: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def parse_intervals(text: str | None, completions: int) -> set[int]:
    """Inverse of :func:`format_intervals`, keeping indexes below ``completions``; junk is skipped."""
    found: set[int] = set()
    for part in (text or "").split(","):
        low, sep, high = part.strip().partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            continue
        first, last = int(low), int(high) if sep else int(low)
        found.update(range(first, min(last, completions - 1) + 1))
    return found


def pending_indexes(completions: int, taken: Iterable[int], count: int) -> list[int]:
    """The ``count`` lowest indexes in ``[0, completions)`` not in ``taken``."""
    busy = set(taken)
    out: list[int] = []
    for index in range(completions):
        if len(out) >= count:
            break
        if index not in busy:
            out.append(index)
    return out


def with_completion_index(pod: Mapping[str, Any], job_name: str, index: int) -> dict[str, Any]:
    """A copy of ``pod`` carrying ``index``: annotation, label, env var in every container and init
    container (unless it already sets one), hostname ``<job>-<index>`` unless the template set one."""
    out = copy.deepcopy(dict(pod))
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), COMPLETION_INDEX_ANNOTATION: str(index)}
    meta["labels"] = {**(meta.get("labels") or {}), COMPLETION_INDEX_LABEL: str(index)}
    spec = out.setdefault("spec", {})
    env_var = {
        "name": COMPLETION_INDEX_ENV,
        "valueFrom": {
            "fieldRef": {
                "apiVersion": "v1",
                "fieldPath": f"metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']",
            }
        },
    }
    for field in ("initContainers", "containers"):
        for container in spec.get(field) or ():
            env = list(container.get("env") or [])
            if not any(var.get("name") == COMPLETION_INDEX_ENV for var in env):
                env.append(copy.deepcopy(env_var))
            container["env"] = env
    if not spec.get("hostname"):
        spec["hostname"] = f"{job_name}-{index}"
    return out
