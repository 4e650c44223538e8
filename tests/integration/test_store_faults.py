"""The replicated store under faults: linearizability, durability, convergence, watch resumption.

Three real replica actors. Six clients run get / put / compare-and-swap / delete on eight keys
while a nemesis SIGKILLs the leader or a follower (Ray restarts it; it recovers from its WAL),
pauses the leader with SIGSTOP past an election timeout, and partitions the leader or a follower
(all Raft traffic to and from it dropped). Afterwards:

* the recorded history is linearizable (porcupine's algorithm, per key);
* every replica has the same KV hash;
* after SIGKILLing all three replicas at once, every acknowledged write is still there;
* a watcher that kept resuming across all of it saw every change exactly once, in order.

The operation count is CI-sized; RAYKUBE_FAULT_OPS raises it for nightly runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from cluster.bootstrap import deploy_store, teardown, wait_until_serving
from cluster.store.client import StoreClient, Unavailable
from cluster.store.linearizability import UNKNOWN_RETURN, CheckResult, Operation, check_operations, kv_model
from cluster.store.mvcc import EventType, RangeOp, StoreError, prefix_end
from cluster.store.replica import ReplicaOptions

pytestmark = pytest.mark.integration

TARGET_OPS = int(os.environ.get("RAYKUBE_FAULT_OPS", "5000"))
KEYS = [f"/lin/k{i}".encode() for i in range(8)]
FAST = ReplicaOptions(tick_seconds=0.05, election_tick=10, snapshot_entries=2000, keep_entries=500)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(namespace="raykube-tests", include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture
def store(ray_local: None, tmp_path: Path) -> Iterator[tuple[str, list[Any]]]:
    namespace = f"faults-{os.getpid()}-{time.monotonic_ns()}"
    handles, _ = deploy_store(3, tmp_path / "data", namespace, FAST, detached=False)
    asyncio.run(wait_until_serving(namespace))
    yield namespace, handles
    teardown(namespace)


async def _statuses(handles: list[Any]) -> list[dict[str, Any] | None]:
    async def one(h: Any) -> dict[str, Any] | None:
        try:
            st: dict[str, Any] = await asyncio.wait_for(h.status.remote(), 2.0)
            return st
        except Exception:
            return None

    return list(await asyncio.gather(*(one(h) for h in handles)))


async def _leader_index(handles: list[Any]) -> int | None:
    for i, st in enumerate(await _statuses(handles)):
        if st and st["role"] == "leader":
            return i
    return None


class Recorder:
    def __init__(self) -> None:
        self.history: list[Operation] = []
        self.acked_unique: dict[bytes, bytes] = {}
        self.ok = 0
        self.unknown = 0


async def _client_loop(
    cid: int, namespace: str, rec: Recorder, stop: asyncio.Event, rng: random.Random
) -> None:
    # Half the clients wait long enough to still be queued at a paused leader when it resumes, which
    # is when a leader that served reads from local state (no ReadIndex) would answer stale.
    patient = cid % 2 == 0
    client = await StoreClient.connect(
        namespace, request_timeout=5.0 if patient else 1.0, deadline=12.0 if patient else 4.0
    )
    n = 0
    while not stop.is_set():
        n += 1
        key = rng.choice(KEYS)
        kind = rng.choices(["get", "put", "cas", "delete", "unique"], [40, 30, 15, 5, 10])[0]
        value = f"c{cid}-{n}".encode()
        call = time.monotonic_ns()
        inp: Any
        try:
            if kind == "get":
                inp = ("get", key)
                kv = await client.get(key)
                out: Any = (kv.value, kv.mod_revision) if kv else (None, 0)
            elif kind == "put":
                inp = ("put", key, value)
                out = (await client.put(key, value)).revision
            elif kind == "cas":
                kv = await client.get(key, serializable=True)
                expected = kv.mod_revision if kv else 0
                inp = ("cas", key, expected, value)
                res = await client.compare_and_put(key, expected, value)
                out = (res.succeeded, res.revision if res.succeeded else None)
            elif kind == "delete":
                inp = ("delete", key)
                out = (await client.delete(key)).deleted
            else:
                ukey = f"/ack/c{cid}/{n}".encode()
                await client.put(ukey, value)
                rec.acked_unique[ukey] = value
                continue
        except (Unavailable, TimeoutError):
            if kind in ("put", "cas", "delete"):
                rec.history.append(Operation(cid, inp, call, None, UNKNOWN_RETURN))
                rec.unknown += 1
            continue
        except StoreError:
            continue
        rec.history.append(Operation(cid, inp, call, out, time.monotonic_ns()))
        rec.ok += 1
    await client.close()


async def _nemesis(handles: list[Any], stop: asyncio.Event, rng: random.Random, log: list[str]) -> None:
    while not stop.is_set():
        await asyncio.sleep(rng.uniform(1.5, 3.0))
        if stop.is_set():
            return
        leader = await _leader_index(handles)
        fault = rng.choice(
            ["kill-leader", "kill-follower", "partition-leader", "partition-follower", "pause-leader"]
        )
        if leader is None:
            continue
        victim = leader if fault.endswith("leader") else rng.choice([i for i in range(3) if i != leader])
        if fault == "pause-leader":
            # SIGSTOP longer than an election timeout: the others elect a new leader; on SIGCONT the old
            # one still believes it leads until it hears the new term (its reads must not be stale).
            try:
                pid = await asyncio.wait_for(handles[victim].pid.remote(), 2.0)
            except Exception:
                continue
            os.kill(pid, signal.SIGSTOP)
            log.append(f"{fault} store-{victim + 1} (pid {pid})")
            await asyncio.sleep(rng.uniform(1.5, 3.0))
            os.kill(pid, signal.SIGCONT)
        elif fault.startswith("kill"):
            try:
                pid = await asyncio.wait_for(handles[victim].pid.remote(), 2.0)
            except Exception:
                continue
            os.kill(pid, signal.SIGKILL)
            log.append(f"{fault} store-{victim + 1} (pid {pid})")
        else:
            others = [i + 1 for i in range(3) if i != victim]
            await asyncio.gather(
                handles[victim].set_blocked.remote(others),
                *(handles[i - 1].set_blocked.remote([victim + 1]) for i in others),
            )
            log.append(f"{fault} store-{victim + 1}")
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            await _heal(handles)


async def _heal(handles: list[Any]) -> None:
    for h in handles:
        for _ in range(50):
            try:
                await asyncio.wait_for(h.set_blocked.remote([]), 2.0)
                break
            except Exception:
                await asyncio.sleep(0.2)


async def _watch(namespace: str, start: int, seen: list[tuple[int, bytes, int]], stop: asyncio.Event) -> None:
    client = await StoreClient.connect(namespace, request_timeout=1.0)
    async for resp in client.watch(b"/lin/", prefix_end(b"/lin/"), start, poll_timeout=0.5):
        for ev in resp.events:
            seen.append((ev.kv.mod_revision, ev.kv.key, int(ev.type)))
        if stop.is_set():
            break


async def _converged(handles: list[Any], timeout: float = 60.0) -> list[tuple[int, int, int]]:
    deadline = time.monotonic() + timeout
    hashes: list[tuple[int, int, int]] = []
    while time.monotonic() < deadline:
        try:
            hashes = list(await asyncio.wait_for(asyncio.gather(*(h.kv_hash.remote() for h in handles)), 3.0))
        except Exception:
            await asyncio.sleep(0.3)
            continue
        if len({h for h in hashes}) == 1:
            return hashes
        await asyncio.sleep(0.3)
    return hashes


def test_linearizable_durable_and_convergent_under_kills_and_partitions(store: tuple[str, list[Any]]) -> None:
    namespace, handles = store
    asyncio.run(_scenario(namespace, handles))


async def _scenario(namespace: str, handles: list[Any]) -> None:
    rng = random.Random(20261127)
    rec = Recorder()
    stop_clients, stop_nemesis, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
    admin = await StoreClient.connect(namespace)
    start_rev = (await admin.range(RangeOp(b"/lin/", prefix_end(b"/lin/"), count_only=True))).revision + 1
    faults: list[str] = []
    watched: list[tuple[int, bytes, int]] = []
    watcher = asyncio.create_task(_watch(namespace, start_rev, watched, stop_watch))
    clients = [
        asyncio.create_task(_client_loop(c, namespace, rec, stop_clients, random.Random(rng.random())))
        for c in range(6)
    ]
    nemesis = asyncio.create_task(_nemesis(handles, stop_nemesis, random.Random(rng.random()), faults))
    began = time.monotonic()
    deadline = began + 300
    last_report = began
    while rec.ok < TARGET_OPS and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if time.monotonic() - last_report >= 15:
            last_report = time.monotonic()
            print(f"  t={last_report - began:.0f}s ok={rec.ok} unknown={rec.unknown} faults={len(faults)}")
    stop_nemesis.set()
    await nemesis
    await _heal(handles)
    stop_clients.set()
    await asyncio.gather(*clients)
    print(f"\n{rec.ok} ops acknowledged, {rec.unknown} unknown outcomes, faults: {len(faults)}")
    for f in faults:
        print("  ", f)
    assert rec.ok >= TARGET_OPS, f"only {rec.ok} ops completed"
    assert sum(f.startswith("kill") for f in faults) >= 2, faults
    assert sum(f.startswith("partition") for f in faults) >= 2, faults

    result = check_operations(kv_model(), rec.history, timeout_s=120)
    assert result == CheckResult.OK, f"history of {len(rec.history)} ops is {result}"

    hashes = await _converged(handles)
    assert len(set(hashes)) == 1, f"replicas diverge: {hashes}"

    # The watcher resumed across every fault: it saw each change of /lin/ once, in order.
    final_rev = hashes[0][1]
    while not watched or watched[-1][0] < final_rev:
        if (await admin.range(RangeOp(b"/lin/", prefix_end(b"/lin/"), count_only=True))).revision > final_rev:
            break
        await asyncio.sleep(0.2)
        if watcher.done():
            break
    stop_watch.set()
    await asyncio.wait_for(watcher, 10)
    revisions = [r for r, _, _ in watched]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions), (
        "watch reordered/duplicated"
    )
    fresh: list[tuple[int, bytes, int]] = []
    leader = await _leader_index(handles)
    assert leader is not None
    nxt = start_rev
    while True:
        events, _rev, _compact = await handles[leader].wait_events.remote(
            b"/lin/", prefix_end(b"/lin/"), nxt, 0.0
        )
        if not events:
            break
        fresh.extend((e.kv.mod_revision, e.kv.key, int(e.type)) for e in events)
        nxt = events[-1].kv.mod_revision + 1
    assert watched[: len(fresh)] == fresh, "the resumed watch has a gap"
    assert any(t == int(EventType.DELETE) for _, _, t in fresh)

    # Kill every replica at once: all acknowledged writes come back from the WAL.
    pids = await asyncio.gather(*(h.pid.remote() for h in handles))
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    await wait_until_serving(namespace, timeout=120)
    after = await StoreClient.connect(namespace)
    stored = await after.get_prefix(b"/ack/")
    present = {kv.key: kv.value for kv in stored.kvs}
    missing = [k for k, v in rec.acked_unique.items() if present.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    assert len(rec.acked_unique) > 100
    assert len(set(await _converged(handles))) == 1
