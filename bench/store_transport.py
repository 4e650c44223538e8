"""Puts on three store replicas with Raft traffic over Ray calls or over the direct peer connections.

``python -m bench.store_transport [--transports ray,tcp] [--puts 1000] [--clients 16]`` deploys three
replica actors on this node for each transport in turn (``ReplicaOptions.transport``; fsync on, as
always), and prints one JSON row per transport and load: ``clients`` store clients
(``cluster.store.client``, Ray calls to the leader) each putting 256-byte values one after the
other; ``p50_ms``/``p99_ms`` per put and ``puts_per_s``. The client hop is the same for both, so
the difference is the Raft round: leader -> followers -> leader.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

import ray

from cluster.bootstrap import teardown
from cluster.store.client import StoreClient
from cluster.store.replica import ReplicaOptions
from cluster.store_deploy import deploy_store, wait_until_serving


async def load(namespace: str, clients: int, puts: int) -> dict[str, float]:
    conns = [await StoreClient.connect(namespace) for _ in range(clients)]
    value = b"v" * 256
    for i in range(50):  # warm up: leader found, connections made
        await conns[0].put(b"/warm/%d" % i, value)
    lat: list[float] = []

    async def one(c: int) -> None:
        for i in range(puts // clients):
            t0 = time.perf_counter()
            await conns[c].put(b"/bench/%d/%d" % (c, i), value)
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c) for c in range(clients)))
    elapsed = time.perf_counter() - t0
    for conn in conns:
        await conn.close()
    lat.sort()
    return {
        "p50_ms": round(statistics.median(lat), 2),
        "p99_ms": round(lat[int(len(lat) * 0.99)], 2),
        "puts_per_s": round(len(lat) / elapsed),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transports", default="ray,tcp")
    p.add_argument("--puts", type=int, default=1000)
    p.add_argument("--clients", default="1,16")
    a = p.parse_args(argv)
    ray.init(
        namespace="store-transport", include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
    )
    try:
        with tempfile.TemporaryDirectory(prefix="store-transport-") as tmp:
            for kind in a.transports.split(","):
                namespace = f"store-transport-{kind}-{os.getpid()}"
                options = ReplicaOptions(transport=kind)
                # Keep the handles: actors that are not detached end with their last handle.
                handles, _ = deploy_store(3, Path(tmp) / kind, namespace, options, detached=False)
                try:
                    asyncio.run(wait_until_serving(namespace))
                    for clients in (int(c) for c in a.clients.split(",")):
                        row = asyncio.run(load(namespace, clients, a.puts))
                        print(
                            json.dumps({"transport": kind, "replicas": 3, "clients": clients, **row}),
                            flush=True,
                        )
                finally:
                    teardown(namespace)
                    del handles
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
