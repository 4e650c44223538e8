"""The Raft log as the core sees it: durable storage plus a not-yet-persisted tail.

``Unstable`` holds what the core has accepted but the caller has not yet persisted: an
optional incoming snapshot and entries starting at ``offset``. ``RaftLog`` stitches storage and
unstable together and tracks ``committed`` / ``applying`` / ``applied``.

Invariants: ``applied <= applying <= committed <= last_index()``; unstable entries are
consecutive from ``offset``; with a pending snapshot, ``offset == snapshot index + 1``.
All operations use index arithmetic and list slices; nothing walks the whole log.
"""

from __future__ import annotations

from collections.abc import Sequence

from .storage import Compacted, Storage, Unavailable, entry_size, limit_size
from .types import Entry, Snapshot


class Unstable:
    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset

    def maybe_first_index(self) -> int | None:
        if self.snapshot is not None:
            return self.snapshot.metadata.index + 1
        return None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.metadata.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            if self.snapshot is not None and self.snapshot.metadata.index == i:
                return self.snapshot.metadata.term
            return None
        if i - self.offset >= len(self.entries):
            return None
        return self.entries[i - self.offset].term

    def stable_to(self, index: int, term: int) -> None:
        """Entries up to ``index`` were persisted (ignored if the entry has since been replaced)."""
        if index < self.offset or self.maybe_term(index) != term:
            return
        del self.entries[: index + 1 - self.offset]
        self.offset = index + 1

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.metadata.index == index:
            self.snapshot = None

    def restore(self, snap: Snapshot) -> None:
        self.offset = snap.metadata.index + 1
        self.entries = []
        self.snapshot = snap

    def truncate_and_append(self, ents: Sequence[Entry]) -> None:
        after = ents[0].index
        if after == self.offset + len(self.entries):
            self.entries.extend(ents)
        elif after <= self.offset:
            # Replaces all unstable entries (and possibly some stable ones).
            self.offset = after
            self.entries = list(ents)
        else:
            del self.entries[after - self.offset :]
            self.entries.extend(ents)

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset : hi - self.offset]


class RaftLog:
    def __init__(self, storage: Storage, max_applying_size: int) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1
        self.max_applying_size = max_applying_size

    # -- indexes and terms ----------------------------------------------------------------

    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return self.storage.first_index() if i is None else i

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return self.storage.last_index() if i is None else i

    def term(self, i: int) -> int:
        """Term of entry ``i``; raises Compacted / Unavailable outside ``[first-1, last]``."""
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        dummy = self.first_index() - 1
        if i < dummy:
            raise Compacted(f"index {i} is compacted")
        if i > self.last_index():
            raise Unavailable(f"index {i} is beyond the last index")
        return self.storage.term(i)

    def term_or_zero(self, i: int) -> int:
        try:
            return self.term(i)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, i: int, term: int) -> bool:
        try:
            return self.term(i) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        """Is a log ending at (``last_index``, ``term``) at least as up to date as ours?"""
        our_term = self.last_term()
        return term > our_term or (term == our_term and last_index >= self.last_index())

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest ``j <= index`` whose term is ``<= term`` (and that term), for fast backtracking.

        Stops at the first index we can no longer read (the compaction point).
        """
        while True:
            try:
                t = self.term(index)
            except (Compacted, Unavailable):
                return index, 0
            if t <= term or index == 0:
                return index, t
            index -= 1

    # -- appending ------------------------------------------------------------------------

    def append(self, ents: Sequence[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise AssertionError(f"append at {ents[0].index} would overwrite committed {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: Sequence[Entry]) -> int:
        """Index of the first entry that is new or disagrees with our log; 0 if all present."""
        last = self.last_index()
        for e in ents:
            if e.index > last:
                return e.index
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def maybe_append(self, index: int, log_term: int, committed: int, ents: Sequence[Entry]) -> int | None:
        """Follower side of APP: returns the last index the message vouches for, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        ci = self.find_conflict(ents)
        if ci:
            if ci <= self.committed:
                raise AssertionError(f"entry {ci} conflicts with committed entry (commit {self.committed})")
            self.append(ents[ci - index - 1 :])
        self.commit_to(min(committed, last_new))
        return last_new

    # -- commit / apply -------------------------------------------------------------------

    def commit_to(self, index: int) -> None:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} is beyond the last index {self.last_index()}")
            self.committed = index

    def maybe_commit(self, index: int, term: int) -> bool:
        """Commit ``index`` if it is above the commit index and from ``term`` (the current term)."""
        if index > self.committed and self.term_or_zero(index) == term:
            self.commit_to(index)
            return True
        return False

    def applied_to(self, index: int) -> None:
        if index <= self.applied:
            return
        if index > self.committed:
            raise AssertionError(f"applied {index} is beyond committed {self.committed}")
        self.applied = index
        self.applying = max(self.applying, index)

    def has_next_committed_ents(self) -> bool:
        return self.committed > max(self.applying, self.first_index() - 1)

    def next_committed_ents(self) -> list[Entry]:
        lo = max(self.applying + 1, self.first_index())
        if self.committed < lo:
            return []
        return self.slice(lo, self.committed + 1, self.max_applying_size)

    # -- reading entries ------------------------------------------------------------------

    def entries(self, lo: int, max_size: int | None) -> list[Entry]:
        if lo > self.last_index():
            return []
        return self.slice(lo, self.last_index() + 1, max_size)

    def slice(self, lo: int, hi: int, max_size: int | None) -> list[Entry]:
        """Entries in ``[lo, hi)`` within ``max_size`` bytes (at least one); raises Compacted."""
        if lo < self.first_index():
            raise Compacted(f"index {lo} is compacted")
        if hi > self.last_index() + 1:
            raise Unavailable(f"slice up to {hi} beyond the last index {self.last_index()}")
        if lo >= hi:
            return []
        off = self.unstable.offset
        if hi <= off:
            return self.storage.entries(lo, hi, max_size)
        if lo >= off:
            return limit_size(self.unstable.slice(lo, hi), max_size)
        stored = self.storage.entries(lo, off, max_size)
        if len(stored) < off - lo:
            return stored  # the size limit was hit within storage
        if max_size is not None:
            used = sum(entry_size(e) for e in stored)
            rest = limit_size(self.unstable.slice(off, hi), max(max_size - used, 0))
            if rest and used + sum(entry_size(e) for e in rest) > max_size:
                rest = []
            return stored + rest
        return stored + self.unstable.slice(off, hi)

    # -- snapshots ------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        if self.unstable.snapshot is not None:
            return self.unstable.snapshot
        return self.storage.snapshot()

    def restore(self, snap: Snapshot) -> None:
        self.committed = snap.metadata.index
        self.unstable.restore(snap)
