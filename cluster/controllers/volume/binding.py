"""The PV controller's decisions, without I/O: which volume a claim gets, and what a claim's or a
volume's sync must do next.

Kubernetes' ``pkg/controller/volume/persistentvolume`` (``pv_controller.go``, ``index.go``) and
``component-helpers/storage/volume`` (``FindMatchingVolume``) are the reference:

* **matching** (:func:`find_best_match`): volumes are grouped by their exact access-mode set; the groups
  whose modes include every mode the claim asks for are tried fewest modes first, and the first group
  with a match wins. Inside a group a volume pre-bound to the claim (``claimRef`` naming it, with its
  uid or none) wins at once if big enough; otherwise the smallest Available volume with enough
  capacity, the claim's class (``""`` for none), its volume mode and matching the claim's selector.
  Volumes being deleted never match. For a WaitForFirstConsumer claim only pre-bound volumes match:
  the scheduler's VolumeBinding plugin chooses a node-fitting volume and pre-binds it.
* **claim sync** (:func:`sync_claim`) and **volume sync** (:func:`sync_volume`) return the steps to
  take, in order; the controller performs them and stops at the first failed write (the next sync
  starts over from the new state, so every step is idempotent).
* the object edits (:func:`volume_bound_to`, :func:`claim_bound_to`, :func:`claim_status`) return a new
  object or None when nothing changes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cluster.machinery.labels import SelectorError, label_selector_from_dict
from cluster.machinery.quantity import QuantityError, parse_quantity

Obj = Mapping[str, Any]

BIND_COMPLETED_ANN = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER_ANN = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY_ANN = "pv.kubernetes.io/provisioned-by"
STORAGE_PROVISIONER_ANN = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER_ANN = "volume.beta.kubernetes.io/storage-provisioner"
SELECTED_NODE_ANN = "volume.kubernetes.io/selected-node"
BETA_STORAGE_CLASS_ANN = "volume.beta.kubernetes.io/storage-class"
NO_PROVISIONER = "kubernetes.io/no-provisioner"
RESIZE_CONDITIONS = frozenset({"Resizing", "FileSystemResizePending"})

# Event reasons, as pkg/controller/volume/events names them.
FAILED_BINDING = "FailedBinding"
VOLUME_MISMATCH = "VolumeMismatch"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
EXTERNAL_PROVISIONING = "ExternalProvisioning"
PROVISIONING_FAILED = "ProvisioningFailed"
VOLUME_FAILED_DELETE = "VolumeFailedDelete"
VOLUME_FAILED_RECYCLE = "VolumeFailedRecycle"
CLAIM_LOST = "ClaimLost"
CLAIM_MISBOUND = "ClaimMisbound"

NORMAL, WARNING = "Normal", "Warning"


# -- reading objects -------------------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def annotations_of(obj: Obj) -> Obj:
    return _meta(obj).get("annotations") or {}


def claim_key(claim: Obj) -> str:
    return f"{_meta(claim).get('namespace', '')}/{_meta(claim).get('name', '')}"


def claim_ref_key(volume: Obj) -> str | None:
    ref = _spec(volume).get("claimRef")
    return f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else None


def claim_class(claim: Obj) -> str:
    """The claim's StorageClass name, ``""`` for none (the beta annotation still counts, as in kube)."""
    beta = annotations_of(claim).get(BETA_STORAGE_CLASS_ANN)
    if beta is not None:
        return str(beta)
    return str(_spec(claim).get("storageClassName") or "")


def volume_class(volume: Obj) -> str:
    beta = annotations_of(volume).get(BETA_STORAGE_CLASS_ANN)
    if beta is not None:
        return str(beta)
    return str(_spec(volume).get("storageClassName") or "")


def _quantity(value: Any) -> Decimal:
    try:
        return parse_quantity(value) if value is not None else Decimal(0)
    except QuantityError:
        return Decimal(0)


