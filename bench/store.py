"""Store benchmark: raykube's replicated store against etcd, same client, same requests, same run.

Both systems serve etcd's v3 gRPC API, and the bench drives both through one client
(``bench.etcd_bench_client``: the same stubs, the same channels to the leader) and one request
stream (``bench.etcd_workloads``: keys and values from a seeded generator, the same for both).
For each replica count both systems are started; then every (workload, clients, value_bytes) is
measured on one system and right after on the other, the order alternating between configurations,
so both see the same machine state. See docs/bench-store.md.

Entry point: ``main(argv)`` (``raykube bench store ...`` / ``python -m bench.store``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from bench.etcd_bench_client import DEFAULT_CONNS, ClientTLS, EtcdBenchClient
from bench.etcd_peer import EtcdTarget
from bench.etcd_watch_workload import run_watch
from bench.etcd_workloads import RUNNERS, WORKLOADS, Counter, Phases, Runner, Spec, seed_for, values_for
from bench.raykube_target import RaykubeTarget, local_ray
from bench.store_report import fsync_summary, goals, machine_info, ratios, render

SYSTEMS = ("raykube", "etcd")
FULL_DURATION_S = 5.0
FULL_WARMUP_S = 1.0
QUICK_DURATION_S = 1.5
QUICK_WARMUP_S = 0.3
QUICK_MATRIX = {"replicas": [1, 3], "clients": [1, 64], "value_bytes": [256]}


# ---- targets --------------------------------------------------------------------------------


@runtime_checkable
class Target(Protocol):
    """A started system: where its etcd API listens and how to trust it, and its own counts."""

    name: str
    replicas: int

    @property
    def endpoints(self) -> list[str]: ...

    @property
    def client_tls(self) -> ClientTLS | None: ...

    async def start(self) -> None: ...

    async def fsyncs(self) -> int | None:
        """Log syncs so far, summed over the members, as the system counts them (None: unknown)."""
        ...

    async def close(self) -> None: ...


def make_target(system: str, replicas: int, *, data_root: str | None = None) -> Target:
    if system == "etcd":
        return EtcdTarget(members=replicas, data_root=data_root)
    if system == "raykube":
        return RaykubeTarget(replicas=replicas, data_root=data_root)
    raise ValueError(f"unknown system {system!r}")


WORKLOAD_RUNNERS: dict[str, Runner] = {**RUNNERS, "watch": run_watch}


async def run_workload(client: EtcdBenchClient, spec: Spec, fsyncs: Counter | None = None) -> dict[str, Any]:
    """One measurement on a connected client: the figures and the counts the system reports.

    ``fsyncs`` (optional) reads the system's log-sync counter (see ``bench.etcd_workloads.Phases``).
    """
    runner = WORKLOAD_RUNNERS[spec.workload]
    return await runner(client, spec, values_for(spec.seed, spec.value_bytes), Phases(client, fsyncs))


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
    workloads: list[str] = field(default_factory=lambda: list(WORKLOADS))
    conns: int = DEFAULT_CONNS
    data_root: str | None = None

    def combos(self) -> list[tuple[str, int, int]]:
        """(workload, clients, value_bytes) in measuring order: workload by workload."""
        return list(itertools.product(self.workloads, self.clients, self.value_bytes))


def _entry(
    workload: str, system: str, replicas: int, clients: int, value_bytes: int, client: str
) -> dict[str, Any]:
    return {
        "workload": workload,
        "system": system,
        "replicas": replicas,
        "clients": clients,
        "value_bytes": value_bytes,
        "client": client,
    }


class _Started:
    """The systems of one replica count, each with its connected client (or why it has none)."""

    def __init__(self, cfg: Config, replicas: int, say: Any):
        self.cfg, self.replicas, self.say = cfg, replicas, say
        self.targets: dict[str, Target] = {}
        self.clients: dict[str, EtcdBenchClient] = {}
        self.errors: dict[str, str] = {}

    async def __aenter__(self) -> _Started:
        for system in self.cfg.systems:
            self.say(f"starting {system} (replicas={self.replicas})")
            t = make_target(system, self.replicas, data_root=self.cfg.data_root)
            try:
                await t.start()
                self.targets[system] = t
                client = EtcdBenchClient(t.endpoints, tls=t.client_tls, conns=self.cfg.conns)
                await client.connect()
                self.clients[system] = client
            except Exception as e:  # recorded, the other system still runs
                self.errors[system] = f"start failed: {_error_text(e)}"
                self.say(f"[red]{system} (replicas={self.replicas}) {self.errors[system]}[/red]")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for client in self.clients.values():
            with contextlib.suppress(Exception):
                await client.close()
        for t in self.targets.values():
            self.say(f"stopping {t.name} (replicas={self.replicas})")
            with contextlib.suppress(Exception):
                await t.close()


async def run_suite(cfg: Config, progress: Any = None) -> list[dict[str, Any]]:
    """Measure every configuration; systems interleaved per configuration, same requests for both."""
    results: list[dict[str, Any]] = []
    say = progress or (lambda msg: None)
    client_name = EtcdBenchClient.describe(cfg.conns)
    for replicas in cfg.replicas:
        async with _Started(cfg, replicas, say) as started:
            for i, (workload, clients, value_bytes) in enumerate(cfg.combos()):
                spec = Spec(
                    workload=workload,
                    clients=clients,
                    value_bytes=value_bytes,
                    duration_s=cfg.duration_s,
                    warmup_s=cfg.warmup_s,
                    tag=i + 1,
                    seed=seed_for(workload, replicas, clients, value_bytes),
                )
                order = cfg.systems if i % 2 == 0 else list(reversed(cfg.systems))
                by_system: dict[str, dict[str, Any]] = {}
                for system in order:
                    row = _entry(workload, system, replicas, clients, value_bytes, client_name)
                    if system in started.errors:
                        row.update(ops_per_s=None, p50_ms=None, p99_ms=None, error=started.errors[system])
                    else:
                        where = f"replicas={replicas} clients={clients} value_bytes={value_bytes}"
                        say(f"{system} {workload} {where}")
                        try:
                            fsyncs = started.targets[system].fsyncs
                            row.update(await run_workload(started.clients[system], spec, fsyncs))
                        except Exception as e:  # recorded, never replaced by numbers
                            row.update(ops_per_s=None, p50_ms=None, p99_ms=None, error=_error_text(e))
                    by_system[system] = row
                results.extend(by_system[s] for s in cfg.systems)
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


def _names(known: Sequence[str], what: str) -> Any:
    def parse(text: str) -> list[str]:
        values = [x.strip() for x in text.split(",") if x.strip()]
        bad = [v for v in values if v not in known]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"{what} must be among {','.join(known)}, got {text!r}")
        return list(dict.fromkeys(values))

    return parse


def _replicas(text: str) -> list[int]:
    values = _int_list(text)
    if any(v not in (1, 3) for v in values):
        raise argparse.ArgumentTypeError(f"replicas must be 1 and/or 3, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="raykube bench store",
        description="raykube's store vs etcd through one etcd v3 gRPC client: puts, linearizable gets, "
        "compare-and-swap txns, watch fan-out (durable writes, loopback).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="short durations and, unless given, replicas 1,3 x clients 1,64 x 256 B (about 3 minutes)",
    )
    p.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    p.add_argument(
        "--systems", type=_names(SYSTEMS, "systems"), default=list(SYSTEMS), help="default: raykube,etcd"
    )
    p.add_argument(
        "--workloads",
        type=_names(WORKLOADS, "workloads"),
        default=list(WORKLOADS),
        help="default: put,get,txn,watch",
    )
    p.add_argument("--replicas", type=_replicas, default=None, help="default: 1,3")
    p.add_argument("--clients", type=_int_list, default=None, help="default: 1,16,64 (--quick: 1,64)")
    p.add_argument("--value-bytes", type=_int_list, default=None, help="default: 256,4096 (--quick: 256)")
    p.add_argument(
        "--conns",
        type=int,
        default=DEFAULT_CONNS,
        help=f"gRPC channels to the leader (default: {DEFAULT_CONNS})",
    )
    p.add_argument(
        "--data-root", default=None, help="where temporary data dirs go (default: system temp dir)"
    )
    # Hidden knobs for tests and experiments.
    p.add_argument("--duration", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--warmup", type=float, default=None, help=argparse.SUPPRESS)
    return p


def config_from(args: argparse.Namespace) -> Config:
    """The run's configuration: flags, else the quick or the full defaults."""
    full = {"replicas": [1, 3], "clients": [1, 16, 64], "value_bytes": [256, 4096]}
    matrix = QUICK_MATRIX if args.quick else full
    duration = (
        args.duration if args.duration is not None else (QUICK_DURATION_S if args.quick else FULL_DURATION_S)
    )
    warmup = args.warmup if args.warmup is not None else (QUICK_WARMUP_S if args.quick else FULL_WARMUP_S)
    return Config(
        systems=args.systems,
        workloads=args.workloads,
        replicas=args.replicas or matrix["replicas"],
        clients=args.clients or matrix["clients"],
        value_bytes=args.value_bytes or matrix["value_bytes"],
        duration_s=duration,
        warmup_s=warmup,
        conns=args.conns,
        data_root=args.data_root,
    )


@contextlib.contextmanager
def ray_for(systems: Sequence[str]) -> Iterator[None]:
    """For the raykube side, join the running Ray or start a local one (stopped afterwards)."""
    if "raykube" not in systems:
        yield
        return

    with local_ray():
        yield


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console

    args = build_parser().parse_args(argv)
    cfg = config_from(args)
    if cfg.duration_s <= 0 or cfg.warmup_s < 0 or cfg.conns <= 0:
        print("duration and conns must be > 0 and warmup >= 0", file=sys.stderr)
        return 2
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
    rows = ratios(results)
    doc = {
        "suite": "store",
        "client": EtcdBenchClient.describe(cfg.conns),
        "results": results,
        "ratios": rows,
        "goals": goals(rows),
        "machine": machine,
        "fsync": fsync_summary(results),
    }
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    render(results, console)
    return 1 if all(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
