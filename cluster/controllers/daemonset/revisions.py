"""A DaemonSet's history: which ControllerRevision is current, which are old, which go.

As kube's daemon controller (``constructHistory``, ``cleanupHistory``): a revision's ``data`` is the
patch that restores the template, ``{"spec": {"template": <template + "$patch": "replace">}}``; the
revision whose data equals the DaemonSet's is current, every other one is old. When none is current a
new one is created numbered one past the highest old one; when the current one is older than an old
one (a rollback), it gets the next number. Pods and revisions carry the revision's hash in the
``controller-revision-hash`` label, which is how a pod is known to be up to date.

Cleanup keeps ``revisionHistoryLimit`` old revisions (default 10), deleting the oldest first and never
one whose hash a pod still carries. Pure: the controller shell performs the writes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.controllers.history import (
    POD_REVISION_LABEL,
    canonical_json,
    new_controller_revision,
    next_revision,
    sort_revisions,
)

Obj = Mapping[str, Any]

DEFAULT_REVISION_HISTORY_LIMIT = 10


def revision_data(daemon_set: Obj) -> dict[str, Any]:
    """The patch stored in a revision (kube's ``getPatch``): the whole template, replacing."""
    template = copy.deepcopy(dict((daemon_set.get("spec") or {}).get("template") or {}))
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def matches(daemon_set: Obj, revision: Obj) -> bool:
    """Whether ``revision`` records the DaemonSet's current template."""
    return canonical_json(revision.get("data")) == canonical_json(revision_data(daemon_set))


def revision_hash(revision: Obj) -> str:
    """The revision's hash label (kube labels an unlabelled revision with its name)."""
    meta = revision.get("metadata") or {}
    return str((meta.get("labels") or {}).get(POD_REVISION_LABEL) or meta.get("name") or "")


def _number(revision: Obj) -> int:
    return int(revision.get("revision") or 0)


@dataclass(frozen=True, slots=True)
class History:
    """The DaemonSet's revisions split up. Exactly one of ``current`` / ``create`` is set: the current
    revision, or the body of the one to create. ``renumber`` is the number the current one must get
    (None: keep); ``duplicates`` are other revisions equal to the current one (to delete, after
    relabelling their pods)."""

    current: Obj | None
    create: dict[str, Any] | None
    renumber: int | None
    duplicates: tuple[Obj, ...]
    old: tuple[Obj, ...]

    @property
    def hash(self) -> str:
        chosen = self.current if self.current is not None else self.create
        return revision_hash(chosen) if chosen is not None else ""


def construct_history(daemon_set: Obj, revisions: Sequence[Obj]) -> History:
    """Split the DaemonSet's own revisions (claimed by the caller) into current and old."""
    current = [r for r in revisions if matches(daemon_set, r)]
    old = tuple(sort_revisions(r for r in revisions if not matches(daemon_set, r)))
    number = next_revision(old)
    if not current:
        template = (daemon_set.get("spec") or {}).get("template") or {}
        meta = daemon_set.get("metadata") or {}
        body = new_controller_revision(
            daemon_set,
            "apps/v1",
            "DaemonSet",
            (template.get("metadata") or {}).get("labels"),
            revision_data(daemon_set),
            number,
            (daemon_set.get("status") or {}).get("collisionCount"),
            annotations=meta.get("annotations"),
        )
        return History(None, body, None, (), old)
    # Keep the highest-numbered equal revision (the last of equals in sorted order).
    keep = sort_revisions(current)[-1]
    duplicates = tuple(r for r in current if r is not keep)
    renumber = number if _number(keep) < number else None
    return History(keep, None, renumber, duplicates, old)


def revisions_to_delete(daemon_set: Obj, old: Sequence[Obj], live_hashes: set[str]) -> list[str]:
    """Names of the old revisions to delete: beyond ``revisionHistoryLimit``, oldest first, never one
    a pod still runs."""
    limit = (daemon_set.get("spec") or {}).get("revisionHistoryLimit")
    keep = DEFAULT_REVISION_HISTORY_LIMIT if limit is None else int(limit)
    excess = len(old) - keep
    out: list[str] = []
    for revision in sort_revisions(old):
        if excess <= 0:
            break
        if revision_hash(revision) in live_hashes:
            continue
        out.append(str((revision.get("metadata") or {}).get("name") or ""))
        excess -= 1
    return out
