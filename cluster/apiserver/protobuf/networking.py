"""Field tables for networking.k8s.io/v1 ``Ingress``. Numbers from ``networking/v1/generated.proto``;
``IngressRule.ingressRuleValue`` is an embedded struct, so ``http`` lands directly in the rule.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.meta import (
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Schema,
    integer,
    message,
    string,
)

SERVICE_BACKEND_PORT: Schema = {
    1: string("name"),
    2: integer("number"),
}

INGRESS_SERVICE_BACKEND: Schema = {
    1: string("name"),
    2: message("port", SERVICE_BACKEND_PORT),
}

TYPED_LOCAL_OBJECT_REFERENCE: Schema = {
    1: string("apiGroup", keep=True),
    2: string("kind"),
    3: string("name"),
}

INGRESS_BACKEND: Schema = {
    4: message("service", INGRESS_SERVICE_BACKEND),
    3: message("resource", TYPED_LOCAL_OBJECT_REFERENCE),
}

INGRESS_TLS: Schema = {
    1: string("hosts", repeated=True),
    2: string("secretName"),
}

HTTP_INGRESS_PATH: Schema = {
    1: string("path"),
    3: string("pathType", keep=True),
    2: message("backend", INGRESS_BACKEND),
}

HTTP_INGRESS_RULE_VALUE: Schema = {
    1: message("paths", HTTP_INGRESS_PATH, repeated=True),
}

INGRESS_RULE_VALUE: Schema = {
    1: message("http", HTTP_INGRESS_RULE_VALUE),
}

INGRESS_RULE: Schema = {
    1: string("host"),
    2: message("ingressRuleValue", INGRESS_RULE_VALUE, inline=True),
}

INGRESS_SPEC: Schema = {
    4: string("ingressClassName", keep=True),
    1: message("defaultBackend", INGRESS_BACKEND),
    2: message("tls", INGRESS_TLS, repeated=True),
    3: message("rules", INGRESS_RULE, repeated=True),
}

INGRESS: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", INGRESS_SPEC),
    3: message("status", UNDECODED),
}
