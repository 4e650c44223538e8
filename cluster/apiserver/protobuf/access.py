"""Field tables for access reviews and tokens: authentication.k8s.io/v1 ``TokenRequest`` (``kubectl
create token``, the ``serviceaccounts/token`` subresource) and authorization.k8s.io/v1
``SelfSubjectAccessReview``/``SelfSubjectRulesReview`` (``kubectl auth can-i``), and
authentication.k8s.io/v1 ``SelfSubjectReview`` (``kubectl auth whoami``) and ``TokenReview``.

Numbers from ``authentication/v1`` and ``authorization/v1`` ``generated.proto``.
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

BOUND_OBJECT_REFERENCE: Schema = {
    1: string("kind"),
    2: string("apiVersion"),
    3: string("name"),
    4: string("uid"),
}

TOKEN_REQUEST_SPEC: Schema = {
    1: string("audiences", repeated=True),
    4: integer("expirationSeconds", keep=True),
    3: message("boundObjectRef", BOUND_OBJECT_REFERENCE),
}

TOKEN_REQUEST: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", TOKEN_REQUEST_SPEC),
    3: message("status", UNDECODED),
}


SELECTOR_REQUIREMENT: Schema = {
    1: string("key"),
    2: string("operator"),
    3: string("values", repeated=True),
}

FIELD_OR_LABEL_SELECTOR_ATTRIBUTES: Schema = {
    1: string("rawSelector"),
    2: message("requirements", SELECTOR_REQUIREMENT, repeated=True),
}

RESOURCE_ATTRIBUTES: Schema = {
    1: string("namespace"),
    2: string("verb"),
    3: string("group"),
    4: string("version"),
    5: string("resource"),
    6: string("subresource"),
    7: string("name"),
    8: message("fieldSelector", FIELD_OR_LABEL_SELECTOR_ATTRIBUTES),
    9: message("labelSelector", FIELD_OR_LABEL_SELECTOR_ATTRIBUTES),
}

NON_RESOURCE_ATTRIBUTES: Schema = {1: string("path"), 2: string("verb")}

SELF_SUBJECT_ACCESS_REVIEW: Schema = {
    1: message("metadata", OBJECT_META),
    2: message(
        "spec",
        {
            1: message("resourceAttributes", RESOURCE_ATTRIBUTES),
            2: message("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES),
        },
    ),
    # Status on a create is ignored by the server, so it is not decoded (nor echoed).
}

SELF_SUBJECT_RULES_REVIEW: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", {1: string("namespace")}),
}

# authentication.k8s.io/v1: kubectl auth whoami sends an empty SelfSubjectReview; TokenReview's spec.
SELF_SUBJECT_REVIEW: Schema = {
    1: message("metadata", OBJECT_META),
}

TOKEN_REVIEW: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", {1: string("token"), 2: string("audiences", repeated=True)}),
}
