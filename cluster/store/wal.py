"""Write-ahead log for a Raft replica: makes durable what a ``Ready`` says must be persisted.

Directory layout::

    wal-<seq:016x>.log                  log segments, replayed in ``seq`` order
    snap-<index:016x>-<term:016x>.snap  snapshot files
    LOCK                                held with flock(2) while a WAL is open
    *.tmp                               half-written files, removed by ``WAL.open``

Record framing, little-endian::

    length:u32 | type:u8 | crc:u32 | payload[length]      crc = CRC-32 of (type byte + payload)

Payloads: ENTRY ``term:u64 index:u64 entry_type:u8 data``; HARD_STATE ``term vote commit`` (u64 each);
SNAPSHOT_REF ``index term`` (u64 each); SNAPSHOT (only in snapshot files) a msgpack array
``[index, term, voters, data]``.

Invariants that make recovery sound:

* A segment whose first record is SNAPSHOT_REF is a *base*. The durable state is the snapshot it names
  plus every record of the base and of the segments after it; recovery starts at the newest base and
  ignores (then deletes) everything older.
* Base segments and snapshot files reach their final names only when complete: written to a ``.tmp``
  file, fsynced, renamed, then the directory is fsynced. So a base is never torn, and the snapshot it
  names is on disk before the base is. This is what makes ``save_snapshot`` crash-safe at every step.
* Only the last segment may end in a torn record: a segment is fsynced before the next one is created.
  A bad record at the tail of the last segment is an unacknowledged write cut short by a crash and is
  truncated away; a bad record anywhere else is corruption (:class:`WALCorrupt`). The known blind spot,
  shared with etcd: bit rot inside the last segment looks like a torn tail and drops the records after it.
* After any I/O error the WAL refuses further writes (:class:`WALFailed`): a failed write or fsync leaves
  the file in an unknown state (fsync errors cannot be retried safely), so the owner must reopen it.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import itertools
import os
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack  # type: ignore[import-untyped]

from cluster.machinery.files import FILE_MODE, private_dir
from cluster.store.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata

__all__ = ["WAL", "Recovered", "WALCorrupt", "WALError", "WALFailed", "WALLocked", "fsync_dir"]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024

_HEADER = struct.Struct("<IBI")
_ENTRY = struct.Struct("<QQB")
_HARD_STATE = struct.Struct("<QQQ")
_SNAPSHOT_REF = struct.Struct("<QQ")
_SEGMENT_RE = re.compile(r"^wal-([0-9a-f]{16})\.log$")
_SNAPSHOT_RE = re.compile(r"^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$")


class RecordType(enum.IntEnum):
    ENTRY = 1
    HARD_STATE = 2
    SNAPSHOT_REF = 3
    SNAPSHOT = 4


_TYPE_CRC = {t: zlib.crc32(bytes((t,))) for t in RecordType}


class WALError(Exception):
    """Base class of the WAL's errors."""


class WALCorrupt(WALError):
    """A record that cannot be a torn write failed validation; the replica must not start from this dir."""

    def __init__(self, path: str | os.PathLike[str], offset: int, reason: str) -> None:
        super().__init__(f"{os.fspath(path)} at offset {offset}: {reason}")
        self.path = os.fspath(path)
        self.offset = offset
        self.reason = reason


class WALFailed(WALError):
    """An earlier I/O error left the WAL in an unknown state; close it and reopen the directory."""


class WALLocked(WALError):
    """Another WAL (in this or another process) has the directory open."""


