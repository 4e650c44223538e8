"""The garbage collector's dependency graph and its decisions (kube's GraphBuilder and the pure parts
of ``attemptToDeleteItem`` / ``processDeletingDependentsItem``). No I/O.

The graph holds one ``Node`` per observed object, keyed by uid, and for every uid the set of uids
whose ``ownerReferences`` name it. Informer events go in through ``observe`` / ``forget``, which
return the uids whose situation may have changed (the controller enqueues them):

* the object itself when it has owners or is being deleted with a GC finalizer;
* its owners that are deleting their dependents (``foregroundDeletion``): one blocker less or more;
* on ``forget``, its dependents too: their owner may be gone for good.

Decisions:

* ``owner_state`` classifies one ownerReference from what a live read of the owner returned
  (absent, solid, or waiting for its dependents' deletion);
* ``dependent_action`` decides for a dependent from its owners' states, as kube does: any solid owner
  keeps it (references to absent owners are removed, those to owners waiting for it stop blocking);
  otherwise an owner waiting for its dependents gets it deleted (Foreground when it has dependents
  of its own); otherwise it is garbage and is deleted with the policy its own finalizers ask for
  (Background by default);
* ``Graph.blocking_dependents``: what keeps a foreground-deleted owner's ``foregroundDeletion``
  finalizer: dependents whose reference to it has ``blockOwnerDeletion: true``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cluster.controllers.discovery import APIResource

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"


@dataclass(frozen=True, slots=True)
class OwnerRef:
    uid: str
    api_version: str
    kind: str
    name: str
    block_owner_deletion: bool = False

    @classmethod
    def parse(cls, ref: Mapping[str, Any]) -> OwnerRef:
        return cls(
            str(ref.get("uid") or ""),
            str(ref.get("apiVersion") or ""),
            str(ref.get("kind") or ""),
            str(ref.get("name") or ""),
            bool(ref.get("blockOwnerDeletion")),
        )


def owner_refs(obj: Mapping[str, Any]) -> tuple[OwnerRef, ...]:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return tuple(OwnerRef.parse(r) for r in refs if isinstance(r, Mapping) and r.get("uid"))


@dataclass(frozen=True, slots=True)
class Node:
    uid: str
    resource: APIResource
    namespace: str | None
    name: str
    owners: tuple[OwnerRef, ...]
    deleting: bool  # deletionTimestamp set
    finalizers: tuple[str, ...]

    @classmethod
    def of(cls, resource: APIResource, obj: Mapping[str, Any]) -> Node:
        meta = obj.get("metadata") or {}
        return cls(
            str(meta.get("uid") or ""),
            resource,
            meta.get("namespace") or None,
            str(meta.get("name") or ""),
            owner_refs(obj),
            bool(meta.get("deletionTimestamp")),
            tuple(meta.get("finalizers") or ()),
        )

    @property
    def deleting_dependents(self) -> bool:
        return self.deleting and FOREGROUND in self.finalizers

    @property
    def orphaning(self) -> bool:
        return self.deleting and ORPHAN in self.finalizers

    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


class Graph:
    """uid -> Node, and owner uid -> dependent uids. Single-threaded (one event loop)."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._dependents: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._nodes)

    def get(self, uid: str) -> Node | None:
        return self._nodes.get(uid)

    def dependents(self, uid: str) -> list[Node]:
        return [self._nodes[d] for d in sorted(self._dependents.get(uid, ())) if d in self._nodes]

    def blocking_dependents(self, uid: str) -> list[Node]:
        return [
            d for d in self.dependents(uid) if any(r.uid == uid and r.block_owner_deletion for r in d.owners)
        ]

    def observe(self, node: Node) -> set[str]:
        """Add or update ``node``; return the uids to look at (see the module docstring)."""
        if not node.uid:
            return set()
        old = self._nodes.get(node.uid)
        old_owners = {r.uid for r in old.owners} if old else set()
        new_owners = {r.uid for r in node.owners}
        for gone in old_owners - new_owners:
            self._unlink(gone, node.uid)
        for added in new_owners - old_owners:
            self._dependents.setdefault(added, set()).add(node.uid)
        self._nodes[node.uid] = node
        affected = self._owners_waiting(old_owners | new_owners)
        if node.owners or node.deleting_dependents or node.orphaning:
            affected.add(node.uid)
        return affected

    def forget(self, uid: str) -> set[str]:
        """Remove the object ``uid``; return its dependents and its owners deleting dependents."""
        old = self._nodes.pop(uid, None)
        if old is None:
            return set()
        owners = {r.uid for r in old.owners}
        for owner in owners:
            self._unlink(owner, uid)
        affected = self._owners_waiting(owners)
        affected.update(self._dependents.get(uid, ()))
        if not any(d in self._nodes for d in self._dependents.get(uid, ())):
            self._dependents.pop(uid, None)
        return affected

    def _unlink(self, owner: str, dependent: str) -> None:
        deps = self._dependents.get(owner)
        if deps is not None:
            deps.discard(dependent)
            if not deps:
                del self._dependents[owner]

    def _owners_waiting(self, owners: set[str]) -> set[str]:
        found = set()
        for uid in owners:
            owner = self._nodes.get(uid)
            if owner is not None and owner.deleting_dependents:
                found.add(uid)
        return found


