"""The admission chain: which plugins run, in which order (kube-apiserver's plugin order, as data).

A write goes decode → ``before_validation`` → validation → ``after_validation`` → storage:

* before validation: NamespaceLifecycle first (a create in a missing or terminating namespace fails
  with 404/403 before anything looks at the body), then Defaulting (the field manager's baseline is
  the object as it leaves it, so fields later plugins add belong to no manager and a server-side
  apply never removes them), then kube's mutating plugins in kube's order (LimitRanger's defaults,
  ServiceAccount, Priority, then DefaultTolerationSeconds, DefaultStorageClass and
  StorageObjectInUseProtection) and the fields kinds drop or carry over (the initial status of pods
  and storage objects).
* validation (the pure ``validation`` package) sees the object as the user will get it, minus what
  the server sets.
* after validation: the server-set metadata (uid, creationTimestamp, generation), what depends on it
  (a gated pod's condition, a Job's selector), PersistentVolumeClaimResize (which, validating, only
  sees claims validation let through), kube's validating plugins in kube's order (LimitRanger's
  min/max, NodeRestriction, PodSecurity), then ServiceAllocation, so an invalid Service reports its
  field errors before its IP or node port is checked, and ResourceQuota last: it charges the quota,
  so nothing is charged for a request another plugin refuses.
* on delete: NodeRestriction (a node deletes only its own pods), with the stored object.

The ServiceAccount plugin needs the ``default`` account the serviceaccount controller makes and a
server that can issue tokens; a registry without them (``service_accounts=None``) leaves it out, and
PodAdmissionDefaults still names the ``default`` account.

The order is part of the API: a request invalid in two ways reports the first check in this order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cluster.apiserver.admission.certificate_signing import CertificateSigningRequestStrategy
from cluster.apiserver.admission.default_toleration_seconds import DefaultTolerationSeconds
from cluster.apiserver.admission.interfaces import KeyLookup, NamespaceLookup, Plugin
from cluster.apiserver.admission.job import JobSelector
from cluster.apiserver.admission.limit_ranger import LimitRangeLookup, LimitRanger, LimitRangerValidation
from cluster.apiserver.admission.namespace_lifecycle import NamespaceLifecycle
from cluster.apiserver.admission.node_restriction import NodeRestriction
from cluster.apiserver.admission.object_meta import Defaulting, GenerationField, ObjectMetaSystemFields
from cluster.apiserver.admission.pod import PodAdmissionDefaults, PodInitialStatus, PodSchedulingGated
from cluster.apiserver.admission.pod_security import PodLister, PodSecurity
from cluster.apiserver.admission.priority import Priority, PriorityClassLookup
from cluster.apiserver.admission.resource_quota import QuotaLookup, ResourceQuota
from cluster.apiserver.admission.service_account import ServiceAccount, ServiceAccountLookup
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


class AdmissionLookups(LimitRangeLookup, PriorityClassLookup, QuotaLookup, PodLister, Protocol):
    """Everything LimitRanger, Priority, ResourceQuota and PodSecurity read (the registry)."""


@dataclass(frozen=True, slots=True)
class AdmissionChain:
    before_validation: Sequence[Plugin]
    after_validation: Sequence[Plugin]
    on_delete: Sequence[Plugin] = ()


def admission_chain(
    namespaces: NamespaceLookup,
    keys: KeyLookup,
    services: ServiceNetwork = DEFAULT_SERVICE_NETWORK,
    classes: StorageClassLookup | None = None,
    lookups: AdmissionLookups | None = None,
    service_accounts: ServiceAccountLookup | None = None,
) -> AdmissionChain:
    """The chain for one registry: ``namespaces`` answers NamespaceLifecycle, ``keys`` tells
    ServiceAllocation which IPs and ports are taken, ``services`` is the Service CIDR, ``classes``
    lists the StorageClasses (DefaultStorageClass, PersistentVolumeClaimResize), ``lookups`` reads
    LimitRanges, PriorityClasses, ResourceQuotas and pods (None: those plugins are left out),
    ``service_accounts`` the ServiceAccounts (None: no ServiceAccount plugin)."""
    classes = classes if classes is not None else NoStorageClasses()
    limit_ranges: tuple[Plugin, ...] = (LimitRanger(lookups),) if lookups is not None else ()
    account: tuple[Plugin, ...] = (ServiceAccount(service_accounts),) if service_accounts is not None else ()
    priority: tuple[Plugin, ...] = (Priority(lookups),) if lookups is not None else ()
    validating: tuple[Plugin, ...] = (NodeRestriction(), PodSecurity(namespaces, lookups))
    if lookups is not None:
        validating = (LimitRangerValidation(lookups), *validating)
    quota: tuple[Plugin, ...] = (ResourceQuota(lookups),) if lookups is not None else ()
    return AdmissionChain(
        before_validation=(
            NamespaceLifecycle(namespaces),
            Defaulting(),
            *limit_ranges,
            *account,
            *priority,
            PodAdmissionDefaults(),
            DefaultTolerationSeconds(),
            DefaultStorageClass(classes),
            StorageObjectInUseProtection(),
            PodInitialStatus(),
            StorageStatus(),
            ServiceAllocatedValues(),
            CertificateSigningRequestStrategy(),
            GenerationField(),
        ),
        after_validation=(
            ObjectMetaSystemFields(),
            PodSchedulingGated(),
            JobSelector(),
            PersistentVolumeClaimResize(classes),
            *validating,
            ServiceAllocation(keys, services),
            *quota,
        ),
        on_delete=(NodeRestriction(),),
    )
