"""The admission chain: which plugins run, in which order (kube-apiserver's plugin order, as data).

A write goes decode → ``before_validation`` → validation → ``after_validation`` → storage:

* before validation: NamespaceLifecycle first (a create in a missing or terminating namespace fails
  with 404/403 before anything looks at the body), then Defaulting (the field manager's baseline is
  the object as it leaves it, so fields later plugins add belong to no manager and a server-side
  apply never removes them), then the admission defaults (ServiceAccount and Priority, then
  DefaultTolerationSeconds, DefaultStorageClass and StorageObjectInUseProtection, in kube's order)
  and the fields kinds drop or carry over (the initial status of pods and storage objects).
* validation (the pure ``validation`` package) sees the object as the user will get it, minus what
  the server sets.
* after validation: the server-set metadata (uid, creationTimestamp, generation), what depends on it
  (a gated pod's condition, a Job's selector), PersistentVolumeClaimResize (which, validating, only
  sees claims validation let through), then ServiceAllocation last, so an invalid Service
  reports its field errors before its IP or node port is checked, and nothing is reserved for a
  request that fails.

The order is part of the API: a request invalid in two ways reports the first check in this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cluster.apiserver.admission.default_toleration_seconds import DefaultTolerationSeconds
from cluster.apiserver.admission.interfaces import KeyLookup, NamespaceLookup, Plugin
from cluster.apiserver.admission.job import JobSelector
from cluster.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from cluster.apiserver.admission.object_meta import Defaulting, GenerationField, ObjectMetaSystemFields
from cluster.apiserver.admission.pod import PodAdmissionDefaults, PodInitialStatus, PodSchedulingGated
from cluster.apiserver.admission.service_allocation import (
    DEFAULT_SERVICE_NETWORK,
    ServiceAllocatedValues,
    ServiceAllocation,
    ServiceNetwork,
)
from cluster.apiserver.admission.storage import (
    DefaultStorageClass,
    NoStorageClasses,
    PersistentVolumeClaimResize,
    StorageClassLookup,
    StorageObjectInUseProtection,
    StorageStatus,
)

FIELD_MANAGER_BASELINE = Defaulting.NAME


@dataclass(frozen=True, slots=True)
class AdmissionChain:
    before_validation: Sequence[Plugin]
    after_validation: Sequence[Plugin]


def admission_chain(
    namespaces: NamespaceLookup,
    keys: KeyLookup,
    services: ServiceNetwork = DEFAULT_SERVICE_NETWORK,
    classes: StorageClassLookup | None = None,
) -> AdmissionChain:
    """The chain for one registry: ``namespaces`` answers NamespaceLifecycle, ``keys`` tells
    ServiceAllocation which IPs and ports are taken, ``services`` is the Service CIDR, ``classes``
    lists the StorageClasses (DefaultStorageClass, PersistentVolumeClaimResize)."""
    classes = classes if classes is not None else NoStorageClasses()
    return AdmissionChain(
        before_validation=(
            NamespaceLifecycle(namespaces),
            Defaulting(),
            PodAdmissionDefaults(),
            DefaultTolerationSeconds(),
            DefaultStorageClass(classes),
            StorageObjectInUseProtection(),
            PodInitialStatus(),
            StorageStatus(),
            ServiceAllocatedValues(),
            GenerationField(),
        ),
        after_validation=(
            ObjectMetaSystemFields(),
            PodSchedulingGated(),
            JobSelector(),
            PersistentVolumeClaimResize(classes),
            ServiceAllocation(keys, services),
        ),
    )
