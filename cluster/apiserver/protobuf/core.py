"""Field tables for core/v1 objects kubectl creates: ``Service``, ``ServiceAccount``, ``ResourceQuota``,
``ConfigMap``, ``Secret``, ``Namespace``.

Numbers from ``k8s.io/api/core/v1/generated.proto``; ``status`` is not decoded (server-owned), except
Namespace's ``phase``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.core_volume import (
    LOCAL_OBJECT_REFERENCE,
)
from cluster.apiserver.protobuf.meta import (
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Kind,
    Schema,
    boolean,
    int_or_string,
    integer,
    map_of,
    message,
    string,
)

SERVICE_PORT: Schema = {
    1: string("name"),
    2: string("protocol"),
    6: string("appProtocol", keep=True),
    3: integer("port", keep=True),
    4: int_or_string("targetPort"),
    5: integer("nodePort"),
}

CLIENT_IP_CONFIG: Schema = {
    1: integer("timeoutSeconds", keep=True),
}

SESSION_AFFINITY_CONFIG: Schema = {
    1: message("clientIP", CLIENT_IP_CONFIG),
}

SERVICE_SPEC: Schema = {
    1: message("ports", SERVICE_PORT, repeated=True),
    2: map_of("selector", Kind.STRING),
    3: string("clusterIP"),
    18: string("clusterIPs", repeated=True),
    4: string("type"),
    5: string("externalIPs", repeated=True),
    7: string("sessionAffinity"),
    8: string("loadBalancerIP"),
    9: string("loadBalancerSourceRanges", repeated=True),
    10: string("externalName"),
    11: string("externalTrafficPolicy"),
    12: integer("healthCheckNodePort"),
    13: boolean("publishNotReadyAddresses"),
    14: message("sessionAffinityConfig", SESSION_AFFINITY_CONFIG),
    19: string("ipFamilies", repeated=True),
    17: string("ipFamilyPolicy", keep=True),
    20: boolean("allocateLoadBalancerNodePorts", keep=True),
    21: string("loadBalancerClass", keep=True),
    22: string("internalTrafficPolicy", keep=True),
    23: string("trafficDistribution", keep=True),
}

SERVICE: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", SERVICE_SPEC),
    3: message("status", UNDECODED),
}

OBJECT_REFERENCE: Schema = {
    1: string("kind"),
    2: string("namespace"),
    3: string("name"),
    4: string("uid"),
    5: string("apiVersion"),
    6: string("resourceVersion"),
    7: string("fieldPath"),
}

SERVICE_ACCOUNT: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("secrets", OBJECT_REFERENCE, repeated=True),
    3: message("imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
    4: boolean("automountServiceAccountToken", keep=True),
}

SCOPED_RESOURCE_SELECTOR_REQUIREMENT: Schema = {
    1: string("scopeName"),
    2: string("operator"),
    3: string("values", repeated=True),
}

SCOPE_SELECTOR: Schema = {
    1: message("matchExpressions", SCOPED_RESOURCE_SELECTOR_REQUIREMENT, repeated=True),
}

RESOURCE_QUOTA_SPEC: Schema = {
    1: map_of("hard", Kind.QUANTITY),
    2: string("scopes", repeated=True),
    3: message("scopeSelector", SCOPE_SELECTOR),
}

RESOURCE_QUOTA: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", RESOURCE_QUOTA_SPEC),
    3: message("status", UNDECODED),
}


CONFIG_MAP: Schema = {
    1: message("metadata", OBJECT_META),
    2: map_of("data", Kind.STRING),
    3: map_of("binaryData", Kind.BYTES),
    4: boolean("immutable", keep=True),
}

SECRET: Schema = {
    1: message("metadata", OBJECT_META),
    2: map_of("data", Kind.BYTES),
    3: string("type"),
    4: map_of("stringData", Kind.STRING),
    5: boolean("immutable", keep=True),
}

NAMESPACE: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", {1: string("finalizers", repeated=True)}),
    3: message("status", {1: string("phase")}),
}
