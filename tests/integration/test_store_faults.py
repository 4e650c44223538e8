"""The replicated store under faults: linearizability, durability, convergence, watch resumption.

Three real replica actors. Six clients run get / put / compare-and-swap / delete on eight keys
while a nemesis SIGKILLs the leader or a follower (Ray restarts it; it recovers from its WAL),
pauses the leader with SIGSTOP past an election timeout, and partitions the leader or a follower
(all Raft traffic to and from it dropped). Afterwards:

* the recorded history is linearizable (porcupine's algorithm, per key);
* every replica has the same KV hash;
* after SIGKILLing all three replicas at once, every acknowledged write is still there;
* a watcher that kept resuming across all of it saw every change exactly once, in order.

Two shorter tests check the actor's side of fail stop (a leader whose fsync fails exits its
process, Ray restarts it, nothing acknowledged is lost) and of the empty-data-directory rule (a
replica that Ray restarts on an empty directory awaits replacement instead of voting).

The operation count is CI-sized; RAYKUBE_FAULT_OPS raises it for nightly runs. Progress goes to
the terminal even under pytest's capture (a CI log shows where a slow run is), and every wait has a
deadline that fails with the state printed: revisions, the watcher's position, the replicas' status.
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


def say(msg: str) -> None:
    """Progress for the CI log: the test runs with capture disabled, so this reaches the terminal."""
    print(f"[store-faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


async def _bounded(what: str, aw: Any, timeout: float, state: Any = None) -> Any:
    """Await ``aw`` for at most ``timeout`` s; on timeout fail with ``state()`` (a coroutine) printed."""
    try:
        return await asyncio.wait_for(aw, timeout)
    except TimeoutError:
        detail = await state() if state is not None else ""
        raise AssertionError(f"timed out after {timeout:.0f}s: {what}. State: {detail}") from None


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
            say(f"fault {len(log)}: {log[-1]}")
            await asyncio.sleep(rng.uniform(1.5, 3.0))
            os.kill(pid, signal.SIGCONT)
        elif fault.startswith("kill"):
            try:
                pid = await asyncio.wait_for(handles[victim].pid.remote(), 2.0)
            except Exception:
                continue
            os.kill(pid, signal.SIGKILL)
            log.append(f"{fault} store-{victim + 1} (pid {pid})")
            say(f"fault {len(log)}: {log[-1]}")
        else:
            others = [i + 1 for i in range(3) if i != victim]
            try:
                await asyncio.wait_for(
                    asyncio.gather(
                        handles[victim].set_blocked.remote(others),
                        *(handles[i - 1].set_blocked.remote([victim + 1]) for i in others),
                    ),
                    10,
                )
            except Exception as e:  # a replica restarting after a kill: heal and try another fault
                say(f"partition of store-{victim + 1} not set up ({e!r})")
                await _heal(handles)
                continue
            log.append(f"{fault} store-{victim + 1}")
            say(f"fault {len(log)}: {log[-1]}")
            await asyncio.sleep(rng.uniform(1.0, 2.5))
            await _heal(handles)


async def _heal(handles: list[Any]) -> None:
    for i, h in enumerate(handles):
        for _ in range(50):
            try:
                await asyncio.wait_for(h.set_blocked.remote([]), 2.0)
                break
            except Exception:
                await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"could not heal store-{i + 1}: {await _statuses(handles)}")


class WatchState:
    """What the resuming watcher has seen: events, and its position (every change at or below it
    has been delivered: the response's progress revision)."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, bytes, int]] = []
        self.position = 0
        self.responses = 0


async def _watch(namespace: str, start: int, state: WatchState, stop: asyncio.Event) -> None:
    client = await StoreClient.connect(namespace, request_timeout=1.0)
    async for resp in client.watch(b"/lin/", prefix_end(b"/lin/"), start, poll_timeout=0.5):
        for ev in resp.events:
            state.seen.append((ev.kv.mod_revision, ev.kv.key, int(ev.type)))
        state.position = resp.revision
        state.responses += 1
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


def test_linearizable_durable_and_convergent_under_kills_and_partitions(
    store: tuple[str, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    namespace, handles = store
    with capsys.disabled():
        print(flush=True)
        asyncio.run(_scenario(namespace, handles))


def _enough(faults: list[str]) -> bool:
    """Every kind of fault happened: two kills, two partitions, a pause."""
    kinds = [f.split("-")[0] for f in faults]
    return kinds.count("kill") >= 2 and kinds.count("partition") >= 2 and kinds.count("pause") >= 1


async def _scenario(namespace: str, handles: list[Any]) -> None:
    rng = random.Random(20261127)
    rec = Recorder()
    stop_clients, stop_nemesis, stop_watch = asyncio.Event(), asyncio.Event(), asyncio.Event()
    admin = await StoreClient.connect(namespace)
    start_rev = (await admin.range(RangeOp(b"/lin/", prefix_end(b"/lin/"), count_only=True))).revision + 1
    faults: list[str] = []
    watch = WatchState()
    watched = watch.seen
    watcher = asyncio.create_task(_watch(namespace, start_rev, watch, stop_watch))

    async def state() -> str:
        last = watched[-1][0] if watched else None
        return (
            f"watcher: {len(watched)} events, last at revision {last}, position {watch.position}, "
            f"{watch.responses} responses, done={watcher.done()}; replicas: {await _statuses(handles)}"
        )

    say(f"start: target {TARGET_OPS} ops, watching /lin/ from revision {start_rev}")
    clients = [
        asyncio.create_task(_client_loop(c, namespace, rec, stop_clients, random.Random(rng.random())))
        for c in range(6)
    ]
    nemesis = asyncio.create_task(_nemesis(handles, stop_nemesis, random.Random(rng.random()), faults))
    began = time.monotonic()
    deadline = began + 300
    last_report = began
    # Until both the operation count and the faults asserted below are reached: on the direct peer
    # transport the target count alone took 9 s, over before the nemesis had killed anything.
    while (rec.ok < TARGET_OPS or not _enough(faults)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            say(f"t={last_report - began:.0f}s ok={rec.ok} unknown={rec.unknown} faults={len(faults)}")
    stop_nemesis.set()
    await _bounded("the nemesis to stop", nemesis, 30, state)
    await _heal(handles)
    stop_clients.set()
    await _bounded("the clients to stop", asyncio.gather(*clients), 60, state)
    say(f"{rec.ok} ops acknowledged, {rec.unknown} unknown outcomes in {time.monotonic() - began:.0f}s")
    say(f"faults ({len(faults)}): " + "; ".join(faults))
    assert rec.ok >= TARGET_OPS, f"only {rec.ok} ops completed"
    assert _enough(faults), faults

    # End on a write outside /lin/ (as a run may by chance: 10% of ops are /ack/ writes), so the
    # final revision carries no /lin/ event and the watcher is waited for by its position.
    await admin.put(b"/ack/final", b"last")
    rec.acked_unique[b"/ack/final"] = b"last"

    t0 = time.monotonic()
    result = check_operations(kv_model(), rec.history, timeout_s=120)
    say(f"linearizability of {len(rec.history)} ops: {result.name} ({time.monotonic() - t0:.1f}s)")
    assert result == CheckResult.OK, f"history of {len(rec.history)} ops is {result}"

    hashes = await _converged(handles)
    assert len(set(hashes)) == 1, f"replicas diverge: {hashes}; {await state()}"
    say(f"replicas converged at (applied, revision, hash) {hashes[0]}")

    # The watcher resumed across every fault: it saw each change of /lin/ once, in order. Wait for
    # its position (progress revision), not for an event at the final revision: the last write of
    # the run may be to another prefix (/ack/), and then no /lin/ event ever carries that revision
    # (the wait that did so hung for good whenever the run ended on an /ack/ write).
    final_rev = hashes[0][1]
    deadline = time.monotonic() + 60
    while watch.position < final_rev:
        if watcher.done():
            raise AssertionError(f"the watcher ended early: {watcher!r}; {await state()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"the watcher did not reach revision {final_rev} in 60s; {await state()}")
        await asyncio.sleep(0.2)
    last_lin = watched[-1][0] if watched else None
    say(f"watcher at position {watch.position} >= final revision {final_rev}; last /lin/ event at {last_lin}")
    assert last_lin is not None and last_lin < final_rev, "the run was meant to end on an /ack/ write"
    stop_watch.set()
    await _bounded("the watcher to stop", watcher, 10, state)
    revisions = [r for r, _, _ in watched]
    assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions), (
        "watch reordered/duplicated"
    )
    fresh: list[tuple[int, bytes, int]] = []
    leader = await _leader_index(handles)
    assert leader is not None
    nxt = start_rev
    while True:
        events, _rev, _compact = await _bounded(
            "the leader's event history",
            handles[leader].wait_events.remote(b"/lin/", prefix_end(b"/lin/"), nxt, 0.0),
            10,
            state,
        )
        if not events:
            break
        fresh.extend((e.kv.mod_revision, e.kv.key, int(e.type)) for e in events)
        nxt = events[-1].kv.mod_revision + 1
    # Every change up to the watcher's position was delivered, in the leader's order, and nothing else.
    upto = [e for e in fresh if e[0] <= watch.position]
    first_diff = next((i for i, (a, b) in enumerate(zip(watched, fresh, strict=False)) if a != b), None)
    assert fresh[: len(watched)] == watched and len(watched) >= len(upto), (
        f"the resumed watch has a gap: {len(watched)} events seen, {len(upto)} in the history up to "
        f"its position {watch.position}, first difference at index {first_diff}"
    )
    assert any(t == int(EventType.DELETE) for _, _, t in fresh)
    say(f"watch saw all {len(fresh)} /lin/ changes once, in order")

    # Kill every replica at once: all acknowledged writes come back from the WAL.
    pids = await _bounded("the replicas' pids", asyncio.gather(*(h.pid.remote() for h in handles)), 10, state)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    say(f"killed all replicas (pids {pids}); waiting for them to recover from their WALs")
    try:
        await wait_until_serving(namespace, timeout=120)
    except Unavailable as e:
        raise AssertionError(f"not serving 120s after kill-all: {e}; {await state()}") from None
    after = await StoreClient.connect(namespace)
    stored = await after.get_prefix(b"/ack/")
    present = {kv.key: kv.value for kv in stored.kvs}
    missing = [k for k, v in rec.acked_unique.items() if present.get(k) != v]
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {missing[:3]}"
    assert len(rec.acked_unique) > 100
    final = await _converged(handles)
    assert len(set(final)) == 1, f"replicas diverge after kill-all: {final}"
    say(f"done: {len(rec.acked_unique)} acknowledged unique writes all present after kill-all")


async def _until(what: str, cond: Any, handles: list[Any], timeout: float = 60.0) -> None:
    """Wait for the coroutine function ``cond`` to return true; on timeout fail with the replicas' status."""
    deadline = time.monotonic() + timeout
    while not await cond():
        if time.monotonic() > deadline:
            status = await _statuses(handles)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}: {status}")
        await asyncio.sleep(0.2)


def test_fsync_failure_fail_stops_the_leader_and_ray_restarts_it(store: tuple[str, list[Any]]) -> None:
    """Fail stop through Ray: the leader whose fsync fails reports it, exits its process, Ray
    restarts it (new pid), its WAL replays, and no acknowledged write is lost."""
    namespace, handles = store

    async def scenario() -> None:
        client = await StoreClient.connect(namespace)
        acked = {f"/fs/{i}".encode(): b"v%d" % i for i in range(50)}
        for k, v in acked.items():
            await client.put(k, v)
        leader = await _leader_index(handles)
        assert leader is not None
        old_pid = await asyncio.wait_for(handles[leader].pid.remote(), 5)
        await asyncio.wait_for(handles[leader].inject_fault.remote("fsync"), 5)
        for i in range(50, 60):  # the first of these makes the leader persist, and fail
            await client.put(b"/fs/%d" % i, b"v%d" % i)
            acked[b"/fs/%d" % i] = b"v%d" % i

        async def restarted() -> bool:
            st = (await _statuses(handles))[leader]
            return st is not None and st["pid"] != old_pid and st["state"] == "ok"

        await _until("the failed leader to be restarted by Ray", restarted, handles)
        stored = await client.get_prefix(b"/fs/")
        assert {kv.key: kv.value for kv in stored.kvs} == acked
        hashes = await _converged(handles)
        assert len(set(hashes)) == 1, f"replicas diverge: {hashes}"
        await client.close()

    asyncio.run(scenario())


def test_replica_restarted_with_an_empty_data_dir_awaits_replacement(
    store: tuple[str, list[Any]], tmp_path: Path
) -> None:
    """Ray restarts a replica whose data directory is gone (as on a node without its disk): it
    must not bootstrap a fresh voter; it says it awaits replacement and the others keep serving."""
    namespace, handles = store

    async def scenario() -> None:
        client = await StoreClient.connect(namespace)
        await client.put(b"/empty/before", b"x")
        leader = await _leader_index(handles)
        assert leader is not None
        victim = (leader + 1) % 3
        rid = victim + 1
        replica_dir = tmp_path / "data" / "store" / f"replica-{rid}"
        pid = await asyncio.wait_for(handles[victim].pid.remote(), 5)
        replica_dir.rename(tmp_path / f"lost-replica-{rid}")
        os.kill(pid, signal.SIGKILL)

        async def awaiting() -> bool:
            st = (await _statuses(handles))[victim]
            return st is not None and st["pid"] != pid and st["state"].startswith("awaiting replacement")

        await _until(f"store-{rid} to await replacement", awaiting, handles)
        status = {st["id"]: st["health"] for st in await client.status()}
        assert status[rid].startswith("awaiting replacement"), status
        for i in range(20):  # the two others still form a quorum
            await client.put(b"/empty/%d" % i, b"y")
        assert len((await client.get_prefix(b"/empty/")).kvs) == 21
        await asyncio.sleep(1.0)
        st = (await _statuses(handles))[victim]
        assert st is not None and st["role"] != "leader" and st["term"] == 0, st
        await client.close()

    asyncio.run(scenario())
