"""Store benchmark: raykube's replicated store against etcd, same harness, same machine.

For each (replicas, clients, value_bytes) the harness warms the target up,
then runs ``clients`` concurrent asyncio workers, each doing sequential puts
of unique 8-byte keys for a fixed duration, timing every put with
``time.perf_counter_ns``. Systems are measured back to back for each
configuration (their order alternates between configurations), so both see
the same machine state. See docs/bench-store.md.

Entry point: ``main(argv)`` (``raykube bench store ...`` / ``python -m bench.store``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import shutil
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import ray

from bench.etcd_peer import EtcdTarget
from bench.store_report import fsync_summary, machine_info, ratios, render
from cluster.bootstrap import (
    connect_ray,
    default_data_dir,
    deploy_store,
    stop_local_ray_if_ours,
    teardown,
    wait_until_serving,
)
from cluster.store.client import StoreClient
from cluster.store.replica import ReplicaOptions

SYSTEMS = ("raykube", "etcd")
FULL_DURATION_S = 5.0
FULL_WARMUP_S = 1.0
QUICK_DURATION_S = 1.5
QUICK_WARMUP_S = 0.3
RUN_SLACK_S = 60.0  # a measurement that overruns its duration by this much is a failure


# ---- targets --------------------------------------------------------------------------------


@runtime_checkable
class Target(Protocol):
    name: str
    replicas: int

    async def start(self) -> None: ...

    async def put(self, key: bytes, value: bytes) -> None: ...

    async def counters(self) -> dict[str, int | None]:
        """What the system itself says it did: ``revision`` (advanced by one per put) and
        ``fsyncs`` (None where the system does not report them)."""
        ...

    async def close(self) -> None: ...


@contextlib.asynccontextmanager
async def start_store_for_bench(
    replicas: int, data_dir: str | os.PathLike[str] | None = None, options: ReplicaOptions | None = None
) -> AsyncIterator[str]:
    """A throw-away store in its own namespace (for benchmarks and tests); yields the namespace."""
    if not ray.is_initialized():
        connect_ray(None, default_data_dir())
    namespace = f"raykube-bench-{uuid.uuid4().hex[:8]}"
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="raykube-bench-")
        data_dir = tmp
    handles: list[Any] = []
    try:
        # Keep the handles: a non-detached actor dies with the last handle to it.
        handles, _ = await asyncio.to_thread(
            deploy_store, replicas, Path(data_dir), namespace, options, detached=False
        )
        await wait_until_serving(namespace)
        yield namespace
    finally:
        del handles
        await asyncio.to_thread(teardown, namespace)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


class RaykubeTarget:
    """raykube's replicated store, started for the bench and driven through its StoreClient.

    Written against the store client API (``cluster.store.client.StoreClient``), on a store
    from ``start_store_for_bench``.
    """

    name = "raykube"

    def __init__(self, replicas: int = 1, *, data_root: str | None = None):
        if replicas not in (1, 3):
            raise ValueError(f"raykube replicas must be 1 or 3, not {replicas}")
        self.replicas = replicas
        self._data_root = data_root
        self._tmp: str | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None

    async def start(self) -> None:
        self._tmp = tempfile.mkdtemp(prefix="raykube-bench-store-", dir=self._data_root)
        self._stack = contextlib.AsyncExitStack()
        namespace = await self._stack.enter_async_context(
            start_store_for_bench(replicas=self.replicas, data_dir=self._tmp)
        )
        self._client = await StoreClient.connect(namespace)
        await self.put(b"\x00raykube-bench-probe", b"ok")

    async def put(self, key: bytes, value: bytes) -> None:
        await self._client.put(key, value)

    async def counters(self) -> dict[str, int | None]:
        """The highest revision over the replicas and the sum of their WAL syncs (``status``)."""
        statuses = await self._client.status()
        healthy = [st for st in statuses if "revision" in st]
        if len(healthy) != self.replicas:
            raise RuntimeError(f"replica status unavailable: {statuses}")
        return {
            "revision": max(int(st["revision"]) for st in healthy),
            "fsyncs": sum(int(st["wal_fsyncs"]) for st in healthy),
        }

    async def close(self) -> None:
        client, self._client = self._client, None
        stack, self._stack = self._stack, None
        try:
            if client is not None:
                await client.close()
        finally:
            try:
                if stack is not None:
                    await stack.aclose()
            finally:
                if self._tmp is not None:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None


def make_target(system: str, replicas: int, *, data_root: str | None = None) -> Target:
    if system == "etcd":
        return EtcdTarget(members=replicas, data_root=data_root)
    if system == "raykube":
        return RaykubeTarget(replicas=replicas, data_root=data_root)
    raise ValueError(f"unknown system {system!r}")


# ---- measurement ----------------------------------------------------------------------------


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


class KeySource:
    """Unique 8-byte keys (big-endian counter), like etcd's benchmark default key size."""

    def __init__(self, start: int = 1):
        self._it = itertools.count(start)

    def next(self) -> bytes:
        return struct.pack(">Q", next(self._it))


