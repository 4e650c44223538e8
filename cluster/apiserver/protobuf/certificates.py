"""Field table for certificates.k8s.io/v1 ``CertificateSigningRequest``: kubectl's typed client
sends it as protobuf for ``kubectl certificate approve|deny`` (the approval subresource).

Numbers from ``certificates/v1`` ``generated.proto``. ``spec.extra`` (a map of string lists) is
not decoded: the server records the requester itself and keeps the spec on every update.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.meta import OBJECT_META
from cluster.apiserver.protobuf.schema import Schema, integer, message, raw_bytes, string, time

CONDITION: Schema = {
    1: string("type"),
    6: string("status"),
    2: string("reason"),
    3: string("message"),
    4: time("lastUpdateTime"),
    5: time("lastTransitionTime"),
}

CERTIFICATE_SIGNING_REQUEST: Schema = {
    1: message("metadata", OBJECT_META),
    2: message(
        "spec",
        {
            1: raw_bytes("request"),
            7: string("signerName"),
            8: integer("expirationSeconds"),
            5: string("usages", repeated=True),
            2: string("username"),
            3: string("uid"),
            4: string("groups", repeated=True),
        },
    ),
    3: message("status", {1: message("conditions", CONDITION, repeated=True), 2: raw_bytes("certificate")}),
}
