"""Decode Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) into JSON dicts.

Role: kubectl >= 1.32 sends protobuf from its typed clients: every ``kubectl create <kind>``
generator (deployment, job, cronjob, service, serviceaccount, role, clusterrole, rolebinding,
clusterrolebinding, quota, priorityclass, poddisruptionbudget, ingress, configmap, secret,
namespace), ``create token``, ``autoscale``, ``auth can-i`` and drain's fallback DELETE; it does not
retry as JSON after a 415 (see docs/kubectl-protobuf.md). This package turns those bodies into the
same wire-form dicts a JSON body would give, without generated code: a wire-format reader
(``wire``), a schema interpreter (``decode``) and per-group field tables transcribed from
Kubernetes' ``generated.proto`` files (``meta``, ``core*``, ``workloads``, ...), registered in ``kinds``.

Body layout: the magic ``6b 38 73 00`` ("k8s\\0"), then ``runtime.Unknown{1 typeMeta{1 apiVersion,
2 kind}, 2 raw, 3 contentEncoding, 4 contentType}``; ``raw`` is the object's own message.

Invariants: the result carries ``apiVersion`` and ``kind`` from the envelope, then the object's
fields (see ``decode`` for the zero-value rules). A kind without a field table or a non-identity
``contentEncoding`` raises ``UnsupportedProtobufKindError`` (the HTTP layer answers 415); anything
malformed raises ``ProtobufDecodeError`` (400).
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.protobuf.decode import decode_message
from cluster.apiserver.protobuf.kinds import schema_for
from cluster.apiserver.protobuf.meta import TYPE_META
from cluster.apiserver.protobuf.wire import (
    ProtobufDecodeError,
    UnsupportedProtobufKindError,
    iter_fields,
    text,
)

__all__ = [
    "ENVELOPE_MAGIC",
    "PROTOBUF_CONTENT_TYPE",
    "ProtobufDecodeError",
    "UnsupportedProtobufKindError",
    "decode_k8s_protobuf",
    "decode_message",
    "is_protobuf_content_type",
]

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
ENVELOPE_MAGIC = b"k8s\x00"


def is_protobuf_content_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names the Kubernetes protobuf encoding (parameters ignored)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == PROTOBUF_CONTENT_TYPE


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into the JSON-form object, with apiVersion and kind set.

    Pure and thread-safe. Raises ``UnsupportedProtobufKindError`` for kinds without a field table
    or a non-identity ``contentEncoding``, and ``ProtobufDecodeError`` for anything malformed.
    """
    if not body.startswith(ENVELOPE_MAGIC):
        raise ProtobufDecodeError("missing the Kubernetes protobuf envelope prefix 'k8s\\x00'")
    envelope = bytes(body[len(ENVELOPE_MAGIC) :])
    parts: dict[int, bytes] = {}
    for number, wire_type, value in iter_fields(envelope):
        if number > 4:
            continue
        if not isinstance(value, bytes):
            raise ProtobufDecodeError(f"envelope field {number}: wire type {wire_type}, expected 2")
        # typeMeta is a message (occurrences merge); the others are scalars (last one wins).
        parts[number] = parts.get(number, b"") + value if number == 1 else value
    type_meta = decode_message(parts.get(1, b""), TYPE_META, "typeMeta")
    api_version = type_meta.get("apiVersion", "")
    kind = type_meta.get("kind", "")
    if not kind:
        raise ProtobufDecodeError("envelope has no typeMeta.kind")
    content_encoding = text(parts.get(3, b""), "contentEncoding")
    if content_encoding:
        raise UnsupportedProtobufKindError(f"unsupported protobuf contentEncoding {content_encoding!r}")
    schema = schema_for(api_version, kind)
    if schema is None:
        raise UnsupportedProtobufKindError(
            f"decoding {kind} ({api_version or 'no apiVersion'}) from protobuf is not supported; "
            "send application/json"
        )
    obj: dict[str, Any] = {"apiVersion": api_version} if api_version else {}
    obj["kind"] = kind
    obj.update(decode_message(parts.get(2, b""), schema, kind))
    return obj
