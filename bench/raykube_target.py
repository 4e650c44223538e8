"""raykube's replicated store as a target of the store benchmark (Ray glue: it deploys the replicas).

``RaykubeTarget`` deploys a throw-away store in its own Ray namespace and data directory, the way
``raykube up`` deploys the cluster's (``cluster.store_deploy.deploy_store``: replica actors with a
client port serving etcd's v3 gRPC API and a peer port for Raft, free ports, TLS), with
certificates from a throw-away CA made exactly as the etcd peer's (``bench.etcd_peer.throwaway_pki``),
and presents the etcdctl client identity. The bench then drives it through
``bench.etcd_bench_client``, as it drives etcd.

What the gRPC API does not say, the replica actors do: ``fsyncs`` sums the replicas' WAL syncs
from their ``status`` (``wal_fsyncs``), over Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ray

from bench.etcd_bench_client import ClientTLS
from bench.etcd_peer import throwaway_pki
from cluster.bootstrap import connect_ray, default_data_dir, stop_local_ray_if_ours, teardown
from cluster.store.client import StoreClient
from cluster.store.endpoints import store_endpoints
from cluster.store.replica import ReplicaOptions
from cluster.store.tls import StoreTls
from cluster.store_deploy import deploy_store, wait_until_serving


@contextlib.contextmanager
def local_ray() -> Iterator[None]:
    """Join the running Ray, or start a local one and stop it afterwards.

    Without this the store's deployment would start a Ray head that outlives the bench.
    """
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


async def replica_endpoints(namespace: str, data_dir: Path) -> list[str]:
    """``127.0.0.1:<client port>`` of every replica, as the replicas report their ports
    (``cluster.store.endpoints``): the bench runs on one machine and reaches both systems on loopback."""
    urls = await asyncio.to_thread(store_endpoints, namespace=namespace, data_dir=data_dir)
    if not urls:
        raise RuntimeError("no replica reported a client URL (do the replicas serve gRPC?)")
    return [f"127.0.0.1:{urlsplit(u).port}" for u in urls]


@contextlib.asynccontextmanager
async def start_store_for_bench(
    replicas: int, data_dir: Path, tls: StoreTls, options: ReplicaOptions | None = None
) -> AsyncIterator[str]:
    """A throw-away store in its own namespace, listening on free ports; yields the namespace."""
    if not ray.is_initialized():
        connect_ray(None, default_data_dir())
    namespace = f"raykube-bench-{uuid.uuid4().hex[:8]}"
    handles: list[Any] = []
    try:
        # Keep the handles: a non-detached actor dies with the last handle to it.
        handles, _ = await asyncio.to_thread(
            deploy_store, replicas, data_dir, namespace, options, detached=False, store_port=0, tls=tls
        )
        await wait_until_serving(namespace)
        yield namespace
    finally:
        del handles
        await asyncio.to_thread(teardown, namespace)


class RaykubeTarget:
    """raykube's replicated store, deployed for the bench; ``endpoints`` are the replicas' client ports."""

    name = "raykube"

    def __init__(self, replicas: int = 1, *, data_root: str | None = None):
        if replicas not in (1, 3):
            raise ValueError(f"raykube replicas must be 1 or 3, not {replicas}")
        self.replicas = replicas
        self._data_root = data_root
        self._tmp: Path | None = None
        self._stack: contextlib.AsyncExitStack | None = None
        self._status: StoreClient | None = None
        self._endpoints: list[str] = []
        self.client_tls: ClientTLS | None = None

    @property
    def endpoints(self) -> list[str]:
        return list(self._endpoints)

    async def start(self) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="raykube-bench-store-", dir=self._data_root))
        pki = throwaway_pki(self._tmp / "pki")
        self.client_tls = ClientTLS.from_files(pki.ca_cert, pki.etcdctl_cert, pki.etcdctl_key)
        self._stack = contextlib.AsyncExitStack()
        namespace = await self._stack.enter_async_context(
            start_store_for_bench(self.replicas, self._tmp, StoreTls.load(pki))
        )
        self._endpoints = await replica_endpoints(namespace, self._tmp)
        self._status = await StoreClient.connect(namespace)

    async def fsyncs(self) -> int | None:
        """The replicas' WAL syncs so far (``wal_fsyncs`` of each replica's status), summed."""
        if self._status is None:
            raise RuntimeError("start() first")
        statuses = await self._status.status()
        healthy = [st for st in statuses if "wal_fsyncs" in st]
        if len(healthy) != self.replicas:
            raise RuntimeError(f"replica status unavailable: {statuses}")
        return sum(int(st["wal_fsyncs"]) for st in healthy)

    async def close(self) -> None:
        status, self._status = self._status, None
        stack, self._stack = self._stack, None
        try:
            if status is not None:
                await status.close()
        finally:
            try:
                if stack is not None:
                    await stack.aclose()
            finally:
                if self._tmp is not None:
                    shutil.rmtree(self._tmp, ignore_errors=True)
                    self._tmp = None
