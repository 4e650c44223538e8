"""Tests for the Raft write-ahead log: round trips, torn tails, corruption, crash points, SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cluster.store import wal as wal_module
from cluster.store.raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMetadata
from cluster.store.wal import WAL, Recovered, WALCorrupt, WALFailed, WALLocked

REPO_ROOT = Path(__file__).resolve().parents[3]


def entries(first: int, last: int, term: int = 1, size: int = 8) -> list[Entry]:
    return [Entry(term, i, data=f"{term}:{i}".encode().ljust(size, b".")) for i in range(first, last + 1)]


def reopen(path: Path, **kwargs: Any) -> Recovered:
    wal, rec = WAL.open(path, **kwargs)
    wal.close()
    return rec


def segments(path: Path) -> list[Path]:
    return sorted(path.glob("wal-*.log"))


@pytest.fixture
def wal_dir(tmp_path: Path) -> Path:
    return tmp_path / "wal"


# ---- round trips -------------------------------------------------------------------------------


def test_open_creates_missing_directory_and_recovers_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b"
    rec = reopen(path)
    assert rec == Recovered(snapshot=None, hard_state=HardState(), entries=[], torn_tail_bytes=0)
    assert path.is_dir()


def test_round_trip(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    written = [*entries(1, 3), Entry(2, 4, EntryType.CONF_CHANGE, b"\x00" * 9), Entry(2, 5, data=b"")]
    wal.save(HardState(1, 2, 0), written[:3])
    wal.save(HardState(2, 3, 4), written[3:], sync=False)
    wal.save(None, [])
    wal.close()
    rec = reopen(wal_dir)
    assert rec == Recovered(None, HardState(2, 3, 4), written, 0)


def test_hard_state_alone_and_last_one_wins(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(HardState(1, 1, 0), [])
    wal.save(HardState(3, 0, 0), entries(1, 2))
    wal.save(None, entries(3, 3))
    wal.close()
    rec = reopen(wal_dir)
    assert rec.hard_state == HardState(3, 0, 0)
    assert [e.index for e in rec.entries] == [1, 2, 3]


@pytest.mark.parametrize(
    "segment_bytes", [pytest.param(1 << 20, id="one-segment"), pytest.param(64, id="tiny")]
)
def test_conflicting_suffix_is_overwritten(wal_dir: Path, segment_bytes: int) -> None:
    wal, _ = WAL.open(wal_dir, segment_bytes=segment_bytes)
    wal.save(HardState(1, 1, 2), entries(1, 6, term=1))
    wal.save(HardState(2, 2, 2), entries(3, 4, term=2))  # a new leader overwrote 3.. with a shorter log
    wal.save(None, entries(5, 5, term=3))
    wal.close()
    rec = reopen(wal_dir, segment_bytes=segment_bytes)
    assert rec.entries == entries(1, 2, term=1) + entries(3, 4, term=2) + entries(5, 5, term=3)
    if segment_bytes == 64:
        assert len(segments(wal_dir)) > 1


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        pytest.param(entries(5, 6), "outside", id="gap-after-last"),
        pytest.param([*entries(2, 2), *entries(4, 4)], "contiguous", id="gap-inside-batch"),
    ],
)
def test_save_refuses_a_log_recovery_would_reject(wal_dir: Path, batch: list[Entry], message: str) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(None, entries(1, 3))
    with pytest.raises(ValueError, match=message):
        wal.save(None, batch)
    wal.save(None, entries(4, 4))  # a refused batch writes nothing and does not poison the WAL
    wal.close()
    assert [e.index for e in reopen(wal_dir).entries] == [1, 2, 3, 4]


def test_rollover_keeps_everything_and_size_is_tracked(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir, segment_bytes=1000)
    for i in range(1, 101):
        wal.save(HardState(1, 0, i - 1), entries(i, i, size=50), sync=i % 10 == 0)
    size = wal.size_bytes
    wal.close()
    assert len(segments(wal_dir)) > 5
    assert size == sum(p.stat().st_size for p in segments(wal_dir))
    rec = reopen(wal_dir, segment_bytes=1000)
    assert rec.entries == entries(1, 100, size=50)
    assert rec.hard_state == HardState(1, 0, 99)


def test_second_open_of_same_directory_is_refused(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    with pytest.raises(WALLocked):
        WAL.open(wal_dir)
    wal.close()
    reopen(wal_dir)


# ---- torn tails and corruption ------------------------------------------------------------------


def test_torn_tail_at_every_byte_of_last_record(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(HardState(1, 1, 1), entries(1, 3))
    (segment,) = segments(wal_dir)
    good = segment.stat().st_size
    wal.save(None, [Entry(1, 4, data=b"last-record-payload")])
    wal.close()
    full = segment.read_bytes()
    assert len(full) > good
    for cut in range(good, len(full)):
        segment.write_bytes(full[:cut])
        rec = reopen(wal_dir)
        assert rec.entries == entries(1, 3), cut
        assert rec.hard_state == HardState(1, 1, 1)
        assert rec.torn_tail_bytes == cut - good
        assert segment.stat().st_size == good  # truncated on disk, so appends follow valid data
    segment.write_bytes(full)
    assert reopen(wal_dir).entries == [*entries(1, 3), Entry(1, 4, data=b"last-record-payload")]


def test_append_after_torn_tail_recovers_new_records(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(None, entries(1, 3))
    wal.close()
    (segment,) = segments(wal_dir)
    segment.write_bytes(segment.read_bytes()[:-5])
    wal, rec = WAL.open(wal_dir)
    assert rec.torn_tail_bytes > 0 and rec.entries == entries(1, 2)
    wal.save(None, entries(3, 4, term=2))
    wal.close()
    assert reopen(wal_dir) == Recovered(None, HardState(), entries(1, 2) + entries(3, 4, term=2), 0)


def flip_bit(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


def test_flipped_bit_in_last_record_is_a_torn_tail(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(None, entries(1, 3))
    (segment,) = segments(wal_dir)
    good = segment.stat().st_size
    wal.save(None, entries(4, 4))
    wal.close()
    full = segment.stat().st_size
    flip_bit(segment, full - 2)
    rec = reopen(wal_dir)
    assert rec.entries == entries(1, 3)
    assert rec.torn_tail_bytes == full - good
    assert segment.stat().st_size == good


def test_flipped_bit_in_older_segment_is_corruption(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir, segment_bytes=200)
    for i in range(1, 31):
        wal.save(None, entries(i, i, size=40))
    wal.close()
    older = segments(wal_dir)[1]
    # The second record of an older segment: its header starts right after the first record.
    first_len = int.from_bytes(older.read_bytes()[:4], "little")
    second = wal_module._HEADER.size + first_len
    flip_bit(older, second + wal_module._HEADER.size + 20)
    with pytest.raises(WALCorrupt) as err:
        WAL.open(wal_dir, segment_bytes=200)
    assert err.value.path == str(older)
    assert err.value.offset == second
    assert "checksum" in err.value.reason


def test_missing_middle_segment_is_corruption(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir, segment_bytes=100)
    for i in range(1, 20):
        wal.save(None, entries(i, i, size=40))
    wal.close()
    segments(wal_dir)[2].unlink()
    with pytest.raises(WALCorrupt, match="missing"):
        WAL.open(wal_dir)


# ---- snapshots ----------------------------------------------------------------------------------


def snapshot_at(index: int, term: int = 1) -> Snapshot:
    return Snapshot(SnapshotMetadata(index, term, ConfState((1, 2, 3))), data=f"state@{index}".encode())


def test_snapshot_then_more_saves_then_reopen(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir, segment_bytes=300)
    wal.save(HardState(1, 1, 8), entries(1, 10))
    wal.save_snapshot(snapshot_at(8), HardState(1, 1, 8), entries(9, 10))
    wal.save(HardState(2, 1, 10), entries(11, 20, term=2))
    wal.save(None, entries(15, 16, term=3))
    wal.close()
    rec = reopen(wal_dir)
    assert rec.snapshot == snapshot_at(8)
    assert rec.hard_state == HardState(2, 1, 10)
    assert rec.entries == entries(9, 10) + entries(11, 14, term=2) + entries(15, 16, term=3)

    wal, _ = WAL.open(wal_dir)
    wal.save_snapshot(snapshot_at(16, term=3), HardState(3, 1, 16), [])
    wal.save(None, entries(17, 17, term=3))
    wal.close()
    assert reopen(wal_dir) == Recovered(snapshot_at(16, 3), HardState(3, 1, 16), entries(17, 17, term=3), 0)
    # Older segments and snapshots are gone: one snapshot, one segment.
    assert [p.name for p in wal_dir.glob("snap-*")] == [wal_module._snapshot_name(16, 3)]
    assert len(segments(wal_dir)) == 1


def test_save_below_snapshot_is_refused(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(None, entries(1, 5))
    wal.save_snapshot(snapshot_at(5), HardState(1, 0, 5), [])
    with pytest.raises(ValueError):
        wal.save(None, entries(5, 6))
    wal.close()


def test_corrupt_snapshot_file_is_reported(wal_dir: Path) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save_snapshot(snapshot_at(3), HardState(1, 0, 3), [])
    wal.close()
    (snap,) = wal_dir.glob("snap-*")
    flip_bit(snap, snap.stat().st_size - 1)
    with pytest.raises(WALCorrupt, match="checksum"):
        WAL.open(wal_dir)


class SimulatedCrash(Exception):
    pass


def crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> Callable[[], int]:
    """Make the ``step``-th durable-I/O call (write, fsync, replace, unlink) crash; partial writes tear."""
    calls = 0

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def fake(*args: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == step:
                if name == "write":  # a torn write: half of it reaches the file
                    fd, data = args
                    real(fd, bytes(data[: len(data) // 2]))
                raise SimulatedCrash(f"{name} #{step}")
            return real(*args)

        monkeypatch.setattr(os, name, fake)

    for name in ("write", "fsync", "replace", "unlink"):
        wrap(name)
    return lambda: calls


def test_crash_at_every_step_of_save_snapshot(wal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old_entries = entries(1, 12)
    new_snapshot, new_entries = snapshot_at(9), entries(10, 12)
    step, outcomes = 0, set()
    while True:
        step += 1
        for p in wal_dir.glob("*"):
            p.unlink()
        wal, _ = WAL.open(wal_dir, segment_bytes=150)
        wal.save(HardState(1, 1, 9), old_entries)  # several segments: cleanup has real work to do
        with monkeypatch.context() as m:
            crash_at(m, step)
            try:
                wal.save_snapshot(new_snapshot, HardState(1, 1, 9), new_entries)
                crashed = False
            except SimulatedCrash:
                crashed = True
        if crashed:
            with pytest.raises(WALFailed):
                wal.save(None, [])
        wal.close()
        rec = reopen(wal_dir)
        assert rec.hard_state == HardState(1, 1, 9)
        if rec.snapshot is None:
            assert rec.entries == old_entries, step
            outcomes.add("old")
        else:
            assert (rec.snapshot, rec.entries) == (new_snapshot, new_entries), step
            outcomes.add("new")
        assert not list(wal_dir.glob("*.tmp"))
        if not crashed:
            break
    assert outcomes == {"old", "new"}
    assert step > 8  # every write/fsync/rename/unlink of save_snapshot was a crash point


def test_failed_write_poisons_the_wal_but_loses_nothing_acknowledged(
    wal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wal, _ = WAL.open(wal_dir)
    wal.save(None, entries(1, 3))
    with monkeypatch.context() as m:
        crash_at(m, 1)
        with pytest.raises(SimulatedCrash):
            wal.save(None, entries(4, 100))
    with pytest.raises(WALFailed):
        wal.save(None, entries(4, 4))
    wal.close()
    rec = reopen(wal_dir)
    # The unacknowledged batch may survive in part (a prefix of whole records), never out of order.
    assert 3 <= len(rec.entries) < 100
    assert rec.entries == entries(1, 100)[: len(rec.entries)]
    assert rec.torn_tail_bytes > 0


# ---- SIGKILL ------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import random, sys
    from cluster.store.raft.types import ConfState, Entry, HardState, Snapshot, SnapshotMetadata
    from cluster.store.wal import WAL

    wal, rec = WAL.open(sys.argv[1], segment_bytes=64 * 1024)
    rng = random.Random(int(sys.argv[2]))
    last = rec.entries[-1].index if rec.entries else (rec.snapshot.metadata.index if rec.snapshot else 0)
    print("ready", flush=True)
    batches = 0
    while True:
        n = rng.randint(1, 200)
        batch = [Entry(1, i, data=b"%d" % i * rng.randint(1, 20)) for i in range(last + 1, last + n + 1)]
        wal.save(HardState(1, 1, last), batch, sync=True)
        last += n
        print(last, flush=True)
        batches += 1
        if batches % 25 == 0:
            snap = Snapshot(SnapshotMetadata(last - 10, 1, ConfState((1,))), b"s%d" % (last - 10))
            wal.save_snapshot(snap, HardState(1, 1, last), batch[-10:])
    """
)


@pytest.mark.parametrize("seed", [1, 2])
def test_sigkill_never_loses_an_acknowledged_entry(wal_dir: Path, seed: int) -> None:
    rng = random.Random(seed)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    acknowledged = 0
    for _ in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(wal_dir), str(rng.randrange(1 << 30))],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        lines: list[str] = []
        reader = threading.Thread(target=lines.extend, args=(proc.stdout,), daemon=True)
        reader.start()
        deadline = time.monotonic() + 20
        while "ready\n" not in lines and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        acked = [int(line) for line in lines if line.strip().isdigit()]
        assert acked, "writer acknowledged nothing before the kill"
        acknowledged = max(acknowledged, *acked)

        rec = reopen(wal_dir, segment_bytes=64 * 1024)
        snap_index = rec.snapshot.metadata.index if rec.snapshot else 0
        last = rec.entries[-1].index if rec.entries else snap_index
        assert last >= acknowledged
        assert [e.index for e in rec.entries] == list(range(snap_index + 1, last + 1))
        assert all(e.data == b"%d" % e.index * (len(e.data) // len(b"%d" % e.index)) for e in rec.entries)
