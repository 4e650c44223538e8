"""A follower's writes reach the leader over gRPC (``cluster.store.forwarding``): real Replicas in one
event loop, the Forward service on a real TLS port, only the replicas' certificate may call it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from cluster.apiserver.tls import ensure_pki
from cluster.store import codec
from cluster.store.etcd_api.backend import LeaseTTL
from cluster.store.forwarding import (
    METHOD,
    PERMISSION_DENIED,
    GrpcForwarder,
    decode_outcome,
    encode_outcome,
    forward_handler,
)
from cluster.store.ops import Compacted, LeaseNotFound, PutOp, PutResult, RangeOp
from cluster.store.replica_types import NotLeader, NotServing
from cluster.store.tls import (
    StorePki,
    StoreTls,
    client_tls,
    ensure_store_pki,
    forwarding_tls,
    server_credentials,
)
from tests.cluster.store.etcd_api.cluster import start_cluster


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(7, id="read-index"),
        pytest.param([PutResult(3), Compacted(2), NotLeader(2)], id="propose-outcomes"),
        pytest.param(LeaseTTL(5, 10, 9, (b"/a",)), id="lease-ttl"),
        pytest.param(LeaseNotFound(5), id="store-error"),
        pytest.param(NotLeader(3), id="not-leader"),
    ],
)
def test_outcomes_round_trip(value: Any) -> None:
    back = decode_outcome(codec.unpack(codec.pack(encode_outcome(value))))
    if isinstance(value, list):
        assert [type(v) for v in back] == [type(v) for v in value]
        assert back[0] == value[0] and back[2].leader == 2 and back[1].args == value[1].args
    elif isinstance(value, Exception):
        assert type(back) is type(value) and back.args == value.args
    else:
        assert back == value


def test_not_serving_keeps_its_reason() -> None:
    back = decode_outcome(codec.unpack(codec.pack(encode_outcome(NotServing("disk failed")))))
    assert isinstance(back, NotServing) and back.reason == "disk failed"


@pytest.fixture
def tls(tmp_path: Path) -> StoreTls:
    pki_dir = tmp_path / "pki"
    ensure_pki(pki_dir, hosts=[])
    ensure_store_pki(pki_dir, ["127.0.0.1", "localhost"])
    return StoreTls.load(StorePki.in_dir(pki_dir))


async def serve_forward(serve: Any, tls: StoreTls) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((forward_handler(serve),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(tls))
    await server.start()
    return server, port


def test_a_follower_forwards_writes_and_read_index_to_the_leader(tmp_path: Path, tls: StoreTls) -> None:
    async def scenario() -> tuple[int, float]:
        cluster = await start_cluster(tmp_path / "store")
        leader = await cluster.leader()
        follower = await cluster.follower()
        server, port = await serve_forward(leader.serve_forwarded, tls)

        async def resolve(replica: int) -> str:
            assert replica == leader.member_id
            return f"127.0.0.1:{port}"

        forwarder = GrpcForwarder(resolve, forwarding_tls(tls))
        follower.forward = forwarder
        try:
            result = await follower.write(PutOp(b"/k", b"v"))
            assert isinstance(result, PutResult)
            got = await follower.range(RangeOp(b"/k"))  # linearizable: the leader's read index
            assert [kv.value for kv in got.kvs] == [b"v"]
            # A figure for the report (not a threshold): forwarded puts, one at a time.
            n, t0 = 200, time.perf_counter()
            for i in range(n):
                await follower.write(PutOp(b"/bench", str(i).encode()))
            per_put = (time.perf_counter() - t0) / n
            return result.revision, per_put
        finally:
            await forwarder.close()
            await server.stop(None)
            await cluster.close()

    revision, per_put = asyncio.run(scenario())
    assert revision > 0
    print(f"forwarded put over gRPC+TLS, in-process replicas: {per_put * 1e3:.2f} ms per put")


def test_only_the_replicas_certificate_may_forward(tmp_path: Path, tls: StoreTls) -> None:
    async def scenario() -> str:
        calls: list[str] = []

        async def serve(method: str, args: tuple[Any, ...]) -> Any:
            calls.append(method)
            return 1

        server, port = await serve_forward(serve, tls)
        try:
            pki_dir = tmp_path / "pki"
            credentials = client_tls(pki_dir, operator=True).channel_credentials()
            options = [("grpc.ssl_target_name_override", "localhost")]
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await channel.unary_unary(METHOD)(codec.pack(["read_index", []]))
            assert calls == []
            return f"{refused.value.code().name}: {refused.value.details()}"
        finally:
            await server.stop(None)

    assert asyncio.run(scenario()) == f"PERMISSION_DENIED: {PERMISSION_DENIED}"
