"""The durable side of the Raft log, as the core reads it, and an in-memory implementation.

The core only ever *reads* storage; the caller writes it while handling a ``Ready``
(``set_hard_state``, ``apply_snapshot``, ``append``) and when it compacts after taking an
application snapshot (``create_snapshot`` + ``compact``).

Layout invariant of :class:`MemoryStorage`: ``_ents[0]`` is a dummy entry standing for the
snapshot (its index and term are the snapshot's); real entries follow at consecutive indexes.
So ``first_index() == snapshot index + 1`` and ``term(snapshot index)`` is still answerable.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata


class StorageError(Exception):
    """Base class of the typed errors storage reports to the core."""


class Compacted(StorageError):
    """The requested index is at or below the snapshot: the entry is gone."""


class Unavailable(StorageError):
    """The requested index is above the last entry."""


class SnapOutOfDate(StorageError):
    """A snapshot older than (or equal to) the current one was offered."""


def entry_size(e: Entry) -> int:
    """Bytes an entry counts against message/ready size limits (its data)."""
    return len(e.data)


def limit_size(ents: list[Entry], max_size: int | None) -> list[Entry]:
    """Longest prefix of ``ents`` within ``max_size`` bytes, but always at least one entry."""
    if max_size is None or not ents:
        return ents
    size = entry_size(ents[0])
    for i in range(1, len(ents)):
        size += entry_size(ents[i])
        if size > max_size:
            return ents[:i]
    return ents


class Storage(Protocol):
    """What the core reads. :class:`MemoryStorage` is the reference implementation."""

    def initial_state(self) -> tuple[HardState, ConfState]: ...
    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]: ...
    def term(self, i: int) -> int: ...
    def first_index(self) -> int: ...
    def last_index(self) -> int: ...
    def snapshot(self) -> Snapshot: ...


class MemoryStorage:
    """Storage held in a Python list; the caller persists it elsewhere (or not, in tests)."""

    def __init__(self) -> None:
        self._hard_state = HardState()
        self._snapshot = Snapshot()
        self._ents: list[Entry] = [Entry(term=0, index=0)]

    # -- read side (used by the core) ---------------------------------------------------

    def initial_state(self) -> tuple[HardState, ConfState]:
        return self._hard_state, self._snapshot.metadata.conf_state

    def hard_state(self) -> HardState:
        return self._hard_state

    def entries(self, lo: int, hi: int, max_size: int | None = None) -> list[Entry]:
        """Entries in ``[lo, hi)``, trimmed to ``max_size`` bytes (at least one entry)."""
        offset = self._ents[0].index
        if lo <= offset:
            raise Compacted(f"index {lo} is compacted (snapshot at {offset})")
        if hi > self.last_index() + 1:
            raise Unavailable(f"entries up to {hi - 1} requested, last index is {self.last_index()}")
        if max_size is None:
            return self._ents[lo - offset : hi - offset]
        # Walk only as far as the size limit allows, so a far-behind reader costs O(result).
        size = 0
        end = lo - offset
        stop = hi - offset
        while end < stop:
            size += entry_size(self._ents[end])
            if size > max_size and end > lo - offset:
                break
            end += 1
        return self._ents[lo - offset : end]

    def term(self, i: int) -> int:
        offset = self._ents[0].index
        if i < offset:
            raise Compacted(f"index {i} is compacted (snapshot at {offset})")
        if i - offset >= len(self._ents):
            raise Unavailable(f"index {i} is beyond the last index {self.last_index()}")
        return self._ents[i - offset].term

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- write side (used by the caller) ------------------------------------------------

    def set_hard_state(self, hs: HardState) -> None:
        self._hard_state = hs

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace the whole log by ``snap`` (entries above it are discarded too)."""
        if snap.metadata.index <= self._snapshot.metadata.index:
            raise SnapOutOfDate(
                f"snapshot at {snap.metadata.index} is not newer than {self._snapshot.metadata.index}"
            )
        self._snapshot = snap
        self._ents = [Entry(term=snap.metadata.term, index=snap.metadata.index)]

    def create_snapshot(self, index: int, conf_state: ConfState | None, data: bytes) -> Snapshot:
        """Record an application snapshot taken at applied ``index``; entries stay until ``compact``.

        ``conf_state`` must be the configuration as of ``index`` (``RawNode.apply_conf_change``
        returns it); ``None`` keeps the previous snapshot's configuration.
        """
        if index <= self._snapshot.metadata.index:
            raise SnapOutOfDate(f"snapshot at {index} is not newer than {self._snapshot.metadata.index}")
        if index > self.last_index():
            raise ValueError(f"snapshot index {index} is beyond the last index {self.last_index()}")
        cs = self._snapshot.metadata.conf_state if conf_state is None else conf_state
        meta = SnapshotMetadata(index=index, term=self.term(index), conf_state=cs)
        self._snapshot = Snapshot(metadata=meta, data=data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index``; ``index`` becomes the new dummy entry."""
        offset = self._ents[0].index
        if index <= offset:
            raise Compacted(f"index {index} is already compacted (snapshot at {offset})")
        if index > self.last_index():
            raise ValueError(f"compact {index} is beyond the last index {self.last_index()}")
        dummy = Entry(term=self._ents[index - offset].term, index=index)
        self._ents = [dummy, *self._ents[index - offset + 1 :]]

    def append(self, entries: Sequence[Entry]) -> None:
        """Append entries, truncating any existing suffix they overwrite."""
        if not entries:
            return
        first = self.first_index()
        if entries[-1].index < first:
            return  # everything is already covered by the snapshot
        if entries[0].index < first:
            entries = entries[first - entries[0].index :]
        pos = entries[0].index - self._ents[0].index
        if pos > len(self._ents):
            raise ValueError(f"missing log entries: last {self.last_index()}, appending {entries[0].index}")
        del self._ents[pos:]
        self._ents.extend(entries)