class OwnerState(enum.Enum):
    ABSENT = "absent"  # not found, or the name now belongs to another uid: the reference dangles
    SOLID = "solid"  # exists (even if being deleted in the background)
    WAITING = "waiting"  # being deleted in the foreground: waiting for its dependents to go


def owner_state(ref: OwnerRef, live: Mapping[str, Any] | None) -> OwnerState:
    """Classify a reference from the owner as a live read returned it (None: 404)."""
    if live is None:
        return OwnerState.ABSENT
    meta = live.get("metadata") or {}
    if meta.get("uid") != ref.uid:
        return OwnerState.ABSENT
    if meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
        return OwnerState.WAITING
    return OwnerState.SOLID


@dataclass(frozen=True, slots=True)
class Keep:
    pass


@dataclass(frozen=True, slots=True)
class Delete:
    policy: str  # Background | Foreground | Orphan


@dataclass(frozen=True, slots=True)
class PatchOwners:
    """Drop the references to ``remove`` and set ``blockOwnerDeletion: false`` on ``unblock``."""

    remove: frozenset[str]
    unblock: frozenset[str]


Action = Keep | Delete | PatchOwners


def dependent_action(
    owners: tuple[OwnerRef, ...],
    states: Mapping[str, OwnerState],
    *,
    has_dependents: bool,
    finalizers: tuple[str, ...] = (),
) -> Action:
    """What to do with a dependent whose ``owners`` are in ``states`` (uid -> state)."""
    if not owners:
        return Keep()
    solid = [r for r in owners if states.get(r.uid) is OwnerState.SOLID]
    dangling = frozenset(r.uid for r in owners if states.get(r.uid) is OwnerState.ABSENT)
    waiting = frozenset(r.uid for r in owners if states.get(r.uid) is OwnerState.WAITING)
    if solid:
        if not dangling and not waiting:
            return Keep()
        return PatchOwners(dangling, waiting)
    if waiting and has_dependents:
        return Delete("Foreground")
    if ORPHAN in finalizers:
        return Delete("Orphan")
    if FOREGROUND in finalizers:
        return Delete("Foreground")
    return Delete("Background")


def patched_owner_references(
    refs: list[Mapping[str, Any]], remove: frozenset[str], unblock: frozenset[str]
) -> list[dict[str, Any]]:
    """The ``ownerReferences`` list after ``PatchOwners``."""
    out = []
    for ref in refs:
        uid = ref.get("uid")
        if uid in remove:
            continue
        new = dict(ref)
        if uid in unblock and new.get("blockOwnerDeletion"):
            new["blockOwnerDeletion"] = False
        out.append(new)
    return out


def without_owner(refs: list[Mapping[str, Any]], owner_uid: str) -> list[dict[str, Any]]:
    return [dict(r) for r in refs if r.get("uid") != owner_uid]
