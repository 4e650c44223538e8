"""Decode one protobuf message into its Kubernetes JSON form, driven by a field table.

Role: the schema interpreter between ``wire`` (bytes) and the per-group tables.

Invariants:
- The result matches what Kubernetes' JSON encoding of the same Go object carries: zero values of
  fields not marked ``keep`` are dropped (the Go marshaller writes every non-pointer field, and
  ``omitempty`` drops them from JSON); messages are kept, as ``{}`` when empty, as Go writes
  non-pointer structs and set pointers to empty structs; zero ``metav1.Time`` values are dropped.
- ``bytes`` values become base64; ``Quantity`` a string; ``IntOrString`` an int or a string.
- Unknown field numbers are skipped, as protobuf readers do; a known field with the wrong wire type,
  truncated input or invalid UTF-8 raises ``ProtobufDecodeError``.
- Repeated occurrences of a singular message field are merged (bytes concatenated, decoded once),
  as the protobuf specification requires; a repeated scalar keeps the last value; map keys too.
- Keys come out in field-number order (so ``metadata`` leads); inline structs' keys take the place
  of the embedding field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from cluster.apiserver.protobuf.schema import MESSAGE_KINDS, WIRE_TYPES, Field, Kind, Schema
from cluster.apiserver.protobuf.wire import (
    LEN,
    VARINT,
    ProtobufDecodeError,
    b64,
    iter_fields,
    packed_varints,
    signed64,
    text,
)
from cluster.machinery.times import rfc3339


def _time(value: bytes, where: str) -> str | None:
    seconds = 0
    nanos = 0
    for number, wire_type, raw in iter_fields(value):
        if wire_type != VARINT or not isinstance(raw, int):
            raise ProtobufDecodeError(f"{where}: time field {number} has wire type {wire_type}")
        if number == 1:
            seconds = signed64(raw)
        elif number == 2:
            nanos = signed64(raw)
    if seconds == 0 and nanos == 0:
        return None
    try:
        moment = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufDecodeError(f"{where}: time out of range") from exc
    # metav1.Time serializes at second precision in RFC 3339.
    return rfc3339(moment)


def _fields_v1(value: bytes, where: str) -> Any:
    document = b""
    for number, _wire_type, raw in iter_fields(value):
        if number == 1 and isinstance(raw, bytes):
            document = raw
    try:
        return json.loads(document) if document else {}
    except ValueError as exc:
        raise ProtobufDecodeError(f"{where}: raw bytes are not JSON") from exc


def _quantity(value: bytes, where: str) -> str:
    # resource.Quantity travels as its canonical string in field 1.
    result = ""
    for number, wire_type, raw in iter_fields(value):
        if number == 1:
            if wire_type != LEN or not isinstance(raw, bytes):
                raise ProtobufDecodeError(f"{where}: quantity field 1 has wire type {wire_type}")
            result = text(raw, where)
    return result


def _int_or_string(value: bytes, where: str) -> int | str:
    kind = 0
    int_val = 0
    str_val = ""
    for number, wire_type, raw in iter_fields(value):
        if number in (1, 2) and (wire_type != VARINT or not isinstance(raw, int)):
            raise ProtobufDecodeError(f"{where}: intstr field {number} has wire type {wire_type}")
        if number == 3 and (wire_type != LEN or not isinstance(raw, bytes)):
            raise ProtobufDecodeError(f"{where}: intstr field 3 has wire type {wire_type}")
        if number == 1:
            assert isinstance(raw, int)
            kind = raw
        elif number == 2:
            assert isinstance(raw, int)
            int_val = signed64(raw)
        elif number == 3:
            assert isinstance(raw, bytes)
            str_val = text(raw, where)
    # Type 1 is intstr.String; anything else reads as the int, like Go's IntOrString.
    return str_val if kind == 1 else int_val


def _map_entry(value: bytes, where: str, value_kind: Kind) -> tuple[str, Any]:
    key = b""
    item = b""
    for number, wire_type, raw in iter_fields(value):
        if wire_type != LEN or not isinstance(raw, bytes):
            raise ProtobufDecodeError(f"{where}: map entry field {number} has wire type {wire_type}")
        if number == 1:
            key = raw
        elif number == 2:
            item = raw
    if value_kind is Kind.BYTES:
        return text(key, where), b64(item)
    if value_kind is Kind.QUANTITY:
        return text(key, where), _quantity(item, where)
    return text(key, where), text(item, where)


def _value(spec: Field, raw: int | bytes, where: str) -> Any:
    if isinstance(raw, int):
        # WIRE_TYPES guarantees only BOOL and INT arrive as varints.
        return raw != 0 if spec.kind is Kind.BOOL else signed64(raw)
    if spec.kind is Kind.STRING:
        return text(raw, where)
    if spec.kind is Kind.BYTES:
        return b64(raw)
    if spec.kind is Kind.MESSAGE:
        return decode_message(raw, spec.message, where)
    if spec.kind is Kind.TIME:
        return _time(raw, where)
    if spec.kind is Kind.FIELDS_V1:
        return _fields_v1(raw, where)
    if spec.kind is Kind.QUANTITY:
        return _quantity(raw, where)
    if spec.kind is Kind.INT_OR_STRING:
        return _int_or_string(raw, where)
    raise AssertionError(spec.kind)


def _omitted(spec: Field, value: Any) -> bool:
    if value is None:
        return True
    if spec.keep or spec.repeated or spec.kind in (Kind.MESSAGE, Kind.FIELDS_V1, Kind.MAP):
        return False
    return value == "" or value is False or value == 0


def decode_message(buf: bytes, schema: Schema, where: str = "object") -> dict[str, Any]:
    """Decode one message with a field table into a JSON-form dict (see the module invariants)."""
    out: dict[str, Any] = {}
    pending: dict[int, bytes] = {}
    for number, wire_type, raw in iter_fields(buf):
        spec = schema.get(number)
        if spec is None:
            continue
        path = f"{where}.{spec.name}"
        if spec.kind is Kind.INT and spec.repeated and isinstance(raw, bytes):
            out.setdefault(spec.name, []).extend(packed_varints(raw))
            continue
        expected = WIRE_TYPES[spec.kind]
        if wire_type != expected:
            raise ProtobufDecodeError(f"{path}: wire type {wire_type}, expected {expected}")
        if spec.kind is Kind.MAP:
            assert isinstance(raw, bytes)
            key, item = _map_entry(raw, path, spec.value)
            out.setdefault(spec.name, {})[key] = item
        elif spec.kind in MESSAGE_KINDS and not spec.repeated:
            assert isinstance(raw, bytes)
            pending[number] = pending.get(number, b"") + raw
        elif spec.repeated:
            items = out.setdefault(spec.name, [])
            items.append(_value(spec, raw, f"{path}[{len(items)}]"))
        else:
            out[spec.name] = _value(spec, raw, path)
    for number, raw in pending.items():
        spec = schema[number]
        out[spec.name] = _value(spec, raw, f"{where}.{spec.name}")
    result: dict[str, Any] = {}
    for _, spec in sorted(schema.items()):
        if spec.name not in out or _omitted(spec, out[spec.name]):
            continue
        if spec.inline:
            result.update(out[spec.name])
        else:
            result[spec.name] = out[spec.name]
    return result
