"""Admission for storage objects: kube-apiserver's DefaultStorageClass, StorageObjectInUseProtection
and PersistentVolumeClaimResize plugins, and the status the PV, PVC and VolumeAttachment strategies set.

* DefaultStorageClass (create): a claim that names no class (no ``storageClassName``, not even "",
  and no beta annotation) gets the default class's name. With several defaults the newest wins, ties
  going to the first name (1.28+), so adding a second default is a safe way to switch.
* StorageObjectInUseProtection (create): new claims carry ``kubernetes.io/pvc-protection`` and new
  volumes ``kubernetes.io/pv-protection``, so neither goes while in use (the protection controllers
  remove the finalizers once nothing uses them).
* StorageStatus: what the strategies' PrepareForCreate do: a user cannot create a PV, a claim or an
  attachment in some phase of their choosing; and PV status writes stamp ``lastPhaseTransitionTime``
  when the phase changes (GA in 1.31).
* PersistentVolumeClaimResize (update, after validation): a claim's storage request grows only when
  it is bound and its class says ``allowVolumeExpansion: true``. (Shrinking is validation's answer.)

The classes come from ``StorageClassLookup``, which the registry implements (a read of the store; there
are few classes).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.interfaces import (
    Admitted,
    Attributes,
    MutatingPlugin,
    Operation,
    ValidatingPlugin,
)
from cluster.apiserver.errors import forbidden, qualified_resource
from cluster.machinery.quantity import QuantityError, parse_quantity
from cluster.machinery.times import parse_rfc3339, rfc3339

PVC = ("", "PersistentVolumeClaim")
PV = ("", "PersistentVolume")
VOLUME_ATTACHMENT = ("storage.k8s.io", "VolumeAttachment")
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)
BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
RESIZE_NOT_ALLOWED = (
    "only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must "
    "support resize"
)
RESIZE_UNBOUND = "Only bound persistent volume claims can be expanded"


class StorageClassLookup(Protocol):
    async def storage_classes(self) -> list[dict[str, Any]]:
        """Every StorageClass."""
        ...


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    annotations = (obj.get("metadata") or {}).get("annotations")
    return annotations if isinstance(annotations, dict) else {}


def is_default_class(sc: dict[str, Any]) -> bool:
    annotations = _annotations(sc)
    return any(annotations.get(a) == "true" for a in DEFAULT_CLASS_ANNOTATIONS)


def default_class(classes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """GetDefaultClass: among the classes marked default, the newest; same age: the first by name."""
    defaults = [sc for sc in classes if is_default_class(sc)]
    if not defaults:
        return None

    def order(sc: dict[str, Any]) -> tuple[float, str]:
        meta = sc.get("metadata") or {}
        created = parse_rfc3339(meta.get("creationTimestamp"))
        return (-created.timestamp() if created else 0.0, str(meta.get("name") or ""))

    return sorted(defaults, key=order)[0]


def claim_class(pvc: dict[str, Any]) -> str:
    """GetPersistentVolumeClaimClass: the beta annotation, else ``spec.storageClassName``, else ""."""
    annotations = _annotations(pvc)
    if BETA_CLASS_ANNOTATION in annotations:
        return str(annotations[BETA_CLASS_ANNOTATION])
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def _has_class(pvc: dict[str, Any]) -> bool:
    """PersistentVolumeClaimHasClass: "" counts (it asks for no class), absence does not."""
    return (
        BETA_CLASS_ANNOTATION in _annotations(pvc)
        or (pvc.get("spec") or {}).get("storageClassName") is not None
    )


class DefaultStorageClass(MutatingPlugin):
    NAME: ClassVar[str] = "DefaultStorageClass"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    def __init__(self, classes: StorageClassLookup) -> None:
        self._classes = classes

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if attrs.kind != PVC or attrs.subresource or _has_class(obj):
            return Admitted(obj)
        chosen = default_class(await self._classes.storage_classes())
        if chosen is not None:
            spec = obj.setdefault("spec", {})
            spec["storageClassName"] = chosen["metadata"]["name"]
        return Admitted(obj)


class StorageObjectInUseProtection(MutatingPlugin):
    NAME: ClassVar[str] = "StorageObjectInUseProtection"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        finalizer = {PVC: PVC_PROTECTION, PV: PV_PROTECTION}.get(attrs.kind)
        if finalizer is None or attrs.subresource:
            return Admitted(obj)
        meta = obj.setdefault("metadata", {})
        finalizers = meta.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = meta["finalizers"] = []
        if finalizer not in finalizers:
            finalizers.append(finalizer)
        return Admitted(obj)


class StorageStatus(MutatingPlugin):
    NAME: ClassVar[str] = "StorageStatus"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    async def admit(self, attrs: Attributes) -> Admitted:
        obj = attrs.object
        if attrs.operation is Operation.CREATE:
            if attrs.kind == PV:
                obj["status"] = {"phase": "Pending", "lastPhaseTransitionTime": rfc3339(attrs.now)}
            elif attrs.kind == PVC:
                obj["status"] = {"phase": "Pending"}
            elif attrs.kind == VOLUME_ATTACHMENT:
                obj["status"] = {"attached": False}
        elif attrs.kind == PV and attrs.subresource == "status":
            new = obj.setdefault("status", {})
            old = (attrs.old_object or {}).get("status") or {}
            stamp, old_stamp = new.get("lastPhaseTransitionTime"), old.get("lastPhaseTransitionTime")
            if new.get("phase") == old.get("phase") and stamp is None and old_stamp is not None:
                new["lastPhaseTransitionTime"] = old_stamp
            elif new.get("phase") != old.get("phase") and (stamp is None or stamp == old_stamp):
                new["lastPhaseTransitionTime"] = rfc3339(attrs.now)
        return Admitted(obj)


def _storage_request(pvc: dict[str, Any]) -> Decimal:
    requests = ((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}
    try:
        return parse_quantity(requests.get("storage", 0))
    except QuantityError:
        return Decimal(0)


class PersistentVolumeClaimResize(ValidatingPlugin):
    NAME: ClassVar[str] = "PersistentVolumeClaimResize"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.UPDATE})

    def __init__(self, classes: StorageClassLookup) -> None:
        self._classes = classes

    async def validate(self, attrs: Attributes) -> None:
        if attrs.kind != PVC or attrs.subresource or attrs.old_object is None:
            return
        new, old = attrs.object, attrs.old_object
        if _storage_request(new) <= _storage_request(old):
            return
        if (old.get("status") or {}).get("phase") != "Bound":
            raise self._refuse(attrs, RESIZE_UNBOUND)
        if not await self._allows_resize(new, old):
            raise self._refuse(attrs, RESIZE_NOT_ALLOWED)

    async def _allows_resize(self, new: dict[str, Any], old: dict[str, Any]) -> bool:
        name = claim_class(new)
        if not name or name != claim_class(old):
            return False
        for sc in await self._classes.storage_classes():
            if (sc.get("metadata") or {}).get("name") == name:
                return sc.get("allowVolumeExpansion") is True
        return False

    @staticmethod
    def _refuse(attrs: Attributes, why: str) -> Exception:
        return forbidden(
            f'{qualified_resource(attrs.resource)} "{attrs.name}" is forbidden: {why}',
            attrs.resource,
            attrs.name,
        )


class NoStorageClasses:
    """A cluster without classes (for chains built without a store, as in unit tests)."""

    async def storage_classes(self) -> list[dict[str, Any]]:
        return []
