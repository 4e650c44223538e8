"""A StatefulSet's revisions: which ControllerRevision is current, which is the update target, and
which old ones to delete (pure; the shell writes what these functions decide).

A revision's ``data`` is ``{"spec": {"template": <pod template, "$patch": "replace">}}`` (kube's
getPatch): applying it to the set restores that template. ``status.currentRevision`` names the revision
the pods below the partition run; the update revision is the one matching the set's template now:

* the newest revision holds the same template: it is the update revision, nothing to write;
* an older revision holds it (a rollback): that revision is renumbered to the next number;
* none does: a new revision is created, named with ``status.collisionCount``.

History beyond ``revisionHistoryLimit`` (default 10) is deleted oldest first, never a revision that is
current, the update target, or still run by a pod.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.controllers import history
from cluster.controllers.statefulset.identity import API_VERSION, KIND, meta, revision_of, spec

Obj = Mapping[str, Any]


def revision_data(sts: Obj) -> dict[str, Any]:
    """The patch recorded for the set's current template."""
    template = copy.deepcopy(dict(spec(sts).get("template") or {}))
    template["$patch"] = "replace"
    return {"spec": {"template": template}}


def template_of(revision: Obj) -> dict[str, Any]:
    """The pod template a revision restores (its patch without the ``$patch`` directive)."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return template


def new_revision(sts: Obj, number: int, collision_count: int) -> dict[str, Any]:
    """A ControllerRevision for the set's template, as kube's history package names and labels it,
    with the set's annotations copied."""
    template_labels = (spec(sts).get("template") or {}).get("metadata", {}).get("labels") or {}
    return history.new_controller_revision(
        sts,
        API_VERSION,
        KIND,
        template_labels,
        revision_data(sts),
        number,
        collision_count,
        hash_label=history.CONTROLLER_REVISION_HASH_LABEL,
        annotations=meta(sts).get("annotations") or None,
    )


@dataclass(frozen=True, slots=True)
class RevisionChoice:
    """What ``choose_revisions`` decided. Exactly one of ``create`` / ``renumber`` may be set:
    ``create`` is a new revision body to create; ``renumber`` is ``(existing revision, new number)``.
    ``update`` is the update revision when nothing needs writing (else the shell learns it from the
    write); ``current_name`` is empty when the current revision is the update revision."""

    update: Mapping[str, Any] | None
    current: Mapping[str, Any] | None
    collision_count: int
    create: dict[str, Any] | None = None
    renumber: tuple[Mapping[str, Any], int] | None = None


def collision_count_of(sts: Obj) -> int:
    return int((sts.get("status") or {}).get("collisionCount") or 0)


def choose_revisions(sts: Obj, revisions: Sequence[Obj]) -> RevisionChoice:
    """Pick the current and update revisions among ``revisions`` (the set's own) as described in
    the module docstring. ``current`` is None when the set's ``status.currentRevision`` is not among
    them: the caller then takes the update revision as current (a new history)."""
    ordered = history.sort_revisions(revisions)
    count = collision_count_of(sts)
    candidate = new_revision(sts, history.next_revision(ordered), count)
    equal = history.find_equal_revisions(ordered, candidate)
    current_name = (sts.get("status") or {}).get("currentRevision")
    current = next((r for r in ordered if meta(r).get("name") == current_name), None)
    if equal and history.equal_revision(ordered[-1], equal[-1]):
        return RevisionChoice(update=ordered[-1], current=current, collision_count=count)
    if equal:
        return RevisionChoice(
            update=None, current=current, collision_count=count, renumber=(equal[-1], candidate["revision"])
        )
    return RevisionChoice(update=None, current=current, collision_count=count, create=candidate)


def history_limit(sts: Obj) -> int:
    value = spec(sts).get("revisionHistoryLimit")
    return 10 if value is None else max(0, int(value))


def revisions_to_delete(
    sts: Obj, pods: Sequence[Obj], revisions: Sequence[Obj], current_name: str, update_name: str
) -> list[Any]:
    """The oldest revisions beyond the history limit that nothing uses any more."""
    live = {current_name, update_name} | {revision_of(p) for p in pods}
    old = [r for r in history.sort_revisions(revisions) if meta(r).get("name") not in live]
    excess = len(old) - history_limit(sts)
    return old[:excess] if excess > 0 else []
