"""The protobuf wire format: varints, field keys and length-delimited payloads.

Role: the lowest layer of the decoder; it knows nothing about Kubernetes. Every malformed input
(truncation, an over-long varint, field number 0, group wire types) raises ``ProtobufDecodeError``
rather than being guessed at, because a half-decoded object must never reach the store.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

VARINT, FIXED64, LEN, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class ProtobufDecodeError(ValueError):
    """The body is not a well-formed Kubernetes protobuf message (HTTP 400)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedProtobufKindError(ProtobufDecodeError):
    """The body is well-formed but its kind or encoding is not one we can decode (HTTP 415)."""


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read one base-128 varint at ``pos``; return ``(value, next_position)``."""
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
        key, pos = read_varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise ProtobufDecodeError("field number 0 is invalid")
        value: int | bytes
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos)
        elif wire_type == LEN:
            length, pos = read_varint(buf, pos)
            if pos + length > end:
                raise ProtobufDecodeError(f"field {number}: length {length} runs past the end")
            value = buf[pos : pos + length]
            pos += length
        elif wire_type in (FIXED64, FIXED32):
            size = 8 if wire_type == FIXED64 else 4
            if pos + size > end:
                raise ProtobufDecodeError(f"field {number}: truncated fixed-width value")
            value = int.from_bytes(buf[pos : pos + size], "little")
            pos += size
        else:
            raise ProtobufDecodeError(f"field {number}: unsupported wire type {wire_type}")
        yield number, wire_type, value


def packed_varints(buf: bytes) -> list[int]:
    """The values of a packed repeated varint field (proto2 readers accept both encodings)."""
    values = []
    pos = 0
    while pos < len(buf):
        value, pos = read_varint(buf, pos)
        values.append(signed64(value))
    return values


def signed64(value: int) -> int:
    """Reinterpret a varint as two's complement int64 (negative int32/int64 use 10 bytes)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def text(value: bytes, where: str) -> str:
    """Decode a ``string`` field; protobuf strings must be valid UTF-8."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtobufDecodeError(f"{where}: invalid UTF-8") from exc


def b64(value: bytes) -> str:
    """``bytes`` fields are base64 strings in Kubernetes JSON."""
    return base64.b64encode(value).decode("ascii")
