"""Every store-bench workload through the bench's one gRPC client against raykube's etcd API: three
in-process replicas (no Ray) served by ``build_server`` over TLS with client certificates on loopback.

The same client, against etcd, is exercised by test_store_etcd_run.py; here the checks the workloads
make themselves (revision advanced by exactly the writes, every watcher got every event in order)
run against our store, as does the leader discovery through Maintenance.Status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.etcd_bench_client import ClientTLS, EtcdBenchClient
from bench.etcd_peer import throwaway_pki
from bench.etcd_watch_workload import WATCHERS
from bench.etcd_workloads import Spec, seed_for
from bench.store import run_workload
from cluster.store.etcd_api.server import ServerTLS
from tests.cluster.store.etcd_api.served import Served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, ClientTLS]]:
    tmp = tmp_path_factory.mktemp("bench-inproc")
    pki = throwaway_pki(tmp / "pki")
    tls = ServerTLS(pki.ca_cert.read_bytes(), pki.server_cert.read_bytes(), pki.server_key.read_bytes())
    s = Served(tmp / "store", size=3, tls=tls)
    try:
        yield s, ClientTLS.from_files(pki.ca_cert, pki.etcdctl_cert, pki.etcdctl_key)
    finally:
        s.close()


def _measure(served: Served, client_tls: ClientTLS, workload: str, tag: int) -> tuple[dict[str, Any], int]:
    def syncs() -> int:
        return sum(int(b.replica.status()["wal_fsyncs"]) for b in served.cluster.backends.values())

    async def fsyncs() -> int:
        return served.call(syncs)

    async def scenario() -> tuple[dict[str, Any], int]:
        client = EtcdBenchClient(
            [served.endpoint(rid) for rid in sorted(served.ports)], tls=client_tls, conns=2
        )
        await client.connect(timeout=10)
        try:
            spec = Spec(
                workload, 3, 256, duration_s=0.3, warmup_s=0.1, tag=tag, seed=seed_for(workload, 3, 3, 256)
            )
            return await run_workload(client, spec, fsyncs), client.leader_id or 0
        finally:
            await client.close()

    return asyncio.run(scenario())


@pytest.mark.parametrize("workload", ["put", "get", "txn", "watch"])
def test_workload_against_raykube(served: tuple[Served, ClientTLS], workload: str) -> None:
    s, client_tls = served
    row, leader = _measure(s, client_tls, workload, tag=["put", "get", "txn", "watch"].index(workload) + 1)
    assert leader == s.leader_id()  # found through Maintenance.Status, the way it finds etcd's
    assert row["revision_delta"] == row["writes"], row
    assert row["requests"] > 0 and row["ops_per_s"] > 0 and 0 < row["p50_ms"] <= row["p99_ms"]
    if workload == "get":
        assert row["writes"] == 0
    else:
        assert row["writes"] > 0 and row["fsyncs"] > 0 and row["fsync"] is True
    if workload == "txn":
        assert row["cas_succeeded"] + row["cas_failed"] == row["requests"]
        assert row["cas_succeeded"] == row["writes"]
    if workload == "watch":
        assert row["events"] == row["events_expected"] == row["requests"] * WATCHERS


def test_a_broken_count_fails_the_measurement(served: tuple[Served, ClientTLS]) -> None:
    """A write the bench did not make (here: one slipped in by another client during the run) makes
    the revision disagree with the writes counted, and the measurement yields no figures."""
    s, client_tls = served

    async def scenario() -> None:
        client = EtcdBenchClient([s.endpoint()], tls=client_tls, conns=1)
        await client.connect(timeout=10)
        try:
            spec = Spec("get", 1, 256, duration_s=0.3, warmup_s=0.0, tag=9, seed=1)
            intruder = EtcdBenchClient([s.endpoint()], tls=client_tls, conns=1)
            await intruder.connect(timeout=10)

            async def write_meanwhile() -> None:
                await asyncio.sleep(0.1)
                await intruder.put(b"intruder", b"x")

            try:
                with pytest.raises(RuntimeError, match="the revision advanced by 1 for 0 writes"):
                    await asyncio.gather(run_workload(client, spec), write_meanwhile())
            finally:
                await intruder.close()
        finally:
            await client.close()

    asyncio.run(scenario())


def test_no_leader_among_the_endpoints_is_an_error(tmp_path: Path) -> None:
    async def scenario() -> None:
        client = EtcdBenchClient(["127.0.0.1:9"], conns=1)  # nothing listens on the discard port
        with pytest.raises(TimeoutError, match="no agreed leader"):
            await client.connect(timeout=0.5)

    asyncio.run(scenario())
