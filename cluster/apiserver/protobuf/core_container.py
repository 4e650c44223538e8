"""Field tables for core/v1 containers: ``Container``, ``EphemeralContainer`` and their parts
(ports, env, resources, mounts, probes, lifecycle hooks, security context).

Role: part of the PodSpec surface. Numbers from ``k8s.io/api/core/v1/generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.core_volume import (
    LOCAL_OBJECT_REFERENCE,
    OBJECT_FIELD_SELECTOR,
    RESOURCE_FIELD_SELECTOR,
)
from cluster.apiserver.protobuf.schema import (
    Kind,
    Schema,
    boolean,
    int_or_string,
    integer,
    map_of,
    message,
    string,
)

CONTAINER_PORT: Schema = {
    1: string("name"),
    2: integer("hostPort"),
    3: integer("containerPort", keep=True),
    4: string("protocol"),
    5: string("hostIP"),
}

CONFIG_MAP_ENV_SOURCE: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: boolean("optional", keep=True),
}

SECRET_ENV_SOURCE: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: boolean("optional", keep=True),
}

ENV_FROM_SOURCE: Schema = {
    1: string("prefix"),
    2: message("configMapRef", CONFIG_MAP_ENV_SOURCE),
    3: message("secretRef", SECRET_ENV_SOURCE),
}

CONFIG_MAP_KEY_SELECTOR: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: string("key"),
    3: boolean("optional", keep=True),
}

SECRET_KEY_SELECTOR: Schema = {
    1: message("localObjectReference", LOCAL_OBJECT_REFERENCE, inline=True),
    2: string("key"),
    3: boolean("optional", keep=True),
}

ENV_VAR_SOURCE: Schema = {
    1: message("fieldRef", OBJECT_FIELD_SELECTOR),
    2: message("resourceFieldRef", RESOURCE_FIELD_SELECTOR),
    3: message("configMapKeyRef", CONFIG_MAP_KEY_SELECTOR),
    4: message("secretKeyRef", SECRET_KEY_SELECTOR),
}

ENV_VAR: Schema = {
    1: string("name"),
    2: string("value"),
    3: message("valueFrom", ENV_VAR_SOURCE),
}

RESOURCE_CLAIM: Schema = {
    1: string("name"),
    2: string("request"),
}

RESOURCE_REQUIREMENTS: Schema = {
    1: map_of("limits", Kind.QUANTITY),
    2: map_of("requests", Kind.QUANTITY),
    3: message("claims", RESOURCE_CLAIM, repeated=True),
}

CONTAINER_RESIZE_POLICY: Schema = {
    1: string("resourceName"),
    2: string("restartPolicy"),
}

VOLUME_MOUNT: Schema = {
    1: string("name"),
    2: boolean("readOnly"),
    7: string("recursiveReadOnly", keep=True),
    3: string("mountPath"),
    4: string("subPath"),
    5: string("mountPropagation", keep=True),
    6: string("subPathExpr"),
}

VOLUME_DEVICE: Schema = {
    1: string("name"),
    2: string("devicePath"),
}

EXEC_ACTION: Schema = {
    1: string("command", repeated=True),
}

HTTP_HEADER: Schema = {
    1: string("name"),
    2: string("value"),
}

HTTP_GET_ACTION: Schema = {
    1: string("path"),
    2: int_or_string("port"),
    3: string("host"),
    4: string("scheme"),
    5: message("httpHeaders", HTTP_HEADER, repeated=True),
}

TCP_SOCKET_ACTION: Schema = {
    1: int_or_string("port"),
    2: string("host"),
}

GRPC_ACTION: Schema = {
    1: integer("port", keep=True),
    2: string("service", keep=True),
}

PROBE_HANDLER: Schema = {
    1: message("exec", EXEC_ACTION),
    2: message("httpGet", HTTP_GET_ACTION),
    3: message("tcpSocket", TCP_SOCKET_ACTION),
    4: message("grpc", GRPC_ACTION),
}

PROBE: Schema = {
    1: message("handler", PROBE_HANDLER, inline=True),
    2: integer("initialDelaySeconds"),
    3: integer("timeoutSeconds"),
    4: integer("periodSeconds"),
    5: integer("successThreshold"),
    6: integer("failureThreshold"),
    7: integer("terminationGracePeriodSeconds", keep=True),
}

SLEEP_ACTION: Schema = {
    1: integer("seconds", keep=True),
}

LIFECYCLE_HANDLER: Schema = {
    1: message("exec", EXEC_ACTION),
    2: message("httpGet", HTTP_GET_ACTION),
    3: message("tcpSocket", TCP_SOCKET_ACTION),
    4: message("sleep", SLEEP_ACTION),
}

LIFECYCLE: Schema = {
    1: message("postStart", LIFECYCLE_HANDLER),
    2: message("preStop", LIFECYCLE_HANDLER),
    3: string("stopSignal", keep=True),
}

CAPABILITIES: Schema = {
    1: string("add", repeated=True),
    2: string("drop", repeated=True),
}

SE_LINUX_OPTIONS: Schema = {
    1: string("user"),
    2: string("role"),
    3: string("type"),
    4: string("level"),
}

WINDOWS_SECURITY_CONTEXT_OPTIONS: Schema = {
    1: string("gmsaCredentialSpecName", keep=True),
    2: string("gmsaCredentialSpec", keep=True),
    3: string("runAsUserName", keep=True),
    4: boolean("hostProcess", keep=True),
}

SECCOMP_PROFILE: Schema = {
    1: string("type"),
    2: string("localhostProfile", keep=True),
}

APP_ARMOR_PROFILE: Schema = {
    1: string("type"),
    2: string("localhostProfile", keep=True),
}

SECURITY_CONTEXT: Schema = {
    1: message("capabilities", CAPABILITIES),
    2: boolean("privileged", keep=True),
    3: message("seLinuxOptions", SE_LINUX_OPTIONS),
    10: message("windowsOptions", WINDOWS_SECURITY_CONTEXT_OPTIONS),
    4: integer("runAsUser", keep=True),
    8: integer("runAsGroup", keep=True),
    5: boolean("runAsNonRoot", keep=True),
    6: boolean("readOnlyRootFilesystem", keep=True),
    7: boolean("allowPrivilegeEscalation", keep=True),
    9: string("procMount", keep=True),
    11: message("seccompProfile", SECCOMP_PROFILE),
    12: message("appArmorProfile", APP_ARMOR_PROFILE),
}

EPHEMERAL_CONTAINER_COMMON: Schema = {
    1: string("name"),
    2: string("image"),
    3: string("command", repeated=True),
    4: string("args", repeated=True),
    5: string("workingDir"),
    6: message("ports", CONTAINER_PORT, repeated=True),
    19: message("envFrom", ENV_FROM_SOURCE, repeated=True),
    7: message("env", ENV_VAR, repeated=True),
    8: message("resources", RESOURCE_REQUIREMENTS),
    23: message("resizePolicy", CONTAINER_RESIZE_POLICY, repeated=True),
    24: string("restartPolicy", keep=True),
    9: message("volumeMounts", VOLUME_MOUNT, repeated=True),
    21: message("volumeDevices", VOLUME_DEVICE, repeated=True),
    10: message("livenessProbe", PROBE),
    11: message("readinessProbe", PROBE),
    22: message("startupProbe", PROBE),
    12: message("lifecycle", LIFECYCLE),
    13: string("terminationMessagePath"),
    20: string("terminationMessagePolicy"),
    14: string("imagePullPolicy"),
    15: message("securityContext", SECURITY_CONTEXT),
    16: boolean("stdin"),
    17: boolean("stdinOnce"),
    18: boolean("tty"),
}

EPHEMERAL_CONTAINER: Schema = {
    1: message("ephemeralContainerCommon", EPHEMERAL_CONTAINER_COMMON, inline=True),
    2: string("targetContainerName"),
}

# Container and EphemeralContainerCommon share every field number (Kubernetes keeps them in step).
CONTAINER: Schema = EPHEMERAL_CONTAINER_COMMON
