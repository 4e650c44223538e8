"""The ``watch`` workload: events per second delivered to ``WATCHERS`` watchers of one prefix.

``WATCHERS`` Watch streams (one gRPC stream each, spread over the client's channels) watch the
measurement's prefix; once every stream has confirmed its watch, the workers put under the prefix
as in the ``put`` workload (warm-up, then the timed phase). When the workers stop, the watchers are
given ``DRAIN_TIMEOUT_S`` to receive the event of the last acknowledged put.

Figures: ``ops_per_s`` is the number of events of timed puts delivered, over all watchers, divided
by the time from the timed phase's start to the receipt of the last of them; the latencies run
from a put's send to a watcher's receipt of its event (one sample per watcher and put).
``puts_per_s`` is the workers' own put rate. Checks: every watcher receives every put once, in
revision order, so ``events == events_expected == puts * WATCHERS``; a canceled or broken stream,
an event of an unknown key, or an event out of order fails the measurement.

All watchers run in the bench's process, as do the workers: at high rates the client's CPU is part
of what is measured, the same for both systems.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from bench.etcd_bench_client import EtcdBenchClient
from bench.etcd_workloads import Op, Phases, RequestStream, Spec, prefix_range
from cluster.store.etcdpb import rpc_pb2

WATCHERS = 64
DRAIN_TIMEOUT_S = 30.0
CREATE_TIMEOUT_S = 30.0


@dataclass
class Watcher:
    """What one watch stream received."""

    index: int
    events: int = 0
    last_revision: int = 0
    last_timed_receipt_ns: int = 0
    latencies: list[int] = field(default_factory=list)


def watch_create(spec: Spec) -> rpc_pb2.WatchRequest:
    """The create request of every watcher of a measurement: its whole prefix, from now on."""
    start, end = prefix_range(spec.tag)
    return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=start, range_end=end))


async def _receive(
    call: Any, w: Watcher, sent: dict[bytes, int], created: asyncio.Event, ready: list[int]
) -> None:
    """Read one stream until it is cancelled; record each event (``sent``: key -> send time, 0 in
    the warm-up). Raises on anything but an in-order event of a put the workers sent."""
    first = await call.read()
    if first is grpc.aio.EOF or not first.created:
        raise RuntimeError(f"watcher {w.index}: no created response ({first})")
    ready[0] += 1
    if ready[0] == WATCHERS:
        created.set()
    clock = time.perf_counter_ns
    while True:
        resp = await call.read()
        if resp is grpc.aio.EOF:
            raise RuntimeError(f"watcher {w.index}: stream ended")
        if resp.canceled:
            raise RuntimeError(f"watcher {w.index}: canceled by the server: {resp.cancel_reason!r}")
        now = clock()
        for ev in resp.events:
            revision = ev.kv.mod_revision
            if revision <= w.last_revision:
                raise RuntimeError(f"watcher {w.index}: revision {revision} after {w.last_revision}")
            t0 = sent.get(ev.kv.key)
            if t0 is None:
                raise RuntimeError(f"watcher {w.index}: event of a key never put: {ev.kv.key!r}")
            w.last_revision = revision
            w.events += 1
            if t0:
                w.latencies.append(now - t0)
                w.last_timed_receipt_ns = now


async def run_watch(
    client: EtcdBenchClient, spec: Spec, values: Sequence[bytes], phases: Phases
) -> dict[str, Any]:
    sent: dict[bytes, int] = {}
    top = [0]  # the highest revision a put was acknowledged at
    watchers = [Watcher(i) for i in range(WATCHERS)]
    created, ready = asyncio.Event(), [0]
    calls = [client.watch_stub(i).Watch() for i in range(WATCHERS)]
    tasks: list[asyncio.Task[None]] = []
    try:
        for call in calls:
            await call.write(watch_create(spec))
        tasks = [asyncio.create_task(_receive(c, w, sent, created, ready)) for c, w in zip(calls, watchers)]
        await _until(created.wait(), tasks, CREATE_TIMEOUT_S, "watch creation")

        def op_of(s: RequestStream) -> Op:
            async def op() -> None:
                k = s.next_key()
                sent[k] = time.perf_counter_ns() if phases.timed else 0
                top[0] = max(top[0], await client.put(k, s.value()))

            return op

        await phases.run([op_of(RequestStream(spec, w, values)) for w in range(spec.clients)], spec)
        await _until(_drained(watchers, top[0]), tasks, DRAIN_TIMEOUT_S, "delivery of the last event")
    finally:
        for call in calls:
            call.cancel()
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks, return_exceptions=True)

    puts = phases.requests
    short = [(w.index, w.events) for w in watchers if w.events != puts]
    if short:
        raise RuntimeError(f"watchers that did not receive each of the {puts} puts once: {short[:8]}")
    latencies = [x for w in watchers for x in w.latencies]
    last = max(w.last_timed_receipt_ns for w in watchers)
    return {
        **phases.figures(writes=puts, latencies=latencies, elapsed_ns=last - phases.timed_start_ns),
        "puts_per_s": round(len(phases.latencies) / (phases.elapsed_ns / 1e9), 1),
        "watchers": WATCHERS,
        "events": sum(w.events for w in watchers),
        "events_expected": puts * WATCHERS,
    }


async def _drained(watchers: Sequence[Watcher], revision: int) -> None:
    while any(w.last_revision < revision for w in watchers):
        await asyncio.sleep(0.005)


async def _until(aw: Any, tasks: Sequence[asyncio.Task[None]], timeout: float, what: str) -> None:
    """Await ``aw`` within ``timeout``, failing early with a watcher's error if one has failed."""
    waiting = asyncio.ensure_future(aw)
    try:
        async with asyncio.timeout(timeout):
            while not waiting.done():
                failed = [t for t in tasks if t.done()]
                if failed:
                    exc = failed[0].exception() if not failed[0].cancelled() else None
                    raise RuntimeError(f"{what}: a watcher stopped: {exc!r}")
                await asyncio.wait([waiting, *tasks], return_when=asyncio.FIRST_COMPLETED)
    except TimeoutError:
        raise TimeoutError(f"{what} took over {timeout:.0f}s") from None
    finally:
        waiting.cancel()
    waiting.result()