@dataclass(frozen=True, slots=True)
class Recovered:
    snapshot: Snapshot | None
    hard_state: HardState
    """``HardState()`` if none was saved."""
    entries: list[Entry]
    """Entries after the snapshot index, conflicts resolved (a later record for index i drops all >= i)."""
    torn_tail_bytes: int
    """Bytes cut from a torn tail of the last segment (0 when it was clean)."""


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory so that file creations, renames and unlinks in it are durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_fdatasync = getattr(os, "fdatasync", os.fsync)


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_file_durably(path: Path, data: bytes | bytearray) -> None:
    """tmp file + fsync + rename + directory fsync: ``path`` is either absent or complete, never partial."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _append_record(buf: bytearray, rtype: RecordType, payload: bytes) -> None:
    buf += _HEADER.pack(len(payload), rtype, zlib.crc32(payload, _TYPE_CRC[rtype]))
    buf += payload


def _append_entries(buf: bytearray, entries: Sequence[Entry]) -> None:
    # Hot path for big batches: no intermediate payload bytes, the CRC runs over the two parts.
    header, pack_entry, base_crc, crc32 = _HEADER.pack, _ENTRY.pack, _TYPE_CRC[RecordType.ENTRY], zlib.crc32
    for e in entries:
        head = pack_entry(e.term, e.index, e.type)
        buf += header(len(head) + len(e.data), RecordType.ENTRY, crc32(e.data, crc32(head, base_crc)))
        buf += head
        buf += e.data


def _append_hard_state(buf: bytearray, hs: HardState) -> None:
    _append_record(buf, RecordType.HARD_STATE, _HARD_STATE.pack(hs.term, hs.vote, hs.commit))


def _check_contiguous(entries: Sequence[Entry], lowest: int, next_index: int) -> None:
    """Raft appends contiguously; refuse to write a log that recovery would have to reject."""
    if not entries:
        return
    if not lowest <= entries[0].index <= next_index:
        raise ValueError(f"first entry index {entries[0].index} outside [{lowest}, {next_index}]")
    for prev, cur in itertools.pairwise(entries):
        if cur.index != prev.index + 1:
            raise ValueError(f"entries not contiguous: {prev.index} then {cur.index}")


def _parse(buf: bytes) -> tuple[list[tuple[int, RecordType, memoryview]], int, str]:
    """Valid records up to the first bad one: ``(records, end_offset, reason)``; reason '' when clean."""
    records: list[tuple[int, RecordType, memoryview]] = []
    view = memoryview(buf)
    offset, size, hsize = 0, len(buf), _HEADER.size
    while offset < size:
        if size - offset < hsize:
            return records, offset, "truncated record header"
        length, rtype, crc = _HEADER.unpack_from(buf, offset)
        start = offset + hsize
        if length > size - start:
            return records, offset, f"record length {length} runs past end of file"
        payload = view[start : start + length]
        if rtype not in _TYPE_CRC:
            return records, offset, f"unknown record type {rtype}"
        if zlib.crc32(payload, _TYPE_CRC[rtype]) != crc:
            return records, offset, "checksum mismatch"
        records.append((offset, RecordType(rtype), payload))
        offset = start + length
    return records, offset, ""


def _encode_snapshot(snapshot: Snapshot) -> bytes:
    md = snapshot.metadata
    payload = msgpack.packb([md.index, md.term, list(md.conf_state.voters), snapshot.data])
    buf = bytearray()
    _append_record(buf, RecordType.SNAPSHOT, payload)
    return bytes(buf)


def _load_snapshot(path: Path, index: int, term: int) -> Snapshot:
    try:
        buf = path.read_bytes()
    except FileNotFoundError:
        raise WALCorrupt(path, 0, "snapshot named by the base segment is missing") from None
    records, end, reason = _parse(buf)
    if reason or len(records) != 1 or records[0][1] != RecordType.SNAPSHOT:
        raise WALCorrupt(path, end, reason or "expected exactly one SNAPSHOT record")
    try:
        s_index, s_term, voters, data = msgpack.unpackb(records[0][2])
    except (ValueError, msgpack.UnpackException) as exc:
        raise WALCorrupt(path, 0, f"undecodable snapshot: {exc}") from None
    if (s_index, s_term) != (index, term):
        raise WALCorrupt(path, 0, f"snapshot is {s_index}/{s_term}, base segment expects {index}/{term}")
    return Snapshot(SnapshotMetadata(s_index, s_term, ConfState(tuple(voters))), bytes(data))


def _segment_name(seq: int) -> str:
    return f"wal-{seq:016x}.log"


def _snapshot_name(index: int, term: int) -> str:
    return f"snap-{index:016x}-{term:016x}.snap"


class WAL:
    """Append-only durable log of entries and hard states, plus the latest snapshot.

    Not thread-safe: one owner (the replica) calls it. ``save`` with ``sync=True`` returns only after
    the data is on stable storage; with ``sync=False`` a later synced ``save`` (or ``close``) covers it.
    """

    def __init__(
        self,
        directory: Path,
        lock_fd: int,
        segments: list[tuple[int, int]],
        snapshot_index: int,
        last_index: int,
        segment_bytes: int,
    ) -> None:
        self._dir = directory
        self._lock_fd = lock_fd
        self._segments = segments  # (seq, size) of the live chain, oldest first; the last is written to
        self._snapshot_index = snapshot_index
        self._last_index = last_index
        self._segment_bytes = segment_bytes
        self._fd = os.open(self._segment_path(segments[-1][0]), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._unsynced = False
        self._failed: BaseException | None = None
        # fdatasyncs of the log plus durable snapshot installs since open: what ``bench store`` reports
        # as its ``fsync`` figure (a literal there once claimed durability nobody had checked).
        self.syncs = 0

    # ---- opening and recovery -------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: str | os.PathLike[str], *, segment_bytes: int = DEFAULT_SEGMENT_BYTES
    ) -> tuple[WAL, Recovered]:
        """Open (creating if missing) the WAL in ``directory`` and recover its durable state.

        Truncates a torn tail of the last segment, removes leftovers of an interrupted
        ``save_snapshot``, and raises :class:`WALCorrupt` on damage that cannot be a torn write.
        """
        path = Path(directory)
        private_dir(path)  # 0700 directories, 0600 files: the log holds Secrets in plain text
        lock_fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise WALLocked(f"{path} is open in another WAL") from None
        try:
            return cls._recover(path, lock_fd, segment_bytes)
        except BaseException:
            os.close(lock_fd)
            raise

    @classmethod
    def _recover(cls, path: Path, lock_fd: int, segment_bytes: int) -> tuple[WAL, Recovered]:
        seqs = sorted(int(m.group(1), 16) for n in os.listdir(path) if (m := _SEGMENT_RE.match(n)))
        if not seqs:
            buf = bytearray()
            _append_record(buf, RecordType.SNAPSHOT_REF, _SNAPSHOT_REF.pack(0, 0))
            _write_file_durably(path / _segment_name(0), buf)
            seqs = [0]
        base_pos, snap_index, snap_term = cls._find_base(path, seqs)
        chain = seqs[base_pos:]
        for prev, cur in itertools.pairwise(chain):
            if cur != prev + 1:
                raise WALCorrupt(path / _segment_name(cur), 0, f"segment {prev + 1:016x} is missing")
        snapshot = None
        if snap_index != 0:
            snapshot = _load_snapshot(path / _snapshot_name(snap_index, snap_term), snap_index, snap_term)

        hard_state = HardState()
        entries: list[Entry] = []
        torn = 0
        sizes: list[tuple[int, int]] = []
        for seq in chain:
            seg_path = path / _segment_name(seq)
            data = seg_path.read_bytes()
            records, end, reason = _parse(data)
            if reason and seq != chain[-1]:
                raise WALCorrupt(seg_path, end, reason)
            if reason:
                torn = len(data) - end
                os.truncate(seg_path, end)
                fd = os.open(seg_path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            sizes.append((seq, end))
            for offset, rtype, payload in records:
                if rtype == RecordType.ENTRY:
                    term, index, etype = _ENTRY.unpack_from(payload)
                    next_index = entries[-1].index + 1 if entries else snap_index + 1
                    if index > next_index:
                        raise WALCorrupt(seg_path, offset, f"gap: entry {index} after {next_index - 1}")
                    if index <= snap_index:
                        continue  # already covered by the snapshot
                    if entries and index < next_index:
                        del entries[index - entries[0].index :]
                    try:
                        entry_type = EntryType(etype)
                    except ValueError:
                        raise WALCorrupt(seg_path, offset, f"unknown entry type {etype}") from None
                    entries.append(Entry(term, index, entry_type, bytes(payload[_ENTRY.size :])))
                elif rtype == RecordType.HARD_STATE:
                    hard_state = HardState(*_HARD_STATE.unpack(payload))
                elif rtype == RecordType.SNAPSHOT_REF:
                    if offset != 0 or seq != chain[0]:
                        raise WALCorrupt(seg_path, offset, "SNAPSHOT_REF outside the start of the base")
                else:
                    raise WALCorrupt(seg_path, offset, f"unexpected {rtype.name} record in a segment")

        cls._remove_stale(path, keep_from_seq=chain[0], keep_snapshot=_snapshot_name(snap_index, snap_term))
        last_index = entries[-1].index if entries else snap_index
        wal = cls(path, lock_fd, sizes, snap_index, last_index, segment_bytes)
        return wal, Recovered(snapshot, hard_state, entries, torn)

    @staticmethod
    def _find_base(path: Path, seqs: list[int]) -> tuple[int, int, int]:
        """Position in ``seqs`` of the newest base segment, and the snapshot (index, term) it names."""
        for pos in range(len(seqs) - 1, -1, -1):
            with open(path / _segment_name(seqs[pos]), "rb") as f:
                head = f.read(_HEADER.size + _SNAPSHOT_REF.size)
            records, _, _ = _parse(head)
            if records and records[0][1] == RecordType.SNAPSHOT_REF:
                index, term = _SNAPSHOT_REF.unpack(records[0][2])
                return pos, index, term
        raise WALCorrupt(path / _segment_name(seqs[0]), 0, "no base segment (SNAPSHOT_REF) found")

    @staticmethod
    def _remove_stale(path: Path, keep_from_seq: int, keep_snapshot: str) -> None:
        """Delete files the live chain does not need. Safe: the base they predate is durable."""
        removed = False
        for name in os.listdir(path):
            seg = _SEGMENT_RE.match(name)
            stale = (
                name.endswith(".tmp")
                or (seg is not None and int(seg.group(1), 16) < keep_from_seq)
                or (_SNAPSHOT_RE.match(name) is not None and name != keep_snapshot)
            )
            if stale:
                os.unlink(path / name)
                removed = True
        if removed:
            fsync_dir(path)

    # ---- writing --------------------------------------------------------------------------------

    def save(self, hard_state: HardState | None, entries: Sequence[Entry], *, sync: bool = True) -> None:
        """Append ``entries`` then ``hard_state`` as one write; if ``sync``, fdatasync before returning.

        Entries must be contiguous and may start at any index in ``(snapshot index, last index + 1]``;
        starting below ``last index + 1`` replaces the conflicting suffix (as Raft does).
        """
        self._check_usable()
        _check_contiguous(entries, self._snapshot_index + 1, self._last_index + 1)
        buf = bytearray()
        _append_entries(buf, entries)
        if hard_state is not None:
            _append_hard_state(buf, hard_state)
        try:
            if buf:
                _write_all(self._fd, buf)
                self._unsynced = True
            seq, size = self._segments[-1]
            self._segments[-1] = (seq, size + len(buf))
            if sync and self._unsynced:
                _fdatasync(self._fd)
                self._unsynced = False
                self.syncs += 1
            if entries:
                self._last_index = entries[-1].index
            if self._segments[-1][1] >= self._segment_bytes:
                self._roll()
        except BaseException as exc:
            self._failed = exc
            raise

    def _roll(self) -> None:
        """Start the next segment. The current one is fsynced first, so only the newest can be torn."""
        if self._unsynced:
            _fdatasync(self._fd)
            self._unsynced = False
            self.syncs += 1
        seq = self._segments[-1][0] + 1
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = os.open(self._segment_path(seq), flags, FILE_MODE)
        os.close(self._fd)
        self._fd = fd
        fsync_dir(self._dir)
        self._segments.append((seq, 0))

    def save_snapshot(
        self, snapshot: Snapshot, hard_state: HardState, entries_after: Sequence[Entry]
    ) -> None:
        """Durably install ``snapshot`` and compact the log down to ``hard_state`` + ``entries_after``.

        ``entries_after`` must be contiguous from ``snapshot.metadata.index + 1`` (or empty). A crash at
        any point leaves either the old state or the new one for ``open`` to recover.
        """
        self._check_usable()
        md = snapshot.metadata
        _check_contiguous(entries_after, md.index + 1, md.index + 1)
        try:
            # 1. The snapshot file, complete, before anything names it.
            _write_file_durably(self._dir / _snapshot_name(md.index, md.term), _encode_snapshot(snapshot))
            # 2. The new base segment; once its name is durable the new state is the recovered one.
            buf = bytearray()
            _append_record(buf, RecordType.SNAPSHOT_REF, _SNAPSHOT_REF.pack(md.index, md.term))
            _append_entries(buf, entries_after)
            _append_hard_state(buf, hard_state)
            seq = self._segments[-1][0] + 1
            _write_file_durably(self._segment_path(seq), buf)
            # 3. Switch over, then drop what the new base makes redundant.
            fd = os.open(self._segment_path(seq), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            os.close(self._fd)
            self._fd = fd
            self._unsynced = False
            self._segments = [(seq, len(buf))]
            self._snapshot_index = md.index
            self._last_index = entries_after[-1].index if entries_after else md.index
            self._remove_stale(self._dir, keep_from_seq=seq, keep_snapshot=_snapshot_name(md.index, md.term))
            self.syncs += 1
        except BaseException as exc:
            self._failed = exc
            raise

    def close(self) -> None:
        """fsync anything unsynced and release the directory. Idempotent."""
        if self._fd >= 0:
            try:
                if self._unsynced and self._failed is None:
                    _fdatasync(self._fd)
            finally:
                os.close(self._fd)
                self._fd = -1
                with contextlib.suppress(OSError):
                    os.close(self._lock_fd)

    @property
    def size_bytes(self) -> int:
        """Bytes in the live log segments (the snapshot file not included)."""
        return sum(size for _, size in self._segments)

    def _check_usable(self) -> None:
        if self._fd < 0:
            raise WALError("WAL is closed")
        if self._failed is not None:
            raise WALFailed(f"an earlier error left the WAL unusable: {self._failed!r}") from self._failed

    def _segment_path(self, seq: int) -> Path:
        return self._dir / _segment_name(seq)
