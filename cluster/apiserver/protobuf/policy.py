"""Field tables for policy/v1 ``PodDisruptionBudget`` and ``Eviction``, and scheduling.k8s.io/v1
``PriorityClass``. Numbers from ``policy/v1`` and ``scheduling/v1`` ``generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.meta import (
    DELETE_OPTIONS,
    LABEL_SELECTOR,
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Schema,
    boolean,
    int_or_string,
    integer,
    message,
    string,
)

POD_DISRUPTION_BUDGET_SPEC: Schema = {
    1: int_or_string("minAvailable", keep=True),
    2: message("selector", LABEL_SELECTOR),
    3: int_or_string("maxUnavailable", keep=True),
    4: string("unhealthyPodEvictionPolicy", keep=True),
}

POD_DISRUPTION_BUDGET: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", POD_DISRUPTION_BUDGET_SPEC),
    3: message("status", UNDECODED),
}

EVICTION: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("deleteOptions", DELETE_OPTIONS),
}

PRIORITY_CLASS: Schema = {
    1: message("metadata", OBJECT_META),
    2: integer("value", keep=True),
    3: boolean("globalDefault"),
    4: string("description"),
    5: string("preemptionPolicy", keep=True),
}
