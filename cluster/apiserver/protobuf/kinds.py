"""Which kinds can be decoded: ``(apiVersion, kind)`` -> the kind's field table.

Role: the registry the envelope decoder consults; add a kind here after tabling its messages.
Keys are exact ``apiVersion`` strings because the same kind differs between versions
(autoscaling/v1 and autoscaling/v2 ``HorizontalPodAutoscaler``). Meta kinds that client-go
sends under whatever group the request targets (``DeleteOptions``) live in ``ANY_GROUP_KINDS``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.access import (
    SELF_SUBJECT_ACCESS_REVIEW,
    SELF_SUBJECT_REVIEW,
    SELF_SUBJECT_RULES_REVIEW,
    TOKEN_REQUEST,
    TOKEN_REVIEW,
)
from cluster.apiserver.protobuf.autoscaling import (
    HORIZONTAL_POD_AUTOSCALER_V1,
    HORIZONTAL_POD_AUTOSCALER_V2,
)
from cluster.apiserver.protobuf.certificates import CERTIFICATE_SIGNING_REQUEST
from cluster.apiserver.protobuf.core import (
    CONFIG_MAP,
    NAMESPACE,
    RESOURCE_QUOTA,
    SECRET,
    SERVICE,
    SERVICE_ACCOUNT,
)
from cluster.apiserver.protobuf.core_pod import POD
from cluster.apiserver.protobuf.meta import DELETE_OPTIONS
from cluster.apiserver.protobuf.networking import INGRESS
from cluster.apiserver.protobuf.policy import EVICTION, POD_DISRUPTION_BUDGET, PRIORITY_CLASS
from cluster.apiserver.protobuf.rbac import CLUSTER_ROLE, CLUSTER_ROLE_BINDING, ROLE, ROLE_BINDING
from cluster.apiserver.protobuf.schema import Schema
from cluster.apiserver.protobuf.workloads import CRON_JOB, DEPLOYMENT, JOB, SCALE

_RBAC = "rbac.authorization.k8s.io/v1"
_AUTHZ = "authorization.k8s.io/v1"

KINDS: dict[tuple[str, str], Schema] = {
    ("v1", "ConfigMap"): CONFIG_MAP,
    ("v1", "Secret"): SECRET,
    ("v1", "Namespace"): NAMESPACE,
    ("v1", "Service"): SERVICE,
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("v1", "ResourceQuota"): RESOURCE_QUOTA,
    ("v1", "Pod"): POD,
    ("apps/v1", "Deployment"): DEPLOYMENT,
    ("batch/v1", "Job"): JOB,
    ("batch/v1", "CronJob"): CRON_JOB,
    ("autoscaling/v1", "Scale"): SCALE,
    ("autoscaling/v1", "HorizontalPodAutoscaler"): HORIZONTAL_POD_AUTOSCALER_V1,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): HORIZONTAL_POD_AUTOSCALER_V2,
    (_RBAC, "Role"): ROLE,
    (_RBAC, "ClusterRole"): CLUSTER_ROLE,
    (_RBAC, "RoleBinding"): ROLE_BINDING,
    (_RBAC, "ClusterRoleBinding"): CLUSTER_ROLE_BINDING,
    ("networking.k8s.io/v1", "Ingress"): INGRESS,
    ("policy/v1", "PodDisruptionBudget"): POD_DISRUPTION_BUDGET,
    ("policy/v1", "Eviction"): EVICTION,
    ("scheduling.k8s.io/v1", "PriorityClass"): PRIORITY_CLASS,
    ("authentication.k8s.io/v1", "TokenRequest"): TOKEN_REQUEST,
    ("authentication.k8s.io/v1", "SelfSubjectReview"): SELF_SUBJECT_REVIEW,
    ("authentication.k8s.io/v1", "TokenReview"): TOKEN_REVIEW,
    ("certificates.k8s.io/v1", "CertificateSigningRequest"): CERTIFICATE_SIGNING_REQUEST,
    (_AUTHZ, "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
    (_AUTHZ, "SelfSubjectRulesReview"): SELF_SUBJECT_RULES_REVIEW,
}

ANY_GROUP_KINDS: dict[str, Schema] = {"DeleteOptions": DELETE_OPTIONS}


def schema_for(api_version: str, kind: str) -> Schema | None:
    """The field table for a kind, or None when it cannot be decoded."""
    return KINDS.get((api_version, kind)) or ANY_GROUP_KINDS.get(kind)
