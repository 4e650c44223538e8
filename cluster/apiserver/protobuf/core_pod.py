"""Field tables for core/v1 ``PodSpec``, ``PodTemplateSpec`` and ``Pod``: scheduling (affinity,
tolerations, topology spread), pod security context, DNS and the rest of the pod-level fields.

Role: the template every workload kind embeds. Numbers from ``k8s.io/api/core/v1/generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.core_container import (
    APP_ARMOR_PROFILE,
    CONTAINER,
    EPHEMERAL_CONTAINER,
    RESOURCE_REQUIREMENTS,
    SE_LINUX_OPTIONS,
    SECCOMP_PROFILE,
    WINDOWS_SECURITY_CONTEXT_OPTIONS,
)
from cluster.apiserver.protobuf.core_volume import (
    LOCAL_OBJECT_REFERENCE,
    VOLUME,
)
from cluster.apiserver.protobuf.meta import (
    LABEL_SELECTOR,
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Kind,
    Schema,
    boolean,
    integer,
    map_of,
    message,
    string,
)

SYSCTL: Schema = {
    1: string("name"),
    2: string("value"),
}

POD_SECURITY_CONTEXT: Schema = {
    1: message("seLinuxOptions", SE_LINUX_OPTIONS),
    8: message("windowsOptions", WINDOWS_SECURITY_CONTEXT_OPTIONS),
    2: integer("runAsUser", keep=True),
    6: integer("runAsGroup", keep=True),
    3: boolean("runAsNonRoot", keep=True),
    4: integer("supplementalGroups", repeated=True),
    12: string("supplementalGroupsPolicy", keep=True),
    5: integer("fsGroup", keep=True),
    7: message("sysctls", SYSCTL, repeated=True),
    9: string("fsGroupChangePolicy", keep=True),
    10: message("seccompProfile", SECCOMP_PROFILE),
    11: message("appArmorProfile", APP_ARMOR_PROFILE),
    13: string("seLinuxChangePolicy", keep=True),
}

NODE_SELECTOR_REQUIREMENT: Schema = {
    1: string("key"),
    2: string("operator"),
    3: string("values", repeated=True),
}

NODE_SELECTOR_TERM: Schema = {
    1: message("matchExpressions", NODE_SELECTOR_REQUIREMENT, repeated=True),
    2: message("matchFields", NODE_SELECTOR_REQUIREMENT, repeated=True),
}

NODE_SELECTOR: Schema = {
    1: message("nodeSelectorTerms", NODE_SELECTOR_TERM, repeated=True),
}

PREFERRED_SCHEDULING_TERM: Schema = {
    1: integer("weight", keep=True),
    2: message("preference", NODE_SELECTOR_TERM),
}

NODE_AFFINITY: Schema = {
    1: message("requiredDuringSchedulingIgnoredDuringExecution", NODE_SELECTOR),
    2: message("preferredDuringSchedulingIgnoredDuringExecution", PREFERRED_SCHEDULING_TERM, repeated=True),
}

POD_AFFINITY_TERM: Schema = {
    1: message("labelSelector", LABEL_SELECTOR),
    2: string("namespaces", repeated=True),
    3: string("topologyKey"),
    4: message("namespaceSelector", LABEL_SELECTOR),
    5: string("matchLabelKeys", repeated=True),
    6: string("mismatchLabelKeys", repeated=True),
}

WEIGHTED_POD_AFFINITY_TERM: Schema = {
    1: integer("weight", keep=True),
    2: message("podAffinityTerm", POD_AFFINITY_TERM),
}

POD_AFFINITY: Schema = {
    1: message("requiredDuringSchedulingIgnoredDuringExecution", POD_AFFINITY_TERM, repeated=True),
    2: message("preferredDuringSchedulingIgnoredDuringExecution", WEIGHTED_POD_AFFINITY_TERM, repeated=True),
}

POD_ANTI_AFFINITY: Schema = {
    1: message("requiredDuringSchedulingIgnoredDuringExecution", POD_AFFINITY_TERM, repeated=True),
    2: message("preferredDuringSchedulingIgnoredDuringExecution", WEIGHTED_POD_AFFINITY_TERM, repeated=True),
}

AFFINITY: Schema = {
    1: message("nodeAffinity", NODE_AFFINITY),
    2: message("podAffinity", POD_AFFINITY),
    3: message("podAntiAffinity", POD_ANTI_AFFINITY),
}

TOLERATION: Schema = {
    1: string("key"),
    2: string("operator"),
    3: string("value"),
    4: string("effect"),
    5: integer("tolerationSeconds", keep=True),
}

HOST_ALIAS: Schema = {
    1: string("ip"),
    2: string("hostnames", repeated=True),
}

POD_DNS_CONFIG_OPTION: Schema = {
    1: string("name"),
    2: string("value", keep=True),
}

POD_DNS_CONFIG: Schema = {
    1: string("nameservers", repeated=True),
    2: string("searches", repeated=True),
    3: message("options", POD_DNS_CONFIG_OPTION, repeated=True),
}

POD_READINESS_GATE: Schema = {
    1: string("conditionType"),
}

TOPOLOGY_SPREAD_CONSTRAINT: Schema = {
    1: integer("maxSkew", keep=True),
    2: string("topologyKey"),
    3: string("whenUnsatisfiable"),
    4: message("labelSelector", LABEL_SELECTOR),
    5: integer("minDomains", keep=True),
    6: string("nodeAffinityPolicy", keep=True),
    7: string("nodeTaintsPolicy", keep=True),
    8: string("matchLabelKeys", repeated=True),
}

POD_OS: Schema = {
    1: string("name"),
}

POD_SCHEDULING_GATE: Schema = {
    1: string("name"),
}

POD_RESOURCE_CLAIM: Schema = {
    1: string("name"),
    3: string("resourceClaimName", keep=True),
    4: string("resourceClaimTemplateName", keep=True),
}

POD_SPEC: Schema = {
    1: message("volumes", VOLUME, repeated=True),
    20: message("initContainers", CONTAINER, repeated=True),
    2: message("containers", CONTAINER, repeated=True),
    34: message("ephemeralContainers", EPHEMERAL_CONTAINER, repeated=True),
    3: string("restartPolicy"),
    4: integer("terminationGracePeriodSeconds", keep=True),
    5: integer("activeDeadlineSeconds", keep=True),
    6: string("dnsPolicy"),
    7: map_of("nodeSelector", Kind.STRING),
    8: string("serviceAccountName"),
    9: string("serviceAccount"),
    21: boolean("automountServiceAccountToken", keep=True),
    10: string("nodeName"),
    11: boolean("hostNetwork"),
    12: boolean("hostPID"),
    13: boolean("hostIPC"),
    27: boolean("shareProcessNamespace", keep=True),
    14: message("securityContext", POD_SECURITY_CONTEXT),
    15: message("imagePullSecrets", LOCAL_OBJECT_REFERENCE, repeated=True),
    16: string("hostname"),
    17: string("subdomain"),
    18: message("affinity", AFFINITY),
    19: string("schedulerName"),
    22: message("tolerations", TOLERATION, repeated=True),
    23: message("hostAliases", HOST_ALIAS, repeated=True),
    24: string("priorityClassName"),
    25: integer("priority", keep=True),
    26: message("dnsConfig", POD_DNS_CONFIG),
    28: message("readinessGates", POD_READINESS_GATE, repeated=True),
    29: string("runtimeClassName", keep=True),
    30: boolean("enableServiceLinks", keep=True),
    31: string("preemptionPolicy", keep=True),
    32: map_of("overhead", Kind.QUANTITY),
    33: message("topologySpreadConstraints", TOPOLOGY_SPREAD_CONSTRAINT, repeated=True),
    35: boolean("setHostnameAsFQDN", keep=True),
    36: message("os", POD_OS),
    37: boolean("hostUsers", keep=True),
    38: message("schedulingGates", POD_SCHEDULING_GATE, repeated=True),
    39: message("resourceClaims", POD_RESOURCE_CLAIM, repeated=True),
    40: message("resources", RESOURCE_REQUIREMENTS),
}

POD_TEMPLATE_SPEC: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", POD_SPEC),
}

POD: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", POD_SPEC),
    3: message("status", UNDECODED),
}
