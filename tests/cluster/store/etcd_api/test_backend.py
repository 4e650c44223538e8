"""ReplicaBackend over three real Replicas: follower writes forwarded, follower ReadIndex, request ids."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from cluster.store.etcd_api.backend import RequestId
from cluster.store.mvcc import LeaseGrantOp, LeaseNotFound, PutOp, PutResult, RangeOp
from cluster.store.replica import NotLeader
from tests.cluster.store.etcd_api.cluster import start_cluster


def test_follower_forwards_writes_and_reads_linearizably(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = await start_cluster(tmp_path)
        try:
            f = await c.follower()
            res = await f.write(PutOp(b"/a", b"1"))
            assert isinstance(res, PutResult) and res.revision == 2
            got = await f.range(RangeOp(b"/a"))  # ReadIndex through the leader, then a local read
            assert [kv.value for kv in got.kvs] == [b"1"] and got.revision == 2
            # A retried write with the same request id is applied once.
            rid = RequestId(b"\x01" * 16, 1, 1)
            first = await f.write(PutOp(b"/b", b"x"), rid)
            again = await (await c.leader()).write(PutOp(b"/b", b"x"), rid)
            assert first == again
            assert (await f.range(RangeOp(b"/b"))).kvs[0].version == 1
            grant = await f.write(LeaseGrantOp(0, 30))
            ttl = await f.lease_time_to_live(grant.id, keys=True)  # type: ignore[union-attr]
            assert ttl.granted_ttl == 30 and 29 <= ttl.remaining <= 30
            assert await f.lease_keepalive(grant.id) == 30  # type: ignore[union-attr]
            with pytest.raises(LeaseNotFound):
                await f.lease_time_to_live(999)
            h = f.header()
            assert h.member_id == f.member_id and h.raft_term >= 1 and h.revision == 3
        finally:
            await c.close()

    asyncio.run(scenario())


def test_follower_without_reachable_leader_answers_not_leader(tmp_path: Path) -> None:
    async def scenario() -> None:
        c = await start_cluster(tmp_path)
        try:
            f = await c.follower()
            f.request_timeout = 0.3
            c.forwarder.down.add(f.replica.leader)
            with pytest.raises(TimeoutError):
                await f.write(PutOp(b"/a", b"1"))
            f.forward = None
            with pytest.raises(NotLeader):
                await f.write(PutOp(b"/a", b"1"))
        finally:
            await c.close()

    asyncio.run(scenario())


def test_request_id_parse() -> None:
    rid = RequestId.parse("0aff/7/3")
    assert rid == RequestId(b"\x0a\xff", 7, 3) and RequestId.parse(rid.render()) == rid
    for bad in ("", "zz/1/1", "0a/1", "0a/1/2", "0a/0/0", "/1/1"):
        with pytest.raises(ValueError):
            RequestId.parse(bad)