async def drive(
    target: Target, clients: int, value: bytes, duration_s: float, keys: KeySource
) -> tuple[list[int], int]:
    """Run ``clients`` workers of sequential puts for ``duration_s``; return (latencies_ns, elapsed_ns).

    A worker starts no put after the deadline; the elapsed time runs until the last put ends.
    Any failed put fails the whole measurement (no partial figures).
    """
    latencies: list[int] = []
    clock = time.perf_counter_ns
    start = clock()
    deadline = start + int(duration_s * 1e9)

    async def worker() -> None:
        put, rec = target.put, latencies.append
        while clock() < deadline:
            key = keys.next()
            t0 = clock()
            await put(key, value)
            rec(clock() - t0)

    async with asyncio.timeout(duration_s + RUN_SLACK_S), asyncio.TaskGroup() as tg:
        for _ in range(clients):
            tg.create_task(worker())
    return latencies, clock() - start


async def measure(
    target: Target, clients: int, value_bytes: int, duration_s: float, warmup_s: float, keys: KeySource
) -> dict[str, Any]:
    """The summary of the timed puts, plus the counts a reader can check against the system.

    ``puts`` counts every put sent (warmup included); ``revision_delta`` and ``fsyncs`` are what the
    system reports it did over the same span (``counters`` before and after), so ``revision_delta ==
    puts`` and ``fsync`` (fsyncs > 0) are facts of this run, not claims.
    """
    value = os.urandom(value_bytes)  # incompressible; the same size for every system
    before = await target.counters()
    warm: list[int] = []
    if warmup_s > 0:
        warm, _ = await drive(target, clients, value, warmup_s, keys)
    latencies, elapsed = await drive(target, clients, value, duration_s, keys)
    after = await target.counters()
    return {**summarize(latencies, elapsed), **count_fields(len(warm) + len(latencies), before, after)}


def count_fields(
    puts: int, before: dict[str, int | None], after: dict[str, int | None]
) -> dict[str, int | bool | None]:
    """``puts``, ``revision_delta``, ``fsyncs`` and ``fsync`` of one measurement (None: not reported)."""

    def delta(name: str) -> int | None:
        a, b = after.get(name), before.get(name)
        return None if a is None or b is None else a - b

    fsyncs = delta("fsyncs")
    return {
        "puts": puts,
        "revision_delta": delta("revision"),
        "fsyncs": fsyncs,
        "fsync": None if fsyncs is None else fsyncs > 0,
    }


