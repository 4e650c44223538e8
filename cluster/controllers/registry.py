"""Every controller the manager can run, by kube-controller-manager's name, and the ``--controllers``
flag's rules.

``enabled(spec)`` reads the flag as kube-controller-manager does: ``*`` turns on every controller not
disabled by default, ``name`` turns one on, ``-name`` turns it off; for each controller the first entry
naming it wins over ``*``. An unknown name is an error, not a silent no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cluster.controllers.certificates import (
    CSRApprovingController,
    CSRCleanerController,
    CSRSigningController,
)
from cluster.controllers.clusterrole_aggregation import ClusterRoleAggregationController
from cluster.controllers.control_plane_pods import ControlPlanePods
from cluster.controllers.cronjob import CronJobController
from cluster.controllers.daemonset import DaemonSetController
from cluster.controllers.deployment import DeploymentController
from cluster.controllers.disruption import DisruptionController
from cluster.controllers.endpoints import EndpointsController
from cluster.controllers.endpointslice import EndpointSliceController
from cluster.controllers.garbagecollector import GarbageCollector
from cluster.controllers.job import JobController
from cluster.controllers.namespace import NamespaceController
from cluster.controllers.node_lifecycle import NodeLifecycleController
from cluster.controllers.nodeipam import NodeIpamController
from cluster.controllers.podgc import PodGCController
from cluster.controllers.replicaset import ReplicaSetController
from cluster.controllers.resourcequota import ResourceQuotaController
from cluster.controllers.root_ca_publisher import RootCACertPublisher
from cluster.controllers.runtime import Controller
from cluster.controllers.service_lb import ServiceLBController
from cluster.controllers.serviceaccount import ServiceAccountController
from cluster.controllers.statefulset.controller import StatefulSetController
from cluster.controllers.tainteviction import TaintEvictionController
from cluster.controllers.ttl_after_finished import TTLAfterFinishedController
from cluster.controllers.volume.attachdetach import AttachDetachController
from cluster.controllers.volume.expand import ExpandController
from cluster.controllers.volume.protection import PVCProtectionController, PVProtectionController
from cluster.controllers.volume.provisioner import CSIProvisioner
from cluster.controllers.volume.pv_controller import PersistentVolumeController

CONTROLLERS: dict[str, type[Controller]] = {
    EndpointSliceController.NAME: EndpointSliceController,
    EndpointsController.NAME: EndpointsController,
    ServiceAccountController.NAME: ServiceAccountController,
    DisruptionController.NAME: DisruptionController,
    NodeLifecycleController.NAME: NodeLifecycleController,
    NodeIpamController.NAME: NodeIpamController,
    ControlPlanePods.NAME: ControlPlanePods,
    GarbageCollector.NAME: GarbageCollector,
    NamespaceController.NAME: NamespaceController,
    TaintEvictionController.NAME: TaintEvictionController,
    ReplicaSetController.NAME: ReplicaSetController,
    DeploymentController.NAME: DeploymentController,
    DaemonSetController.NAME: DaemonSetController,
    StatefulSetController.NAME: StatefulSetController,
    JobController.NAME: JobController,
    CronJobController.NAME: CronJobController,
    TTLAfterFinishedController.NAME: TTLAfterFinishedController,
    ClusterRoleAggregationController.NAME: ClusterRoleAggregationController,
    PodGCController.NAME: PodGCController,
    ServiceLBController.NAME: ServiceLBController,
    PersistentVolumeController.NAME: PersistentVolumeController,
    PVCProtectionController.NAME: PVCProtectionController,
    PVProtectionController.NAME: PVProtectionController,
    ExpandController.NAME: ExpandController,
    CSIProvisioner.NAME: CSIProvisioner,
    AttachDetachController.NAME: AttachDetachController,
    CSRSigningController.NAME: CSRSigningController,
    CSRApprovingController.NAME: CSRApprovingController,
    CSRCleanerController.NAME: CSRCleanerController,
    ResourceQuotaController.NAME: ResourceQuotaController,
    RootCACertPublisher.NAME: RootCACertPublisher,
}

DISABLED_BY_DEFAULT: frozenset[str] = frozenset()

# Controller name -> the kube-system ServiceAccount it writes as (kube-controller-manager's
# --use-service-account-credentials; Kubernetes' names, bound to its system:controller:<name>
# ClusterRoles; raykube's own controllers get theirs from raykube_policy). The shared informers
# read as system:kube-controller-manager. A controller missing here writes as that identity too,
# which RBAC refuses: add it with its account.
SERVICE_ACCOUNTS: dict[str, str] = {
    "attachdetach": "attachdetach-controller",
    "clusterrole-aggregation": "clusterrole-aggregation-controller",
    "controlplanepods": "control-plane-pods",
    "csrapproving": "certificate-controller",
    "csrcleaner": "certificate-controller",
    "csrsigning": "certificate-controller",
    "cronjob": "cronjob-controller",
    "csi-provisioner": "csi-provisioner",
    "daemonset": "daemon-set-controller",
    "deployment": "deployment-controller",
    "disruption": "disruption-controller",
    "endpoint": "endpoint-controller",
    "endpointslice": "endpointslice-controller",
    "garbagecollector": "generic-garbage-collector",
    "job": "job-controller",
    "namespace": "namespace-controller",
    "node-ipam-controller": "node-controller",  # kube's node IPAM runs with the node controller's account
    "nodelifecycle": "node-controller",
    "persistentvolume-binder": "persistent-volume-binder",
    "persistentvolume-expander": "expand-controller",
    "podgc": "pod-garbage-collector",
    "pv-protection": "pv-protection-controller",
    "pvc-protection": "pvc-protection-controller",
    "replicaset": "replicaset-controller",
    "resourcequota": "resourcequota-controller",
    "root-ca-cert-publisher": "root-ca-cert-publisher",
    "serviceaccount": "service-account-controller",
    "service-lb-controller": "service-controller",  # kube's service controller publishes LB status
    "statefulset": "statefulset-controller",
    "taint-eviction-controller": "node-controller",  # as kube's, which evicts with that account
    "ttl-after-finished": "ttl-after-finished-controller",
}


class UnknownController(ValueError):
    pass


def is_enabled(
    name: str, spec: Sequence[str], disabled_by_default: frozenset[str] = DISABLED_BY_DEFAULT
) -> bool:
    star = False
    for entry in spec:
        if entry == name:
            return True
        if entry == f"-{name}":
            return False
        if entry == "*":
            star = True
    return star and name not in disabled_by_default


def enabled(
    spec: Sequence[str],
    known: Mapping[str, type[Controller]] | None = None,
    disabled_by_default: frozenset[str] = DISABLED_BY_DEFAULT,
) -> list[str]:
    """The controllers ``spec`` turns on, in name order; ``UnknownController`` for a name not known."""
    known = CONTROLLERS if known is None else known
    for entry in spec:
        name = entry.removeprefix("-")
        if entry != "*" and name not in known:
            raise UnknownController(
                f'"{name}" is not in the list of known controllers ({", ".join(sorted(known))})'
            )
    return [name for name in sorted(known) if is_enabled(name, spec, disabled_by_default)]
