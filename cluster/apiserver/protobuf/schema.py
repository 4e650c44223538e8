"""Field tables: how one protobuf message maps onto its Kubernetes JSON form.

Role: a ``Schema`` maps field number -> ``Field`` (JSON name, kind, repetition, zero handling).
The tables in the sibling modules are transcribed from Kubernetes' ``generated.proto`` files;
field numbers and names were checked against the descriptors compiled into kubectl 1.32/1.33.

Invariants:
- Field names are the JSON names (``generated.proto`` uses them, except ``BoundObjectReference.uID``
  whose JSON name is ``uid``).
- ``keep`` marks fields whose zero value means something: Go pointer fields (written to the wire
  only when set, e.g. ``replicas``) and required fields without ``omitempty`` (``containerPort``).
  Every other scalar is written by Go's marshaller even when unset, so its zero value is dropped,
  as ``omitempty`` would drop it from JSON.
- ``inline`` marks embedded Go structs (``json:",inline"``) whose fields JSON puts in the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from cluster.apiserver.protobuf.wire import LEN, VARINT


class Kind(Enum):
    STRING = "string"
    BYTES = "bytes"  # base64 in JSON
    BOOL = "bool"
    INT = "int"  # int32/int64, two's complement varint
    MESSAGE = "message"
    MAP = "map"  # map<string, value>, entries {1 key, 2 value}
    TIME = "metav1.Time"  # {1 seconds, 2 nanos} -> RFC 3339, zero dropped
    FIELDS_V1 = "metav1.FieldsV1"  # a message whose field 1 holds raw JSON
    QUANTITY = "resource.Quantity"  # {1 string} -> "500m"
    INT_OR_STRING = "intstr.IntOrString"  # {1 type, 2 intVal, 3 strVal} -> 8080 or "http"


# Kinds carried in a length-delimited message and merged across repeated occurrences.
MESSAGE_KINDS = frozenset({Kind.MESSAGE, Kind.TIME, Kind.FIELDS_V1, Kind.QUANTITY, Kind.INT_OR_STRING})

WIRE_TYPES = {kind: LEN for kind in Kind} | {Kind.BOOL: VARINT, Kind.INT: VARINT}


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    repeated: bool = False
    keep: bool = False  # zero value kept (pointer fields, fields without omitempty)
    inline: bool = False  # embedded struct: its fields go into the parent object
    message: Schema = field(default_factory=dict)
    value: Kind = Kind.STRING  # map value kind: STRING, BYTES or QUANTITY


Schema = dict[int, Field]

# Server-owned parts (``status``): kubectl sends them empty, the server ignores them on writes.
UNDECODED: Schema = {}


def string(name: str, *, repeated: bool = False, keep: bool = False) -> Field:
    return Field(name, Kind.STRING, repeated=repeated, keep=keep)


def raw_bytes(name: str, *, repeated: bool = False, keep: bool = False) -> Field:
    return Field(name, Kind.BYTES, repeated=repeated, keep=keep)


def boolean(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.BOOL, keep=keep)


def integer(name: str, *, repeated: bool = False, keep: bool = False) -> Field:
    return Field(name, Kind.INT, repeated=repeated, keep=keep)


def quantity(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.QUANTITY, keep=keep)


def int_or_string(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.INT_OR_STRING, keep=keep)


def time(name: str, *, keep: bool = False) -> Field:
    return Field(name, Kind.TIME, keep=keep)


def map_of(name: str, value: Kind) -> Field:
    return Field(name, Kind.MAP, value=value)


def message(name: str, schema: Schema, *, repeated: bool = False, inline: bool = False) -> Field:
    return Field(name, Kind.MESSAGE, repeated=repeated, inline=inline, message=schema)