def _error_text(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    if isinstance(e, BaseExceptionGroup):
        text = "; ".join(_error_text(x) for x in e.exceptions)
    return text[:500]


# ---- the suite ------------------------------------------------------------------------------


@dataclass
class Config:
    systems: list[str]
    replicas: list[int]
    clients: list[int]
    value_bytes: list[int]
    duration_s: float
    warmup_s: float
    data_root: str | None = None


def _entry(system: str, replicas: int, clients: int, value_bytes: int) -> dict[str, Any]:
    return {"system": system, "replicas": replicas, "clients": clients, "value_bytes": value_bytes}


def _error_entry(system: str, replicas: int, clients: int, value_bytes: int, error: str) -> dict[str, Any]:
    e = _entry(system, replicas, clients, value_bytes)
    e.update(ops_per_s=None, p50_ms=None, p99_ms=None, error=error)
    return e


async def run_suite(cfg: Config, progress: Any = None) -> list[dict[str, Any]]:
    """Measure every configuration; systems interleaved per configuration."""
    results: list[dict[str, Any]] = []
    say = progress or (lambda msg: None)
    for replicas in cfg.replicas:
        targets: dict[str, Target] = {}
        start_errors: dict[str, str] = {}
        keys = {s: KeySource() for s in cfg.systems}
        try:
            for system in cfg.systems:
                say(f"starting {system} (replicas={replicas})")
                t = make_target(system, replicas, data_root=cfg.data_root)
                try:
                    await t.start()
                    targets[system] = t
                except Exception as e:  # recorded, the other system still runs
                    start_errors[system] = f"start failed: {_error_text(e)}"
                    say(f"[red]{system} (replicas={replicas}) {start_errors[system]}[/red]")
                    with contextlib.suppress(Exception):
                        await t.close()
            combos = list(itertools.product(cfg.clients, cfg.value_bytes))
            for i, (clients, value_bytes) in enumerate(combos):
                order = cfg.systems if i % 2 == 0 else list(reversed(cfg.systems))
                by_system: dict[str, dict[str, Any]] = {}
                for system in order:
                    if system in start_errors:
                        by_system[system] = _error_entry(
                            system, replicas, clients, value_bytes, start_errors[system]
                        )
                        continue
                    say(f"{system} replicas={replicas} clients={clients} value_bytes={value_bytes}")
                    try:
                        fig = await measure(
                            targets[system], clients, value_bytes, cfg.duration_s, cfg.warmup_s, keys[system]
                        )
                        by_system[system] = {**_entry(system, replicas, clients, value_bytes), **fig}
                    except Exception as e:  # recorded, never replaced by numbers
                        by_system[system] = _error_entry(
                            system, replicas, clients, value_bytes, _error_text(e)
                        )
                results.extend(by_system[s] for s in cfg.systems)
        finally:
            for t in targets.values():
                say(f"stopping {t.name} (replicas={replicas})")
                with contextlib.suppress(Exception):
                    await t.close()
    return results


# ---- CLI ------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from e
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _systems(text: str) -> list[str]:
    values = [x.strip() for x in text.split(",") if x.strip()]
    bad = [v for v in values if v not in SYSTEMS]
    if not values or bad:
        raise argparse.ArgumentTypeError(f"systems must be among {','.join(SYSTEMS)}, got {text!r}")
    return list(dict.fromkeys(values))


def _replicas(text: str) -> list[int]:
    values = _int_list(text)
    if any(v not in (1, 3) for v in values):
        raise argparse.ArgumentTypeError(f"replicas must be 1 and/or 3, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raykube bench store",
        description="Put throughput/latency of raykube's store vs etcd (durable writes, loopback).",
    )
    p.add_argument("--quick", action="store_true", help="short durations; whole run well under 3 minutes")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument("--systems", type=_systems, default=list(SYSTEMS), help="default: raykube,etcd")
    p.add_argument("--replicas", type=_replicas, default=[1, 3], help="default: 1,3")
    p.add_argument("--clients", type=_int_list, default=[1, 16, 64], help="default: 1,16,64")
    p.add_argument("--value-bytes", type=_int_list, default=[256, 4096], help="default: 256,4096")
    p.add_argument(
        "--data-root", default=None, help="where temporary data dirs go (default: system temp dir)"
    )
    # Hidden knobs for tests and experiments.
    p.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=None, help=argparse.SUPPRESS)
    return p


@contextlib.contextmanager
def ray_for(systems: Sequence[str]) -> Iterator[None]:
    """Join the running Ray for the raykube side, or start a local one and stop it afterwards.

    Without this the store's ``start_store_for_bench`` would start a Ray head that outlives the bench.
    """
    if "raykube" not in systems:
        yield
        return
    marker_dir = Path(tempfile.mkdtemp(prefix="raykube-bench-store-ray-"))
    try:
        started = connect_ray(None, marker_dir)
        try:
            yield
        finally:
            if started:
                stop_local_ray_if_ours(marker_dir)  # the marker connect_ray left says this Ray is ours
    finally:
        shutil.rmtree(marker_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    duration = (
        args.duration if args.duration is not None else (QUICK_DURATION_S if args.quick else FULL_DURATION_S)
    )
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else FULL_WARMUP_S)
    if duration <= 0 or warmup < 0:
        print("duration must be > 0 and warmup >= 0", file=sys.stderr)
        return 2
    cfg = Config(
        systems=args.systems,
        replicas=args.replicas,
        clients=args.clients,
        value_bytes=args.value_bytes,
        duration_s=duration,
        warmup_s=warmup,
        data_root=args.data_root,
    )
    console = Console()
    err = Console(stderr=True)
    machine = machine_info(cfg)
    try:
        with ray_for(cfg.systems):
            results = asyncio.run(
                run_suite(cfg, progress=lambda m: err.print(m, highlight=False, soft_wrap=True))
            )
    except KeyboardInterrupt:
        err.print("interrupted; targets stopped")
        return 130
    doc = {
        "suite": "store",
        "results": results,
        "ratios": ratios(results),
        "machine": machine,
        "fsync": fsync_summary(results),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    render(results, console)
    return 1 if all(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
