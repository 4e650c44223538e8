"""The store benchmark's workloads, run through ``EtcdBenchClient`` against whichever system listens.

Four workloads, each measured with ``clients`` concurrent asyncio workers that issue one request at
a time until the deadline (a warm-up first, whose figures are dropped):

- ``put``: puts of unique 8-byte keys;
- ``get``: linearizable single-key Ranges over a preloaded key set (``GET_KEYS`` keys);
- ``txn``: compare-and-swap on a shared key set (``TXN_KEYS`` keys, contended by every worker): one
  Txn comparing the key's mod_revision with the one the worker last saw, a put on success and a
  read on failure (which refreshes what the worker knows), so a mix of writes and reads;
- ``watch``: 64 watch streams on one prefix while the workers put under it; the figure is events
  delivered per second over all watchers, and the latency runs from a put's send to each
  watcher's receipt of its event (``bench.etcd_watch_workload``).

The request stream is the same for both systems: worker ``w`` of a measurement draws its keys and
values from ``random.Random`` seeded by (``Spec.seed``, ``w``), and keys embed the measurement's
``tag``, the worker and a sequence number (``key``). A system that completes more requests has
gone further along the same stream.

Each run also reports what the system says it did: the revision before and after (warm-up
included), which must advance by exactly ``writes`` (puts, successful swaps), and for ``watch``
the events delivered, which must be ``puts * WATCHERS``, each watcher seeing every put once and
in revision order. A failed request or a broken count fails the measurement: no figures.
The log syncs (``fsyncs``) are counted the same way where the system reports them.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.etcd_bench_client import EtcdBenchClient

WORKLOADS = ("put", "get", "txn", "watch")
GET_KEYS = 1000
TXN_KEYS = 100
VALUE_POOL = 16
PRELOAD_BATCH = 100  # puts per preload Txn (etcd's default --max-txn-ops is 128)
PRELOAD_WORKER = 0xFFFF  # the worker field of preloaded keys: no measuring worker has it
RUN_SLACK_S = 60.0  # a measurement that overruns its duration by this much is a failure

Op = Callable[[], Awaitable[None]]


# ---- the request stream --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One measurement. ``tag`` (unique within a store's life) keeps its keys apart from others'."""

    workload: str
    clients: int
    value_bytes: int
    duration_s: float
    warmup_s: float
    tag: int
    seed: int

    def __post_init__(self) -> None:
        if self.workload not in WORKLOADS:
            raise ValueError(f"unknown workload {self.workload!r} (known: {', '.join(WORKLOADS)})")
        if not 0 < self.tag < 0xFFFF:
            raise ValueError(f"tag must be within (0, 65535), not {self.tag}")
        if self.clients <= 0 or self.clients >= PRELOAD_WORKER:
            raise ValueError(f"clients must be within [1, {PRELOAD_WORKER}), not {self.clients}")


def seed_for(workload: str, replicas: int, clients: int, value_bytes: int) -> int:
    """The seed of a configuration: the same for every system measured on it."""
    return zlib.crc32(f"{workload}/{replicas}/{clients}/{value_bytes}".encode())


def key(tag: int, worker: int, seq: int) -> bytes:
    """An 8-byte key (etcd's benchmark default size): tag, worker, sequence number, big-endian."""
    return struct.pack(">HHI", tag, worker, seq)


def prefix_range(tag: int) -> tuple[bytes, bytes]:
    """[key, range_end) holding every key of ``tag``."""
    return struct.pack(">H", tag), struct.pack(">H", tag + 1)


def values_for(seed: int, value_bytes: int) -> list[bytes]:
    """``VALUE_POOL`` pseudo-random (incompressible) values of ``value_bytes``, from ``seed``."""
    rng = random.Random(seed)
    return [rng.randbytes(value_bytes) for _ in range(VALUE_POOL)]


class RequestStream:
    """What worker ``worker`` of a measurement sends next: deterministic in (seed, worker)."""

    def __init__(self, spec: Spec, worker: int, values: Sequence[bytes]):
        self._rng = random.Random(spec.seed * 65_537 + worker)
        self._values = values
        self._tag = spec.tag
        self.worker = worker
        self.seq = 0

    def next_key(self) -> bytes:
        self.seq += 1
        return key(self._tag, self.worker, self.seq)

    def value(self) -> bytes:
        return self._values[self._rng.randrange(len(self._values))]

    def index(self, n: int) -> int:
        return self._rng.randrange(n)


# ---- measurement ---------------------------------------------------------------------------


