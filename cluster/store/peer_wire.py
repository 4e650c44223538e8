"""The wire format of Raft traffic between store replicas (``cluster.store.peer_transport``).

A connection carries length-prefixed frames: a 4-byte big-endian payload length, then a msgpack
array whose first element is the frame kind. The dialing side speaks first:

* ``HELLO [version, from, to]``: who dials whom. The listener answers ``WELCOME [id]`` or
  ``REFUSED [reason]`` (wrong replica id, wrong version) and closes.
* ``MSGS [[message, ...]]``: a batch of Raft messages, each as in :func:`message_to_wire`.
* ``SNAP [message, total]`` then ``CHUNK [bytes]`` frames: one message carrying a snapshot, whose
  data (``total`` bytes) follows in chunks of at most ``chunk_bytes``. The message is delivered when
  its last chunk arrives; a connection that breaks before leaves nothing behind (the reassembly
  state lives with the connection), and the leader sends the snapshot again.

Frames are bounded (``MAX_FRAME``): a snapshot is never one frame, and the sender splits batches at
``frame_bytes``. Everything here is pure: encoding, decoding, and :class:`Reassembler`, the
receiving side's state machine, so the format is tested without sockets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from typing import Any

import msgpack  # type: ignore[import-untyped]

from cluster.store.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)

VERSION = 1
HELLO, WELCOME, REFUSED, MSGS, SNAP, CHUNK = range(6)
HEADER = struct.Struct(">I")
MAX_FRAME = 16 << 20  # no frame a peer sends is larger: a longer length prefix is a broken peer
FRAME_BYTES = 1 << 20  # a batch is split into frames of about this size
CHUNK_BYTES = 1 << 20  # snapshot data travels in chunks of at most this size


class WireError(Exception):
    """The peer sent something this format does not allow; the connection must be closed."""


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def frame(payload: Any) -> bytes:
    """One frame: the length prefix and the msgpack encoding of ``payload``."""
    body = pack(payload)
    if len(body) > MAX_FRAME:
        raise WireError(f"frame of {len(body)} bytes exceeds {MAX_FRAME}")
    return HEADER.pack(len(body)) + body


def unpack_frame(body: bytes) -> list[Any]:
    """Decode a frame's payload (without its length prefix); raises WireError when malformed."""
    try:
        payload = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except Exception as e:
        raise WireError(f"undecodable frame: {type(e).__name__}") from None
    if not isinstance(payload, list) or not payload or not isinstance(payload[0], int):
        raise WireError("a frame is an array starting with its kind")
    return payload


# --- messages ----------------------------------------------------------------------------------


def message_to_wire(m: Message, *, snapshot_data: bool = True) -> list[Any]:
    snap: list[Any] | None = None
    if m.snapshot is not None:
        md = m.snapshot.metadata
        snap = [md.index, md.term, list(md.conf_state.voters), m.snapshot.data if snapshot_data else b""]
    return [
        int(m.type),
        m.to,
        m.frm,
        m.term,
        m.log_term,
        m.index,
        [[e.term, e.index, int(e.type), e.data] for e in m.entries],
        m.commit,
        snap,
        m.reject,
        m.reject_hint,
        m.context,
    ]


def message_from_wire(w: Any, snapshot_data: bytes | None = None) -> Message:
    """Inverse of :func:`message_to_wire`; ``snapshot_data`` replaces the snapshot's (streamed) data."""
    try:
        snap = None
        if w[8] is not None:
            s = w[8]
            data = snapshot_data if snapshot_data is not None else bytes(s[3])
            snap = Snapshot(SnapshotMetadata(s[0], s[1], ConfState(tuple(s[2]))), data)
        return Message(
            MessageType(w[0]),
            to=w[1],
            frm=w[2],
            term=w[3],
            log_term=w[4],
            index=w[5],
            entries=tuple(Entry(e[0], e[1], EntryType(e[2]), e[3]) for e in w[6]),
            commit=w[7],
            snapshot=snap,
            reject=w[9],
            reject_hint=w[10],
            context=w[11],
        )
    except WireError:
        raise
    except Exception as e:
        raise WireError(f"malformed message: {type(e).__name__}: {e}") from None


