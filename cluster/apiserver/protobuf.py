"""Decode Kubernetes protobuf request bodies (``application/vnd.kubernetes.protobuf``) into JSON dicts.

Role: kubectl >= 1.32 sends protobuf for ``create namespace|configmap|secret``, ``auth can-i`` and
DeleteOptions, and does not retry as JSON after a 415. This module turns those bodies into the same
wire-form dicts a JSON body would give, without generated protos: a small wire-format reader plus
per-kind field tables taken from Kubernetes' ``generated.proto`` files.

Body layout: the magic ``6b 38 73 00`` ("k8s\\0"), then ``runtime.Unknown{1 typeMeta{1 apiVersion,
2 kind}, 2 raw, 3 contentEncoding, 4 contentType}``; ``raw`` is the object's own message.

Invariants:
- The result matches what the JSON encoding of the same Go object would carry, minus Go's nulls:
  Kubernetes' marshaller writes every non-pointer field even when empty, so zero values of fields
  whose JSON tag is ``omitempty`` are dropped; pointer fields (``gracePeriodSeconds: 0``,
  ``immutable: false``) are kept because they are only written when set. Non-pointer structs
  (``spec``, ``status``) are kept, as ``{}`` when empty, as Go's JSON encoder does.
- ``map<string, bytes>`` values and ``bytes`` fields become base64 strings (Secret.data,
  ConfigMap.binaryData); zero ``metav1.Time`` values are dropped, others become RFC 3339 strings.
- Unknown field numbers are skipped, as protobuf readers do; a known field with the wrong wire type,
  truncated input or invalid UTF-8 raises ``ProtobufDecodeError``; a kind without a field table raises
  ``UnsupportedProtobufKindError`` (the HTTP layer answers 415 for that, 400 for the rest).
- Repeated occurrences of a singular message field are merged (their bytes concatenated and decoded
  once), as the protobuf specification requires; a repeated scalar keeps the last value.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

PROTOBUF_CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
ENVELOPE_MAGIC = b"k8s\x00"

_VARINT, _FIXED64, _LEN, _START_GROUP, _END_GROUP, _FIXED32 = 0, 1, 2, 3, 4, 5


class ProtobufDecodeError(ValueError):
    """The body is not a well-formed Kubernetes protobuf message (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedProtobufKindError(ProtobufDecodeError):
    """The body is well-formed but its kind or encoding is not one we can decode (HTTP 415)."""


def is_protobuf_content_type(content_type: str | None) -> bool:
    """Whether a Content-Type header names the Kubernetes protobuf encoding (parameters ignored)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == PROTOBUF_CONTENT_TYPE


# ---------------------------------------------------------------------------------------------
# Wire format


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufDecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufDecodeError("varint longer than 10 bytes")


def iter_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield ``(field_number, wire_type, value)``: an int for varint/fixed, bytes for length-delimited."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufDecodeError("field number 0 is invalid")
        value: int | bytes
        if wire_type == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire_type == _LEN:
            length, pos = _read_varint(buf, pos)
            if pos + length > end:
                raise ProtobufDecodeError(f"field {number}: length {length} runs past the end")
            value = buf[pos : pos + length]
            pos += length
        elif wire_type in (_FIXED64, _FIXED32):
            size = 8 if wire_type == _FIXED64 else 4
            if pos + size > end:
                raise ProtobufDecodeError(f"field {number}: truncated fixed-width value")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise ProtobufDecodeError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


def _signed64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


# ---------------------------------------------------------------------------------------------
# Field tables


class Kind(Enum):
    STRING = "string"
    BYTES = "bytes"  # base64 in JSON
    BOOL = "bool"
    INT = "int"  # int32/int64, two's complement varint
    MESSAGE = "message"
    MAP_STRING = "map<string,string>"
    MAP_BYTES = "map<string,bytes>"
    TIME = "metav1.Time"
    FIELDS_V1 = "metav1.FieldsV1"  # a message whose field 1 holds raw JSON


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    repeated: bool = False
    # Pointer fields are written only when set, so their zero values are meaningful and kept.
    pointer: bool = False
    message: dict[int, Field] = field(default_factory=dict)


def _s(name: str) -> Field:
    return Field(name, Kind.STRING)


def _msg(name: str, schema: dict[int, Field], *, repeated: bool = False, pointer: bool = False) -> Field:
    return Field(name, Kind.MESSAGE, repeated=repeated, pointer=pointer, message=schema)


_WIRE_TYPES = {
    Kind.STRING: _LEN,
    Kind.BYTES: _LEN,
    Kind.MESSAGE: _LEN,
    Kind.MAP_STRING: _LEN,
    Kind.MAP_BYTES: _LEN,
    Kind.TIME: _LEN,
    Kind.FIELDS_V1: _LEN,
    Kind.BOOL: _VARINT,
    Kind.INT: _VARINT,
}

OWNER_REFERENCE: dict[int, Field] = {
    # kind/name/uid/apiVersion have no omitempty in JSON, but a valid reference sets them all.
    1: _s("kind"),
    3: _s("name"),
    4: _s("uid"),
    5: _s("apiVersion"),
    6: Field("controller", Kind.BOOL, pointer=True),
    7: Field("blockOwnerDeletion", Kind.BOOL, pointer=True),
}

MANAGED_FIELDS_ENTRY: dict[int, Field] = {
    1: _s("manager"),
    2: _s("operation"),
    3: _s("apiVersion"),
    4: Field("time", Kind.TIME, pointer=True),
    6: _s("fieldsType"),
    7: Field("fieldsV1", Kind.FIELDS_V1, pointer=True),
    8: _s("subresource"),
}

OBJECT_META: dict[int, Field] = {
    1: _s("name"),
    2: _s("generateName"),
    3: _s("namespace"),
    4: _s("selfLink"),
    5: _s("uid"),
    6: _s("resourceVersion"),
    7: Field("generation", Kind.INT),
    8: Field("creationTimestamp", Kind.TIME),
    9: Field("deletionTimestamp", Kind.TIME, pointer=True),
    10: Field("deletionGracePeriodSeconds", Kind.INT, pointer=True),
    11: Field("labels", Kind.MAP_STRING),
    12: Field("annotations", Kind.MAP_STRING),
    13: _msg("ownerReferences", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", Kind.STRING, repeated=True),
    17: _msg("managedFields", MANAGED_FIELDS_ENTRY, repeated=True),
}

_METADATA = _msg("metadata", OBJECT_META)

CONFIG_MAP: dict[int, Field] = {
    1: _METADATA,
    2: Field("data", Kind.MAP_STRING),
    3: Field("binaryData", Kind.MAP_BYTES),
    4: Field("immutable", Kind.BOOL, pointer=True),
}

SECRET: dict[int, Field] = {
    1: _METADATA,
    2: Field("data", Kind.MAP_BYTES),
    3: _s("type"),
    4: Field("stringData", Kind.MAP_STRING),
    5: Field("immutable", Kind.BOOL, pointer=True),
}

NAMESPACE: dict[int, Field] = {
    1: _METADATA,
    2: _msg("spec", {1: Field("finalizers", Kind.STRING, repeated=True)}),
    3: _msg("status", {1: _s("phase")}),
}

_SELECTOR_REQUIREMENT: dict[int, Field] = {
    1: _s("key"),
    2: _s("operator"),
    3: Field("values", Kind.STRING, repeated=True),
}

_SELECTOR_ATTRIBUTES: dict[int, Field] = {
    1: _s("rawSelector"),
    2: _msg("requirements", _SELECTOR_REQUIREMENT, repeated=True),
}

RESOURCE_ATTRIBUTES: dict[int, Field] = {
    1: _s("namespace"),
    2: _s("verb"),
    3: _s("group"),
    4: _s("version"),
    5: _s("resource"),
    6: _s("subresource"),
    7: _s("name"),
    8: _msg("fieldSelector", _SELECTOR_ATTRIBUTES, pointer=True),
    9: _msg("labelSelector", _SELECTOR_ATTRIBUTES, pointer=True),
}

SELF_SUBJECT_ACCESS_REVIEW: dict[int, Field] = {
    1: _METADATA,
    2: _msg(
        "spec",
        {
            1: _msg("resourceAttributes", RESOURCE_ATTRIBUTES, pointer=True),
            2: _msg("nonResourceAttributes", {1: _s("path"), 2: _s("verb")}, pointer=True),
        },
    ),
    # Status on a create is ignored by the server, so it is not decoded.
}

SELF_SUBJECT_RULES_REVIEW: dict[int, Field] = {
    1: _METADATA,
    2: _msg("spec", {1: _s("namespace")}),
}

DELETE_OPTIONS: dict[int, Field] = {
    1: Field("gracePeriodSeconds", Kind.INT, pointer=True),
    2: _msg(
        "preconditions",
        {1: Field("uid", Kind.STRING, pointer=True), 2: Field("resourceVersion", Kind.STRING, pointer=True)},
        pointer=True,
    ),
    3: Field("orphanDependents", Kind.BOOL, pointer=True),
    # The Go tag says varint, but the field is a string type and is written length-delimited.
    4: Field("propagationPolicy", Kind.STRING, pointer=True),
    5: Field("dryRun", Kind.STRING, repeated=True),
    6: Field("ignoreStoreReadErrorWithClusterBreakingPotential", Kind.BOOL, pointer=True),
}

# (API group, kind) -> field table. Meta kinds such as DeleteOptions are registered in every group.
KINDS: dict[tuple[str, str], dict[int, Field]] = {
    ("", "ConfigMap"): CONFIG_MAP,
    ("", "Secret"): SECRET,
    ("", "Namespace"): NAMESPACE,
    ("authorization.k8s.io", "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
    ("authorization.k8s.io", "SelfSubjectRulesReview"): SELF_SUBJECT_RULES_REVIEW,
}
ANY_GROUP_KINDS: dict[str, dict[int, Field]] = {"DeleteOptions": DELETE_OPTIONS}

_TYPE_META: dict[int, Field] = {1: _s("apiVersion"), 2: _s("kind")}


# ---------------------------------------------------------------------------------------------
# Decoding


def _text(value: bytes, where: str) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufDecodeError(f"{where}: invalid UTF-8") from exc


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _map_entry(value: bytes, where: str, *, bytes_values: bool) -> tuple[str, str]:
    key = b""
    item = b""
    for number, wire_type, raw in iter_fields(value):
        if wire_type != _LEN or not isinstance(raw, bytes):
            raise ProtobufDecodeError(f"{where}: map entry field {number} has wire type {wire_type}")
        if number == 1:
            key = raw
        elif number == 2:
            item = raw
    return _text(key, where), _b64(item) if bytes_values else _text(item, where)


def _time(value: bytes, where: str) -> str | None:
    seconds = 0
    nanos = 0
    for number, wire_type, raw in iter_fields(value):
        if wire_type != _VARINT or not isinstance(raw, int):
            raise ProtobufDecodeError(f"{where}: time field {number} has wire type {wire_type}")
        if number == 1:
            seconds = _signed64(raw)
        elif number == 2:
            nanos = _signed64(raw)
    if seconds == 0 and nanos == 0:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufDecodeError(f"{where}: time out of range") from exc
    # metav1.Time serializes at second precision in RFC 3339.
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _fields_v1(value: bytes, where: str) -> Any:
    document = b""
    for number, _wire_type, raw in iter_fields(value):
        if number == 1 and isinstance(raw, bytes):
            document = raw
    try:
        return json.loads(document) if document else {}
    except ValueError as exc:
        raise ProtobufDecodeError(f"{where}: raw bytes are not JSON") from exc


def _scalar(spec: Field, raw: int | bytes, where: str) -> Any:
    if spec.kind is Kind.STRING:
        assert isinstance(raw, bytes)
        return _text(raw, where)
    if spec.kind is Kind.BYTES:
        assert isinstance(raw, bytes)
        return _b64(raw)
    if spec.kind is Kind.BOOL:
        return raw != 0
    if spec.kind is Kind.INT:
        assert isinstance(raw, int)
        return _signed64(raw)
    if spec.kind is Kind.TIME:
        assert isinstance(raw, bytes)
        return _time(raw, where)
    if spec.kind is Kind.FIELDS_V1:
        assert isinstance(raw, bytes)
        return _fields_v1(raw, where)
    raise AssertionError(spec.kind)


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or value == [] or value == {}


def decode_message(buf: bytes, schema: dict[int, Field], where: str = "object") -> dict[str, Any]:
    """Decode one message with a field table into a JSON-form dict (see the module invariants)."""
    out: dict[str, Any] = {}
    pending_messages: dict[int, bytes] = {}
    for number, wire_type, raw in iter_fields(buf):
        spec = schema.get(number)
        if spec is None:
            continue
        path = f"{where}.{spec.name}"
        expected = _WIRE_TYPES[spec.kind]
        if wire_type != expected:
            raise ProtobufDecodeError(f"{path}: wire type {wire_type}, expected {expected}")
        if spec.kind in (Kind.MAP_STRING, Kind.MAP_BYTES):
            assert isinstance(raw, bytes)
            key, item = _map_entry(raw, path, bytes_values=spec.kind is Kind.MAP_BYTES)
            out.setdefault(spec.name, {})[key] = item
        elif spec.kind is Kind.MESSAGE and not spec.repeated:
            assert isinstance(raw, bytes)
            pending_messages[number] = pending_messages.get(number, b"") + raw
        elif spec.kind is Kind.MESSAGE:
            assert isinstance(raw, bytes)
            index = len(out.get(spec.name, []))
            out.setdefault(spec.name, []).append(decode_message(raw, spec.message, f"{path}[{index}]"))
        elif spec.repeated:
            out.setdefault(spec.name, []).append(_scalar(spec, raw, path))
        else:
            out[spec.name] = _scalar(spec, raw, path)
    for number, raw in pending_messages.items():
        spec = schema[number]
        path = f"{where}.{spec.name}"
        out[spec.name] = decode_message(raw, spec.message, path)
    for spec in schema.values():
        if spec.name not in out:
            continue
        value = out[spec.name]
        # Non-pointer structs stay (as {}), like Go's JSON; other empty non-pointer values were
        # written only because the marshaller writes everything, and omitempty drops them.
        droppable = not spec.pointer and not (spec.kind is Kind.MESSAGE and not spec.repeated)
        if value is None or (droppable and _is_zero(value)):
            del out[spec.name]
    # Field-number order puts metadata first, as in Kubernetes' own JSON.
    return {spec.name: out[spec.name] for _, spec in sorted(schema.items()) if spec.name in out}


def _group_of(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a protobuf request body into the JSON-form object, with apiVersion and kind set.

    Raises ``UnsupportedProtobufKindError`` for kinds without a field table or a non-identity
    ``contentEncoding``, and ``ProtobufDecodeError`` for anything malformed.
    """
    if not body.startswith(ENVELOPE_MAGIC):
        raise ProtobufDecodeError("missing the Kubernetes protobuf envelope prefix 'k8s\\x00'")
    envelope = bytes(body[len(ENVELOPE_MAGIC) :])
    # runtime.Unknown{1 typeMeta, 2 raw, 3 contentEncoding, 4 contentType}
    parts: dict[int, bytes] = {}
    for number, wire_type, value in iter_fields(envelope):
        if number > 4:
            continue
        if not isinstance(value, bytes):
            raise ProtobufDecodeError(f"envelope field {number}: wire type {wire_type}, expected 2")
        # typeMeta is a message (occurrences merge); the others are scalars (last one wins).
        parts[number] = parts.get(number, b"") + value if number == 1 else value
    type_meta_raw = parts.get(1, b"")
    raw = parts.get(2, b"")
    content_encoding = _text(parts.get(3, b""), "contentEncoding")
    type_meta = decode_message(type_meta_raw, _TYPE_META, "typeMeta")
    api_version = type_meta.get("apiVersion", "")
    kind = type_meta.get("kind", "")
    if not kind:
        raise ProtobufDecodeError("envelope has no typeMeta.kind")
    if content_encoding:
        raise UnsupportedProtobufKindError(f"unsupported protobuf contentEncoding {content_encoding!r}")
    schema = KINDS.get((_group_of(api_version), kind)) or ANY_GROUP_KINDS.get(kind)
    if schema is None:
        raise UnsupportedProtobufKindError(
            f"decoding {kind} ({api_version or 'no apiVersion'}) from protobuf is not supported; "
            "send application/json"
        )
    obj: dict[str, Any] = {}
    if api_version:
        obj["apiVersion"] = api_version
    obj["kind"] = kind
    obj.update(decode_message(raw, schema, kind))
    return obj