def requested_storage(claim: Obj) -> Decimal:
    return _quantity(((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage"))


def volume_storage(volume: Obj) -> Decimal:
    return _quantity((_spec(volume).get("capacity") or {}).get("storage"))


def _volume_mode(obj: Obj) -> str:
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def access_modes_satisfied(claim: Obj, volume: Obj) -> bool:
    """Whether the volume offers every access mode the claim asks for."""
    return set(_spec(claim).get("accessModes") or ()) <= set(_spec(volume).get("accessModes") or ())


def is_volume_bound_to_claim(volume: Obj, claim: Obj) -> bool:
    """``claimRef`` names the claim and carries its uid or none (pre-bound by a user)."""
    ref = _spec(volume).get("claimRef")
    if not ref:
        return False
    meta = _meta(claim)
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def _selector_matches(claim: Obj, volume: Obj) -> bool:
    selector = _spec(claim).get("selector")
    if selector is None:
        return True
    try:
        return label_selector_from_dict(selector).matches(_meta(volume).get("labels") or {})
    except SelectorError:
        return False


def is_claim_bound(claim: Obj) -> bool:
    """kube's test of a bound claim: the bind-completed annotation, not the phase."""
    return BIND_COMPLETED_ANN in annotations_of(claim)


# -- matching --------------------------------------------------------------------------------------


def _find_in_group(claim: Obj, volumes: Iterable[Obj], delay_binding: bool) -> Obj | None:
    requested = requested_storage(claim)
    wanted_class = claim_class(claim)
    smallest: Obj | None = None
    for volume in sorted(volumes, key=lambda v: str(_meta(v).get("name", ""))):
        if _spec(volume).get("claimRef") and not is_volume_bound_to_claim(volume, claim):
            continue
        size = volume_storage(volume)
        if size < requested or _volume_mode(volume) != _volume_mode(claim):
            continue
        if _meta(volume).get("deletionTimestamp"):
            continue
        if is_volume_bound_to_claim(volume, claim):
            return volume
        if delay_binding:
            continue  # the scheduler picks (and pre-binds) a volume that fits the pod's node
        if (volume.get("status") or {}).get("phase") != "Available":
            continue
        if not _selector_matches(claim, volume) or volume_class(volume) != wanted_class:
            continue
        if smallest is None or volume_storage(smallest) > size:
            smallest = volume
    return smallest


def find_best_match(claim: Obj, volumes: Iterable[Obj], *, delay_binding: bool = False) -> Obj | None:
    """The volume the claim should bind to, or None; see the module docstring for the rules."""
    wanted = set(_spec(claim).get("accessModes") or ())
    groups: dict[frozenset[str], list[Obj]] = {}
    for volume in volumes:
        modes = frozenset(_spec(volume).get("accessModes") or ())
        if wanted <= modes:
            groups.setdefault(modes, []).append(volume)
    for modes in sorted(groups, key=lambda m: (len(m), sorted(m))):
        found = _find_in_group(claim, groups[modes], delay_binding)
        if found is not None:
            return found
    return None


def volume_mismatch(volume: Obj, claim: Obj) -> str | None:
    """Why a volume the claim names in ``spec.volumeName`` cannot serve it (kube's messages), or None."""
    if volume_storage(volume) < requested_storage(claim):
        return "requested PV is too small"
    if volume_class(volume) != claim_class(claim):
        return "storageClassName does not match"
    if _volume_mode(volume) != _volume_mode(claim):
        return "incompatible volumeMode"
    if not access_modes_satisfied(claim, volume):
        return "incompatible accessMode"
    return None


# -- steps -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    event_type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Bind:
    """Bind both ways: the volume's claimRef, then its phase Bound, then the claim's volumeName and
    annotations, then its status Bound with the volume's capacity and access modes."""

    volume: str


@dataclass(frozen=True, slots=True)
class ClaimPhase:
    """Set the claim's phase (and its capacity/access modes from ``volume``, cleared when None).
    ``event`` is recorded only when the phase really changes (kube's updateClaimStatusWithEvent)."""

    phase: str
    volume: str | None = None
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class ClaimEvent:
    """An event on the claim recorded on every sync that reaches it (kube does the same)."""

    event: Event


@dataclass(frozen=True, slots=True)
class SetProvisioner:
    """Annotate the claim for the external provisioner ``provisioner`` (both annotation names)."""

    provisioner: str


@dataclass(frozen=True, slots=True)
class VolumePhase:
    """Set the volume's phase and message; ``event`` only when the phase changes."""

    phase: str
    message: str = ""
    event: Event | None = None


@dataclass(frozen=True, slots=True)
class Unbind:
    """Clear a controller-made claimRef, or only its uid when a user pre-bound the volume; Available."""


@dataclass(frozen=True, slots=True)
class EnqueueClaim:
    key: str


Step = Bind | ClaimPhase | ClaimEvent | SetProvisioner | VolumePhase | Unbind | EnqueueClaim


def external_provisioning_message(provisioner: str) -> str:
    return (
        f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or "
        "manually by the system administrator. If volume creation is delayed, please verify that the "
        "provisioner is running and correctly registered."
    )


def _provision_steps(claim: Obj, klass: Obj | None, class_name: str) -> list[Step]:
    if klass is None:
        message = f'storageclass.storage.k8s.io "{class_name}" not found'
        return [ClaimEvent(Event(WARNING, PROVISIONING_FAILED, message)), ClaimPhase("Pending")]
    provisioner = str(klass.get("provisioner") or "")
    if provisioner == NO_PROVISIONER or not provisioner:
        message = (
            f'storageclass "{class_name}" has no provisioner ({NO_PROVISIONER}): create a '
            "PersistentVolume that matches this claim"
        )
        return [ClaimEvent(Event(NORMAL, FAILED_BINDING, message)), ClaimPhase("Pending")]
    steps: list[Step] = []
    ann = annotations_of(claim)
    if (
        ann.get(STORAGE_PROVISIONER_ANN) != provisioner
        or ann.get(BETA_STORAGE_PROVISIONER_ANN) != provisioner
    ):
        steps.append(SetProvisioner(provisioner))
    steps.append(ClaimEvent(Event(NORMAL, EXTERNAL_PROVISIONING, external_provisioning_message(provisioner))))
    steps.append(ClaimPhase("Pending"))
    return steps


def sync_claim(
    claim: Obj,
    volumes: Iterable[Obj],
    volume_named: Callable[[str], Obj | None],
    class_named: Callable[[str], Obj | None],
) -> list[Step]:
    """What a sync of ``claim`` must do (kube's syncClaim: syncUnboundClaim / syncBoundClaim)."""
    if is_claim_bound(claim):
        return _sync_bound_claim(claim, volume_named)
    volume_name = str(_spec(claim).get("volumeName") or "")
    if not volume_name:
        class_name = claim_class(claim)
        klass = class_named(class_name) if class_name else None
        delay = bool(klass and klass.get("volumeBindingMode") == "WaitForFirstConsumer")
        volume = find_best_match(claim, volumes, delay_binding=delay)
        if volume is not None:
            return [Bind(str(_meta(volume).get("name")))]
        if delay and SELECTED_NODE_ANN not in annotations_of(claim):
            message = "waiting for first consumer to be created before binding"
            return [ClaimEvent(Event(NORMAL, WAIT_FOR_FIRST_CONSUMER, message)), ClaimPhase("Pending")]
        if class_name:
            return _provision_steps(claim, klass, class_name)
        message = "no persistent volumes available for this claim and no storage class is set"
        return [ClaimEvent(Event(NORMAL, FAILED_BINDING, message)), ClaimPhase("Pending")]
    # Pre-bound by the user through spec.volumeName.
    volume = volume_named(volume_name)
    if volume is None:
        return [ClaimPhase("Pending")]  # the volume may still be on its way
    if not _spec(volume).get("claimRef"):
        mismatch = volume_mismatch(volume, claim)
        if mismatch:
            return [ClaimPhase("Pending", None, Event(WARNING, VOLUME_MISMATCH, mismatch))]
        return [Bind(volume_name)]
    if is_volume_bound_to_claim(volume, claim):
        return [Bind(volume_name)]
    if BOUND_BY_CONTROLLER_ANN not in annotations_of(claim):
        message = f'volume "{volume_name}" already bound to a different claim.'
        return [ClaimPhase("Pending", None, Event(WARNING, FAILED_BINDING, message))]
    return []  # we set volumeName ourselves and the volume went elsewhere: nothing safe to do


def _sync_bound_claim(claim: Obj, volume_named: Callable[[str], Obj | None]) -> list[Step]:
    volume_name = str(_spec(claim).get("volumeName") or "")
    if not volume_name:
        message = "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!"
        return [ClaimPhase("Lost", None, Event(WARNING, CLAIM_LOST, message))]
    volume = volume_named(volume_name)
    if volume is None:
        message = "Bound claim has lost its PersistentVolume. Data on the volume is lost!"
        return [ClaimPhase("Lost", None, Event(WARNING, CLAIM_LOST, message))]
    ref = _spec(volume).get("claimRef")
    if not ref or ref.get("uid") == _meta(claim).get("uid"):
        return [Bind(volume_name)]  # unbound volume: bind again; bound: make every field agree
    message = "Two claims are bound to the same volume, this one is bound incorrectly"
    return [ClaimPhase("Lost", None, Event(WARNING, CLAIM_MISBOUND, message))]


def sync_volume(volume: Obj, claim: Obj | None) -> list[Step]:
    """What a sync of ``volume`` must do (kube's syncVolume); ``claim`` is the one its claimRef names
    as the cache and a live read found it (None when it does not exist)."""
    ref = _spec(volume).get("claimRef")
    if not ref or not ref.get("uid"):
        return [VolumePhase("Available")]  # unused, or pre-bound and waiting for its claim's sync
    if claim is not None and _meta(claim).get("uid") != ref.get("uid"):
        claim = None  # the claim it was bound to was deleted and another took the name
    phase = (volume.get("status") or {}).get("phase")
    if claim is None:
        steps: list[Step] = []
        if phase not in ("Released", "Failed"):
            steps.append(VolumePhase("Released"))
        return steps + reclaim(volume)
    claimed_volume = _spec(claim).get("volumeName") or ""
    name = _meta(volume).get("name")
    if not claimed_volume:
        return [EnqueueClaim(claim_key(claim))]  # binding half done; the claim's sync finishes it
    if claimed_volume == name:
        return [VolumePhase("Bound")]
    # The claim is bound to another volume.
    reclaim_policy = _spec(volume).get("persistentVolumeReclaimPolicy")
    if PROVISIONED_BY_ANN in annotations_of(volume) and reclaim_policy == "Delete":
        steps = [] if phase in ("Released", "Failed") else [VolumePhase("Released")]
        return steps + reclaim(volume)
    return [Unbind()]


def reclaim(volume: Obj) -> list[Step]:
    """The reclaim policy of a Released volume. Retain keeps it Released for an administrator; Delete
    of a dynamically provisioned volume is the provisioner's job (it watches Released volumes it
    provisioned); Delete of anything else and Recycle fail, with an event saying what to do."""
    policy = _spec(volume).get("persistentVolumeReclaimPolicy") or "Retain"
    name = _meta(volume).get("name")
    if policy == "Retain":
        return []
    if policy == "Recycle":
        message = (
            f'recycling of volume "{name}" is not supported (the Recycle policy is deprecated): '
            "set persistentVolumeReclaimPolicy to Retain or Delete and clean up the volume yourself"
        )
        return [VolumePhase("Failed", message, Event(WARNING, VOLUME_FAILED_RECYCLE, message))]
    if policy == "Delete":
        if PROVISIONED_BY_ANN in annotations_of(volume):
            return []  # the external provisioner deletes it
        message = (
            f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin '
            "matched (only dynamically provisioned volumes are deleted; remove it yourself)"
        )
        return [VolumePhase("Failed", message, Event(WARNING, VOLUME_FAILED_DELETE, message))]
    message = f'unknown reclaim policy "{policy}" of volume "{name}"'
    return [VolumePhase("Failed", message, Event(WARNING, VOLUME_FAILED_DELETE, message))]


# -- object edits ----------------------------------------------------------------------------------


def _with_annotation(obj: dict[str, Any], key: str, value: str) -> None:
    obj.setdefault("metadata", {}).setdefault("annotations", {})[key] = value


def volume_bound_to(volume: Obj, claim: Obj) -> dict[str, Any] | None:
    """The volume with a claimRef to ``claim`` (uid and resourceVersion) and, unless a user pre-bound
    it, ``bound-by-controller``; None when it already says so."""
    set_by_controller = not is_volume_bound_to_claim(volume, claim)
    new = copy.deepcopy(dict(volume))
    dirty = False
    ref = _spec(volume).get("claimRef") or {}
    meta = _meta(claim)
    if (ref.get("name"), ref.get("namespace"), ref.get("uid")) != (
        meta.get("name"),
        meta.get("namespace"),
        meta.get("uid"),
    ):
        new.setdefault("spec", {})["claimRef"] = {
            "kind": "PersistentVolumeClaim",
            "apiVersion": "v1",
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        }
        dirty = True
    if set_by_controller and BOUND_BY_CONTROLLER_ANN not in annotations_of(volume):
        _with_annotation(new, BOUND_BY_CONTROLLER_ANN, "yes")
        dirty = True
    return new if dirty else None


def claim_bound_to(claim: Obj, volume: Obj) -> dict[str, Any] | None:
    """The claim with ``volumeName`` and the bind annotations; None when it already has them."""
    name = _meta(volume).get("name")
    new = copy.deepcopy(dict(claim))
    dirty = False
    if _spec(claim).get("volumeName") != name:
        new.setdefault("spec", {})["volumeName"] = name
        if BOUND_BY_CONTROLLER_ANN not in annotations_of(claim):
            _with_annotation(new, BOUND_BY_CONTROLLER_ANN, "yes")
        dirty = True
    if BIND_COMPLETED_ANN not in annotations_of(claim):
        _with_annotation(new, BIND_COMPLETED_ANN, "yes")
        dirty = True
    return new if dirty else None


def claim_status(claim: Obj, phase: str, volume: Obj | None) -> dict[str, Any] | None:
    """The claim with ``phase`` and the volume's capacity and access modes (cleared without a volume);
    None when nothing changes. While an expansion is in progress (a ``Resizing`` or
    ``FileSystemResizePending`` condition) the claim's capacity stays what the node last reported."""
    status = dict(claim.get("status") or {})
    before = dict(status)
    status["phase"] = phase
    if volume is None:
        status.pop("accessModes", None)
        status.pop("capacity", None)
    else:
        status["accessModes"] = list(_spec(volume).get("accessModes") or ())
        capacity = _spec(volume).get("capacity") or {}
        old = (before.get("capacity") or {}).get("storage")
        resizing = any(c.get("type") in RESIZE_CONDITIONS for c in before.get("conditions") or ())
        if old is None or (not resizing and _quantity(old) != volume_storage(volume)):
            status["capacity"] = dict(capacity)
    if status == before:
        return None
    new = copy.deepcopy(dict(claim))
    new["status"] = status
    return new