def message_size(m: Message) -> int:
    """Roughly the encoded size of a message (entries and snapshot data dominate)."""
    snap = len(m.snapshot.data) if m.snapshot is not None else 0
    return 64 + sum(len(e.data) + 24 for e in m.entries) + len(m.context) + snap


def encode_batches(
    batches: Iterable[list[Message]], *, frame_bytes: int = FRAME_BYTES, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The frames that carry ``batches`` in order: MSGS frames of about ``frame_bytes``, and every
    message with a snapshot as SNAP followed by its CHUNK frames (a generator, so a sender can wait
    for the socket between chunks instead of holding a copy of the whole snapshot)."""
    pending: list[list[Any]] = []
    size = 0
    for batch in batches:
        for m in batch:
            if m.snapshot is not None and m.type == MessageType.SNAP:
                if pending:
                    yield frame([MSGS, pending])
                    pending, size = [], 0
                data = m.snapshot.data
                yield frame([SNAP, message_to_wire(m, snapshot_data=False), len(data)])
                view = memoryview(data)
                for off in range(0, len(data), chunk_bytes):
                    yield frame([CHUNK, view[off : off + chunk_bytes]])
                continue
            pending.append(message_to_wire(m))
            size += message_size(m)
            if size >= frame_bytes:
                yield frame([MSGS, pending])
                pending, size = [], 0
    if pending:
        yield frame([MSGS, pending])


class Reassembler:
    """The receiving side of one connection: frames in, complete Raft messages out.

    ``feed`` returns the messages a frame completes (none while a snapshot is partial). A frame
    out of place (a CHUNK without a SNAP, a new batch in the middle of a snapshot, more bytes than
    announced) raises WireError. ``max_snapshot`` bounds what a peer can make us buffer."""

    def __init__(self, max_snapshot: int = 8 << 30) -> None:
        self.max_snapshot = max_snapshot
        self._snap_head: Any = None
        self._snap_total = 0
        self._parts: list[bytes] = []
        self._got = 0

    @property
    def partial(self) -> bool:
        return self._snap_head is not None

    def feed(self, payload: list[Any]) -> list[Message]:
        kind = payload[0]
        if kind == CHUNK:
            if self._snap_head is None or len(payload) != 2 or not isinstance(payload[1], bytes):
                raise WireError("snapshot chunk outside a snapshot")
            self._parts.append(payload[1])
            self._got += len(payload[1])
            if self._got > self._snap_total:
                raise WireError(f"snapshot longer than announced ({self._got} > {self._snap_total})")
            return self._finish() if self._got == self._snap_total else []
        if self._snap_head is not None:
            raise WireError(f"frame kind {kind} in the middle of a snapshot")
        if kind == MSGS:
            if len(payload) != 2 or not isinstance(payload[1], list):
                raise WireError("malformed message batch")
            return [message_from_wire(w) for w in payload[1]]
        if kind == SNAP:
            if len(payload) != 3 or not isinstance(payload[2], int) or payload[2] < 0:
                raise WireError("malformed snapshot header")
            if payload[2] > self.max_snapshot:
                raise WireError(f"snapshot of {payload[2]} bytes exceeds {self.max_snapshot}")
            if not isinstance(payload[1], list) or len(payload[1]) != 12 or payload[1][8] is None:
                raise WireError("snapshot header without a snapshot")
            self._snap_head, self._snap_total = payload[1], payload[2]
            self._parts, self._got = [], 0
            return self._finish() if self._snap_total == 0 else []
        raise WireError(f"unexpected frame kind {kind}")

    def _finish(self) -> list[Message]:
        head, data = self._snap_head, b"".join(self._parts)
        self._snap_head, self._parts, self._got, self._snap_total = None, [], 0, 0
        return [message_from_wire(head, snapshot_data=data)]