def percentile(sorted_values: Sequence[int | float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of an ascending, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within [0, 100], not {q}")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[rank - 1])


def summarize(latencies_ns: Sequence[int], elapsed_ns: int) -> dict[str, float]:
    """ops_per_s over the elapsed wall time; p50/p99 of the per-op latencies, in ms."""
    if not latencies_ns:
        raise ValueError("no operation completed")
    if elapsed_ns <= 0:
        raise ValueError("elapsed time must be positive")
    lat = sorted(latencies_ns)
    return {
        "ops_per_s": round(len(lat) / (elapsed_ns / 1e9), 1),
        "p50_ms": round(percentile(lat, 50) / 1e6, 3),
        "p99_ms": round(percentile(lat, 99) / 1e6, 3),
    }


async def drive(ops: Sequence[Op], duration_s: float) -> tuple[list[int], int]:
    """Run one worker per op, each calling it sequentially until ``duration_s``; (latencies, elapsed).

    A worker starts no request after the deadline; the elapsed time runs until the last one ends.
    Any failed request fails the whole measurement (no partial figures).
    """
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(duration_s * 1e9)

    async def worker(op: Op) -> None:
        rec = latencies.append
        while clock() < deadline:
            t0 = clock()
            await op()
            rec(clock() - t0)

    async with asyncio.timeout(duration_s + RUN_SLACK_S), asyncio.TaskGroup() as tg:
        for op in ops:
            tg.create_task(worker(op))
    return latencies, clock() - start


Counter = Callable[[], Awaitable[int | None]]


@dataclass
class Phases:
    """The warm-up and timed phases of one measurement, and the system's counts around both.

    ``revision_delta`` is how far the store's revision moved from just before the warm-up to just
    after the timed phase (preloads are outside); ``fsyncs`` the same for the log-sync counter
    (None when the system does not report one).
    """

    client: EtcdBenchClient
    fsyncs: Counter | None = None
    timed: bool = False  # False during the warm-up, True once the timed phase has started
    timed_start_ns: int = 0
    warm_requests: int = 0
    latencies: list[int] = field(default_factory=list)
    elapsed_ns: int = 0
    revision_delta: int = 0
    fsync_delta: int | None = None

    async def run(self, ops: Sequence[Op], spec: Spec) -> None:
        sync0 = await self.fsyncs() if self.fsyncs else None
        rev0 = await self.client.revision()
        if spec.warmup_s > 0:
            warm, _ = await drive(ops, spec.warmup_s)
            self.warm_requests = len(warm)
        self.timed, self.timed_start_ns = True, time.perf_counter_ns()
        self.latencies, self.elapsed_ns = await drive(ops, spec.duration_s)
        self.revision_delta = await self.client.revision() - rev0
        sync1 = await self.fsyncs() if self.fsyncs else None
        self.fsync_delta = None if sync0 is None or sync1 is None else sync1 - sync0

    @property
    def requests(self) -> int:
        return self.warm_requests + len(self.latencies)

    def figures(
        self, writes: int, latencies: Sequence[int] | None = None, elapsed_ns: int | None = None
    ) -> dict[str, Any]:
        """The row's figures (of the requests timed, unless given others); fails if the revision
        did not advance by exactly ``writes``."""
        if self.revision_delta != writes:
            raise RuntimeError(f"the revision advanced by {self.revision_delta} for {writes} writes")
        return {
            **summarize(
                self.latencies if latencies is None else latencies,
                self.elapsed_ns if elapsed_ns is None else elapsed_ns,
            ),
            "requests": self.requests,
            "writes": writes,
            "revision_delta": self.revision_delta,
            "fsyncs": self.fsync_delta,
            "fsync": None if self.fsync_delta is None else self.fsync_delta > 0,
        }


async def preload(client: EtcdBenchClient, spec: Spec, n: int, values: Sequence[bytes]) -> int:
    """Put ``key(tag, PRELOAD_WORKER, i)`` for i < n in Txns of ``PRELOAD_BATCH``; the last revision."""
    rng = random.Random(spec.seed)
    items = [(key(spec.tag, PRELOAD_WORKER, i), values[rng.randrange(len(values))]) for i in range(n)]
    revision = 0
    for start in range(0, n, PRELOAD_BATCH):
        revision = await client.put_all(items[start : start + PRELOAD_BATCH])
    return revision


# ---- the workloads -------------------------------------------------------------------------


async def run_put(
    client: EtcdBenchClient, spec: Spec, values: Sequence[bytes], phases: Phases
) -> dict[str, Any]:
    def op_of(s: RequestStream) -> Op:
        async def op() -> None:
            await client.put(s.next_key(), s.value())

        return op

    await phases.run([op_of(RequestStream(spec, w, values)) for w in range(spec.clients)], spec)
    return phases.figures(writes=phases.requests)


async def run_get(
    client: EtcdBenchClient, spec: Spec, values: Sequence[bytes], phases: Phases
) -> dict[str, Any]:
    await preload(client, spec, GET_KEYS, values)

    def op_of(s: RequestStream) -> Op:
        async def op() -> None:
            k = key(spec.tag, PRELOAD_WORKER, s.index(GET_KEYS))
            kvs = await client.get(k)
            if len(kvs) != 1 or len(kvs[0].value) != spec.value_bytes:
                raise RuntimeError(f"get {k!r}: {len(kvs)} keys, not the preloaded value")

        return op

    await phases.run([op_of(RequestStream(spec, w, values)) for w in range(spec.clients)], spec)
    return phases.figures(writes=0)


async def run_txn(
    client: EtcdBenchClient, spec: Spec, values: Sequence[bytes], phases: Phases
) -> dict[str, Any]:
    loaded_at = await preload(client, spec, TXN_KEYS, values)
    outcomes = {True: 0, False: 0}

    def op_of(s: RequestStream) -> Op:
        seen = dict.fromkeys(range(TXN_KEYS), loaded_at)  # the key's mod_revision this worker knows

        async def op() -> None:
            i = s.index(TXN_KEYS)
            swapped, seen[i] = await client.cas(key(spec.tag, PRELOAD_WORKER, i), seen[i], s.value())
            outcomes[swapped] += 1

        return op

    await phases.run([op_of(RequestStream(spec, w, values)) for w in range(spec.clients)], spec)
    return {
        **phases.figures(writes=outcomes[True]),
        "cas_succeeded": outcomes[True],
        "cas_failed": outcomes[False],
    }


Runner = Callable[[EtcdBenchClient, Spec, Sequence[bytes], Phases], Awaitable[dict[str, Any]]]
RUNNERS: dict[str, Runner] = {"put": run_put, "get": run_get, "txn": run_txn}
