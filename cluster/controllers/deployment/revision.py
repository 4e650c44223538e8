"""Pod-template hashes, revision annotations and history clean-up of Deployments (pure).

Mirrors ``deployment/util`` and ``sync.go`` of kube-controller-manager:

* every ReplicaSet of a Deployment runs one pod template; its name is ``<deployment>-<hash>`` and
  the hash is also the ``pod-template-hash`` label of its selector, its template and its pods, so
  ReplicaSets of one Deployment never select each other's pods. The hash is our own (FNV-1a over
  canonical JSON of the template, plus the collision count), rendered in Kubernetes' safe alphabet;
* a template is "the same" as a ReplicaSet's when they are equal once the hash label is removed
  and empty values are dropped (apimachinery's semantic equality treats nil and empty alike);
* revisions are the ``deployment.kubernetes.io/revision`` annotation: the new ReplicaSet gets
  ``max(old revisions) + 1``; a ReplicaSet brought back by a rollback keeps the numbers it had in
  ``deployment.kubernetes.io/revision-history`` (bounded in characters, oldest dropped first);
* the clean-up removes the oldest revisions beyond ``revisionHistoryLimit`` among old ReplicaSets
  that run nothing and whose status is current.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cluster.controllers.deployment.rollout import ReplicaSetView, by_creation
from cluster.controllers.history import canonical_json, safe_encode

POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
DEPRECATED_ROLLBACK_TO = "deprecated.deployment.rollback.to"
# kube-controller-manager's bound on the revision-history annotation (in characters).
MAX_REVISION_HISTORY_CHARS = 2000

# Deployment annotations that are not copied onto its ReplicaSets.
ANNOTATIONS_NOT_COPIED = frozenset(
    {
        LAST_APPLIED_ANNOTATION,
        REVISION_ANNOTATION,
        REVISION_HISTORY_ANNOTATION,
        DESIRED_REPLICAS_ANNOTATION,
        MAX_REPLICAS_ANNOTATION,
        DEPRECATED_ROLLBACK_TO,
    }
)

_FNV32A_OFFSET = 0x811C9DC5
_FNV32A_PRIME = 0x01000193


def _fnv1a_32(data: bytes) -> int:
    value = _FNV32A_OFFSET
    for byte in data:
        value ^= byte
        value = (value * _FNV32A_PRIME) & 0xFFFFFFFF
    return value


def _pruned(value: Any) -> Any:
    """``value`` without null members and empty maps or lists, recursively."""
    if isinstance(value, Mapping):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_without_hash(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """A copy of a pod template without the ``pod-template-hash`` label, empties dropped."""
    result = copy.deepcopy(dict(template or {}))
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH_LABEL, None)
    pruned: dict[str, Any] = _pruned(result)
    return pruned


def pod_template_hash(template: Mapping[str, Any] | None, collision_count: int | None) -> str:
    """The ``pod-template-hash`` of a Deployment's template; stable across processes.

    A collision count (when set, even 0) is mixed in so that bumping it yields another name.
    """
    payload = canonical_json(template_without_hash(template))
    if collision_count is not None:
        payload += int(collision_count).to_bytes(8, "little", signed=False)
    return safe_encode(str(_fnv1a_32(payload)))


def equal_ignore_hash(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """``EqualIgnoreHash``: two pod templates are the same apart from the hash label."""
    return template_without_hash(a) == template_without_hash(b)


# -- revisions -----------------------------------------------------------------------------------------


def parse_revision(annotations: Mapping[str, Any] | None) -> int | None:
    """The revision annotation as an int; None when missing or not a number."""
    raw = (annotations or {}).get(REVISION_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except (TypeError, ValueError):
        return None


def max_revision(rss: Iterable[ReplicaSetView]) -> int:
    return max((rs.revision for rs in rss), default=0)


def _annotations(rs: Mapping[str, Any]) -> dict[str, str]:
    meta = rs.get("metadata")
    value = meta.get("annotations") if isinstance(meta, Mapping) else None
    return dict(value) if isinstance(value, Mapping) else {}


def replicas_annotations(desired: int, max_replicas: int) -> dict[str, str]:
    return {DESIRED_REPLICAS_ANNOTATION: str(desired), MAX_REPLICAS_ANNOTATION: str(max_replicas)}


def replicas_annotations_need_update(
    annotations: Mapping[str, Any] | None, desired: int, max_replicas: int
) -> bool:
    have = annotations or {}
    return any(have.get(k) != v for k, v in replicas_annotations(desired, max_replicas).items())


def new_replica_set_annotations(
    deployment_annotations: Mapping[str, Any] | None,
    rs_annotations: Mapping[str, Any] | None,
    new_revision: int,
    *,
    exists: bool,
    desired: int,
    max_replicas: int,
    history_limit_chars: int = MAX_REVISION_HISTORY_CHARS,
) -> tuple[dict[str, str], bool]:
    """``SetNewReplicaSetAnnotations``: the new ReplicaSet's annotations and whether they changed.

    The Deployment's own annotations are copied (bar :data:`ANNOTATIONS_NOT_COPIED`); the revision
    only ever increases, and when it does on a ReplicaSet that had one (a rollback to it) the old
    number joins the revision history; a ReplicaSet about to be created also gets the replica
    annotations.
    """
    result: dict[str, str] = {str(k): str(v) for k, v in (rs_annotations or {}).items()}
    changed = False
    for key, value in (deployment_annotations or {}).items():
        if key in ANNOTATIONS_NOT_COPIED or result.get(key) == value:
            continue
        result[key] = str(value)
        changed = True
    had = REVISION_ANNOTATION in result
    old_text = result.get(REVISION_ANNOTATION, "")
    if old_text:
        try:
            old = int(old_text)
        except ValueError:
            return result, changed
    else:
        old = 0
    if old < new_revision:
        result[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if had:
            history = result.get(REVISION_HISTORY_ANNOTATION, "")
            if not history:
                result[REVISION_HISTORY_ANNOTATION] = old_text
            else:
                entries = history.split(",")
                length = len(history) + len(old_text) + 1
                start = 0
                while length > history_limit_chars and start < len(entries):
                    length -= len(entries[start]) + 1
                    start += 1
                if length <= history_limit_chars:
                    result[REVISION_HISTORY_ANNOTATION] = ",".join([*entries[start:], old_text])
    if not exists and replicas_annotations_need_update(result, desired, max_replicas):
        result.update(replicas_annotations(desired, max_replicas))
        changed = True
    return result, changed


# -- finding the new ReplicaSet and cleaning up old ones ------------------------------------------------


def find_new_replica_set(
    template: Mapping[str, Any] | None, rss: Sequence[ReplicaSetView]
) -> ReplicaSetView | None:
    """``FindNewReplicaSet``: the oldest ReplicaSet whose template equals ``template`` (ignoring the
    hash label)."""
    for rs in by_creation(rss):
        if equal_ignore_hash(template, rs.template):
            return rs
    return None


def history_to_delete(old_rss: Sequence[ReplicaSetView], limit: int) -> list[str]:
    """``cleanupDeployment``: names of old ReplicaSets to delete so at most ``limit`` remain.

    Candidates are the ones not being deleted, oldest revision first; a candidate that still has
    pods (by spec or status) or whose status lags its spec is kept (it still counts).
    """
    alive = [rs for rs in old_rss if not rs.deleting]
    excess = len(alive) - max(limit, 0)
    if excess <= 0:
        return []
    ordered = sorted(by_creation(alive), key=lambda rs: rs.revision)
    return [
        rs.name
        for rs in ordered[:excess]
        if rs.replicas == 0 and rs.status_replicas == 0 and rs.generation <= rs.observed_generation
    ]
