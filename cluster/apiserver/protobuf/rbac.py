"""Field tables for rbac.authorization.k8s.io/v1: ``Role``, ``ClusterRole``, ``RoleBinding``,
``ClusterRoleBinding``. Numbers from ``rbac/v1/generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.meta import (
    LABEL_SELECTOR,
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    Schema,
    message,
    string,
)

POLICY_RULE: Schema = {
    1: string("verbs", repeated=True),
    2: string("apiGroups", repeated=True),
    3: string("resources", repeated=True),
    4: string("resourceNames", repeated=True),
    5: string("nonResourceURLs", repeated=True),
}

ROLE: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("rules", POLICY_RULE, repeated=True),
}

AGGREGATION_RULE: Schema = {
    1: message("clusterRoleSelectors", LABEL_SELECTOR, repeated=True),
}

CLUSTER_ROLE: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("rules", POLICY_RULE, repeated=True),
    3: message("aggregationRule", AGGREGATION_RULE),
}

SUBJECT: Schema = {
    1: string("kind"),
    2: string("apiGroup"),
    3: string("name"),
    4: string("namespace"),
}

ROLE_REF: Schema = {
    1: string("apiGroup"),
    2: string("kind"),
    3: string("name"),
}

ROLE_BINDING: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("subjects", SUBJECT, repeated=True),
    3: message("roleRef", ROLE_REF),
}

CLUSTER_ROLE_BINDING: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("subjects", SUBJECT, repeated=True),
    3: message("roleRef", ROLE_REF),
}
