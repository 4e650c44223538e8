"""Field tables for ``k8s.io/apimachinery/pkg/apis/meta/v1``: ObjectMeta, LabelSelector, DeleteOptions.

Role: the message types every group shares. Numbers from apimachinery's ``generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.schema import (
    Field,
    Kind,
    Schema,
    boolean,
    integer,
    map_of,
    message,
    string,
    time,
)

OWNER_REFERENCE: Schema = {
    # kind/name/uid/apiVersion have no omitempty in JSON, but a valid reference sets them all.
    1: string("kind"),
    3: string("name"),
    4: string("uid"),
    5: string("apiVersion"),
    6: boolean("controller", keep=True),
    7: boolean("blockOwnerDeletion", keep=True),
}

MANAGED_FIELDS_ENTRY: Schema = {
    1: string("manager"),
    2: string("operation"),
    3: string("apiVersion"),
    4: time("time"),
    6: string("fieldsType"),
    7: Field("fieldsV1", Kind.FIELDS_V1, keep=True),
    8: string("subresource"),
}

OBJECT_META: Schema = {
    1: string("name"),
    2: string("generateName"),
    3: string("namespace"),
    4: string("selfLink"),
    5: string("uid"),
    6: string("resourceVersion"),
    7: integer("generation"),
    8: time("creationTimestamp"),
    9: time("deletionTimestamp"),
    10: integer("deletionGracePeriodSeconds", keep=True),
    11: map_of("labels", Kind.STRING),
    12: map_of("annotations", Kind.STRING),
    13: message("ownerReferences", OWNER_REFERENCE, repeated=True),
    14: string("finalizers", repeated=True),
    17: message("managedFields", MANAGED_FIELDS_ENTRY, repeated=True),
}

LABEL_SELECTOR_REQUIREMENT: Schema = {
    1: string("key"),
    2: string("operator"),
    3: string("values", repeated=True),
}

LABEL_SELECTOR: Schema = {
    1: map_of("matchLabels", Kind.STRING),
    2: message("matchExpressions", LABEL_SELECTOR_REQUIREMENT, repeated=True),
}

PRECONDITIONS: Schema = {
    1: string("uid", keep=True),
    2: string("resourceVersion", keep=True),
}

DELETE_OPTIONS: Schema = {
    1: integer("gracePeriodSeconds", keep=True),
    2: message("preconditions", PRECONDITIONS),
    3: boolean("orphanDependents", keep=True),
    # The Go tag says varint, but the field is a string type and is written length-delimited.
    4: string("propagationPolicy", keep=True),
    5: string("dryRun", repeated=True),
    6: boolean("ignoreStoreReadErrorWithClusterBreakingPotential", keep=True),
}

TYPE_META: Schema = {1: string("apiVersion"), 2: string("kind")}
