"""Field tables for ``HorizontalPodAutoscaler`` in autoscaling/v1 and autoscaling/v2 (``kubectl
autoscale`` posts v2 on 1.33 and falls back to v1; 1.32 posts v1).

Numbers from ``autoscaling/v1`` and ``autoscaling/v2`` ``generated.proto``; the two versions' messages
share Go names, so the tables carry a ``_V1``/``_V2`` suffix.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.meta import (
    LABEL_SELECTOR,
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Schema,
    integer,
    message,
    quantity,
    string,
)

CROSS_VERSION_OBJECT_REFERENCE_V1: Schema = {
    1: string("kind"),
    2: string("name"),
    3: string("apiVersion"),
}

HORIZONTAL_POD_AUTOSCALER_SPEC_V1: Schema = {
    1: message("scaleTargetRef", CROSS_VERSION_OBJECT_REFERENCE_V1),
    2: integer("minReplicas", keep=True),
    3: integer("maxReplicas", keep=True),
    4: integer("targetCPUUtilizationPercentage", keep=True),
}

HORIZONTAL_POD_AUTOSCALER_V1: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", HORIZONTAL_POD_AUTOSCALER_SPEC_V1),
    3: message("status", UNDECODED),
}

CROSS_VERSION_OBJECT_REFERENCE_V2: Schema = {
    1: string("kind"),
    2: string("name"),
    3: string("apiVersion"),
}

METRIC_TARGET_V2: Schema = {
    1: string("type"),
    2: quantity("value", keep=True),
    3: quantity("averageValue", keep=True),
    4: integer("averageUtilization", keep=True),
}

METRIC_IDENTIFIER_V2: Schema = {
    1: string("name"),
    2: message("selector", LABEL_SELECTOR),
}

OBJECT_METRIC_SOURCE_V2: Schema = {
    1: message("describedObject", CROSS_VERSION_OBJECT_REFERENCE_V2),
    2: message("target", METRIC_TARGET_V2),
    3: message("metric", METRIC_IDENTIFIER_V2),
}

PODS_METRIC_SOURCE_V2: Schema = {
    1: message("metric", METRIC_IDENTIFIER_V2),
    2: message("target", METRIC_TARGET_V2),
}

RESOURCE_METRIC_SOURCE_V2: Schema = {
    1: string("name"),
    2: message("target", METRIC_TARGET_V2),
}

CONTAINER_RESOURCE_METRIC_SOURCE_V2: Schema = {
    1: string("name"),
    2: message("target", METRIC_TARGET_V2),
    3: string("container"),
}

EXTERNAL_METRIC_SOURCE_V2: Schema = {
    1: message("metric", METRIC_IDENTIFIER_V2),
    2: message("target", METRIC_TARGET_V2),
}

METRIC_SPEC_V2: Schema = {
    1: string("type"),
    2: message("object", OBJECT_METRIC_SOURCE_V2),
    3: message("pods", PODS_METRIC_SOURCE_V2),
    4: message("resource", RESOURCE_METRIC_SOURCE_V2),
    7: message("containerResource", CONTAINER_RESOURCE_METRIC_SOURCE_V2),
    5: message("external", EXTERNAL_METRIC_SOURCE_V2),
}

HPA_SCALING_POLICY_V2: Schema = {
    1: string("type"),
    2: integer("value", keep=True),
    3: integer("periodSeconds", keep=True),
}

HPA_SCALING_RULES_V2: Schema = {
    3: integer("stabilizationWindowSeconds", keep=True),
    1: string("selectPolicy", keep=True),
    2: message("policies", HPA_SCALING_POLICY_V2, repeated=True),
    4: quantity("tolerance", keep=True),
}

HORIZONTAL_POD_AUTOSCALER_BEHAVIOR_V2: Schema = {
    1: message("scaleUp", HPA_SCALING_RULES_V2),
    2: message("scaleDown", HPA_SCALING_RULES_V2),
}

HORIZONTAL_POD_AUTOSCALER_SPEC_V2: Schema = {
    1: message("scaleTargetRef", CROSS_VERSION_OBJECT_REFERENCE_V2),
    2: integer("minReplicas", keep=True),
    3: integer("maxReplicas", keep=True),
    4: message("metrics", METRIC_SPEC_V2, repeated=True),
    5: message("behavior", HORIZONTAL_POD_AUTOSCALER_BEHAVIOR_V2),
}

HORIZONTAL_POD_AUTOSCALER_V2: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", HORIZONTAL_POD_AUTOSCALER_SPEC_V2),
    3: message("status", UNDECODED),
}
