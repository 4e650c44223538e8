"""EtcdStoreClient against in-process replicas served over real gRPC on loopback (no Ray).

Three real Replicas (``tests.cluster.store.etcd_api.cluster``), each with the etcd API server of
``cluster.store.etcd_api.server`` on a free port; the client talks to them as the API server does.
Faults are real ones: a replica's gRPC server stopped, or (to lose a response after the write was
applied) a server interceptor that answers UNAVAILABLE once the call has run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from cluster.apiserver.tls import ensure_pki, issue_client_cert
from cluster.store import etcd_watch
from cluster.store.api import StoreAPI, Unavailable, WatchResponse
from cluster.store.etcd_api.server import ServerTLS, bound_port, build_server
from cluster.store.etcd_client import EtcdStoreClient
from cluster.store.ops import (
    MAX_REQUEST_BYTES,
    Compacted,
    Compare,
    CompareResult,
    CompareTarget,
    EventType,
    FutureRevision,
    InvalidRequest,
    LeaseExists,
    LeaseNotFound,
    PutOp,
    RangeOp,
    RequestTooLarge,
    prefix_end,
)
from cluster.store.tls import (
    APISERVER_CLIENT,
    STORE_CLIENTS_GROUP,
    ClientTls,
    StorePki,
    client_tls,
    ensure_store_pki,
)
from tests.cluster.store.etcd_api.cluster import LocalCluster, start_cluster


class LoseResponses(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Runs ``lose`` unary calls of ``method`` (e.g. "/etcdserverpb.KV/Txn") to the end, then answers
    UNAVAILABLE instead of their response: the write is applied, the client does not know it."""

    def __init__(self) -> None:
        self.method = ""
        self.lose = 0
        self.seen: list[str] = []  # raykube-request-id of every call of ``method``

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if details.method != self.method or handler is None or handler.unary_unary is None:
            return handler
        inner = handler.unary_unary
        md = dict(details.invocation_metadata or ())
        interceptor = self

        async def lossy(request: Any, context: Any) -> Any:
            interceptor.seen.append(str(md.get("raykube-request-id", "")))
            response = await inner(request, context)
            if interceptor.lose > 0:
                interceptor.lose -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "test: response lost after the write")
            return response

        return grpc.unary_unary_rpc_method_handler(
            lossy,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


@dataclass
class Store:
    cluster: LocalCluster
    servers: dict[int, grpc.aio.Server] = field(default_factory=dict)
    urls: dict[int, str] = field(default_factory=dict)
    faults: LoseResponses = field(default_factory=LoseResponses)

    async def stop_server(self, rid: int) -> None:
        await self.servers.pop(rid).stop(None)


async def serve(tmp: Path, size: int = 3, tls: ServerTLS | None = None) -> Store:
    store = Store(await start_cluster(tmp, size))
    for rid, backend in store.cluster.backends.items():
        server = build_server(backend, host="127.0.0.1", port=0, tls=tls, interceptors=[store.faults])
        await server.start()
        store.servers[rid] = server
        store.urls[rid] = f"{'https' if tls else 'http'}://127.0.0.1:{bound_port(server)}"
    return store


def run(tmp: Path, scenario: Callable[[Store, EtcdStoreClient], Awaitable[None]], **client: Any) -> None:
    async def main() -> None:
        store = await serve(tmp)
        c = await EtcdStoreClient.connect([store.urls[r] for r in sorted(store.urls)], **client)
        try:
            await scenario(store, c)
        finally:
            await c.close()
            for server in store.servers.values():
                await server.stop(None)
            await store.cluster.close()

    asyncio.run(main())


def test_follows_the_leader_and_reads_what_it_wrote(tmp_path: Path) -> None:
    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        leader = (await store.cluster.leader()).member_id
        assert c._preferred is not None and c.endpoints[c._preferred].url == store.urls[leader]
        api: StoreAPI = c  # the protocol the API server is typed against
        first = await api.put(b"/a/1", b"one")
        second = await api.put(b"/a/1", b"uno", prev_kv=True)
        assert second.revision == first.revision + 1
        assert second.prev_kv is not None and second.prev_kv.value == b"one"
        await api.put(b"/a/2", b"two")
        kv = await api.get(b"/a/1")
        assert kv is not None and (kv.value, kv.version, kv.mod_revision) == (b"uno", 2, second.revision)
        assert await api.get(b"/a/1", revision=first.revision) == await api.get(
            b"/a/1", revision=first.revision, serializable=True
        )
        listed = await api.get_prefix(b"/a/")
        assert [k.key for k in listed.kvs] == [b"/a/1", b"/a/2"] and listed.count == 2
        limited = await api.get_prefix(b"/a/", limit=1)
        assert len(limited.kvs) == 1 and limited.more and limited.count == 2
        counted = await api.range(RangeOp(b"/a/", prefix_end(b"/a/"), count_only=True))
        assert counted.kvs == () and counted.count == 2 and counted.revision == listed.revision

        created = await api.txn(
            [Compare(b"/a/3", CompareTarget.VERSION, CompareResult.EQUAL, 0)],
            [PutOp(b"/a/3", b"three"), RangeOp(b"/a/1")],
            [RangeOp(b"/a/3")],
        )
        assert created.succeeded and len(created.responses) == 2
        assert created.responses[1].kvs[0].value == b"uno"  # type: ignore[union-attr]
        stale = await api.compare_and_put(b"/a/3", created.revision - 1, b"lost")
        assert not stale.succeeded
        fresh = await api.compare_and_put(b"/a/3", created.revision, b"won")
        assert fresh.succeeded and fresh.revision == created.revision + 1

        gone = await api.delete(b"/a/", prefix_end(b"/a/"), prev_kv=True)
        assert gone.deleted == 3 and sorted(k.key for k in gone.prev_kvs) == [b"/a/1", b"/a/2", b"/a/3"]
        assert await api.get(b"/a/1") is None

        lease = await api.lease_grant(30)
        assert lease.id > 0 and lease.ttl == 30
        await api.put(b"/leased", b"x", lease=lease.id)
        assert await api.lease_keepalive(lease.id) == 30
        await api.lease_revoke(lease.id)
        assert await api.get(b"/leased") is None
        assert await api.lease_keepalive(lease.id) == 0  # etcd's answer for a lease that is gone

        rows = await api.status()
        assert sorted(r["id"] for r in rows) == [1, 2, 3]
        assert [r["role"] for r in rows].count("leader") == 1
        assert all(r["health"] == "ok" and r["leader"] == leader for r in rows)

    run(tmp_path, scenario)


async def _raises(call: Awaitable[Any]) -> BaseException:
    try:
        await call
    except Exception as e:
        return e
    raise AssertionError("no error raised")


def test_etcd_errors_map_back_onto_the_store_errors(tmp_path: Path) -> None:
    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        for i in range(4):
            await c.put(b"/k", b"%d" % i)
        head = await c.get(b"/k")
        assert head is not None
        await c.compact(head.mod_revision - 1)
        lease = await c.lease_grant(60, lease_id=77)
        cases: list[tuple[Awaitable[Any], type[BaseException], tuple[Any, ...] | None]] = [
            (c.get(b"/k", revision=2), Compacted, None),
            (c.range(RangeOp(b"/k", revision=head.mod_revision + 100)), FutureRevision, None),
            (c.compact(2), Compacted, None),
            (c.lease_revoke(12345), LeaseNotFound, (12345,)),
            (c.put(b"/k", b"v", lease=999), LeaseNotFound, (999,)),
            (c.lease_grant(60, lease_id=lease.id), LeaseExists, (77,)),
            (c.put(b"", b"v"), InvalidRequest, ("key is not provided",)),
            (c.put(b"/big", b"x" * MAX_REQUEST_BYTES), RequestTooLarge, None),
        ]
        for call, kind, args in cases:
            err = await _raises(call)
            assert type(err) is kind, (kind, err)
            if args is not None:
                assert err.args == args
        # a refusal is not retried: it changed nothing
        assert (await c.get(b"/k")) == head

    run(tmp_path, scenario)


def test_a_write_whose_answer_was_lost_is_retried_under_its_request_id_and_applied_once(
    tmp_path: Path,
) -> None:
    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        store.faults.method = "/etcdserverpb.KV/Txn"
        store.faults.lose = 2  # the first attempt and the first retry both lose their answer
        before = (await c.range(RangeOp(b"/x", count_only=True))).revision
        result = await c.txn(
            [Compare(b"/once", CompareTarget.VERSION, CompareResult.EQUAL, 0)], [PutOp(b"/once", b"1")]
        )
        # Applied by the first attempt; the retries got the remembered outcome, so the create-if-absent
        # still reports success (a second application would have failed its compare) at the same revision.
        assert result.succeeded and result.revision == before + 1
        assert len(store.faults.seen) == 3 and len(set(store.faults.seen)) == 1
        client_hex, seq, first = store.faults.seen[0].split("/")
        assert client_hex == c.client_id.hex() and int(seq) >= 1 and 1 <= int(first) <= int(seq)
        kv = await c.get(b"/once")
        assert kv is not None and kv.version == 1 and kv.mod_revision == before + 1
        assert (await c.range(RangeOp(b"/x", count_only=True))).revision == before + 1

        store.faults.method = "/etcdserverpb.KV/Put"
        store.faults.lose = 1
        seen = len(store.faults.seen)
        put = await c.put(b"/counter", b"a")
        assert put.revision == before + 2 and len(store.faults.seen) == seen + 2
        assert (await c.get(b"/counter")).version == 1  # type: ignore[union-attr]

    run(tmp_path, scenario)


def test_the_leaders_server_stopping_moves_calls_to_the_others_then_unavailable(tmp_path: Path) -> None:
    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        leader = (await store.cluster.leader()).member_id
        await c.put(b"/k", b"1")
        await store.stop_server(leader)  # the replica still leads; only its client port is gone
        res = await c.put(b"/k", b"2")  # a follower forwards it
        kv = await c.get(b"/k")
        assert kv is not None and kv.value == b"2" and kv.mod_revision == res.revision
        for rid in list(store.servers):
            await store.stop_server(rid)
        loop = asyncio.get_running_loop()
        started = loop.time()
        err = await _raises(c.put(b"/k", b"3"))
        assert isinstance(err, Unavailable) and loop.time() - started >= c.deadline
        assert "UNAVAILABLE" in str(err)

    run(tmp_path, scenario, deadline=1.5, request_timeout=0.5)


async def _collect(
    c: EtcdStoreClient, start: int, out: list[WatchResponse], until: Callable[[], bool], **kw: Any
) -> None:
    async for resp in c.watch(b"/w/", prefix_end(b"/w/"), start, **kw):
        out.append(resp)
        if until():
            return


def _events(responses: list[WatchResponse]) -> list[tuple[bytes, int, EventType]]:
    return [(e.kv.key, e.kv.mod_revision, e.type) for r in responses for e in r.events]


def test_watch_resumes_on_another_replica_without_gap_or_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    watch_on = etcd_watch._watch_on

    def counting(ep: Any, *args: Any) -> Any:
        opened.append(ep.url)
        return watch_on(ep, *args)

    monkeypatch.setattr(etcd_watch, "_watch_on", counting)

    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        first = await c.put(b"/w/0", b"0")
        got: list[WatchResponse] = []
        writes = 40
        watcher = asyncio.create_task(
            _collect(c, first.revision, got, lambda: len(_events(got)) >= writes + 1, poll_timeout=0.5)
        )
        expected = [(b"/w/0", first.revision, EventType.PUT)]
        for i in range(1, writes + 1):
            if i == 10:  # the watch is served by the leader's endpoint (preferred): stop that server
                await store.stop_server((await store.cluster.leader()).member_id)
            if i == 25:  # and the one it moved to
                rid = next(r for r, url in store.urls.items() if url == opened[-1])
                await store.stop_server(rid)
            if i % 7 == 0:
                res = await c.delete(b"/w/%d" % (i - 1))
                expected.append((b"/w/%d" % (i - 1), res.revision, EventType.DELETE))
            else:
                res = await c.put(b"/w/%d" % i, b"%d" % i)
                expected.append((b"/w/%d" % i, res.revision, EventType.PUT))
            await c.put(b"/elsewhere", b"x")  # outside the watched prefix
        await asyncio.wait_for(watcher, 30)
        assert _events(got) == expected
        revisions = [r.revision for r in got]
        assert revisions == sorted(revisions)
        leader_url = store.urls[(await store.cluster.leader()).member_id]
        assert opened[0] == leader_url and len(set(opened)) == 3  # it did move, twice

    run(tmp_path, scenario, request_timeout=1.0)


def test_idle_watch_reports_progress_and_compaction_ends_it(tmp_path: Path) -> None:
    async def scenario(store: Store, c: EtcdStoreClient) -> None:
        start = (await c.put(b"/w/a", b"1")).revision
        for _ in range(3):
            await c.put(b"/other", b"x")
        head = (await c.put(b"/other", b"y")).revision
        got: list[WatchResponse] = []
        await asyncio.wait_for(
            _collect(c, start, got, lambda: got[-1].revision >= head, poll_timeout=0.2), 10
        )
        assert _events(got) == [(b"/w/a", start, EventType.PUT)]
        assert got[-1].events == () and got[-1].revision == head  # progress past the other keys' writes

        events, revision = await c.progress(b"/w/", prefix_end(b"/w/"), start)
        assert [e.kv.key for e in events] == [b"/w/a"] and revision == head
        events, revision = await c.progress(b"/w/", prefix_end(b"/w/"), start + 1)
        assert events == [] and revision == head

        await c.compact(head)
        err = await _raises(_collect(c, start, [], lambda: True))
        assert isinstance(err, Compacted) and err.compact_revision > 0
        err = await _raises(c.progress(b"/w/", prefix_end(b"/w/"), start))
        assert isinstance(err, Compacted)

    run(tmp_path, scenario)


def test_a_client_certificate_of_the_cluster_ca_is_required(tmp_path: Path) -> None:
    pki_dir = tmp_path / "pki"
    ensure_pki(pki_dir, hosts=[])
    ensure_store_pki(pki_dir, ["127.0.0.1"])
    pki = StorePki.in_dir(pki_dir)
    tls = ServerTLS(pki.ca_cert.read_bytes(), pki.server_cert.read_bytes(), pki.server_key.read_bytes())

    async def main() -> None:
        store = await serve(tmp_path, 1, tls=tls)
        try:
            good = await EtcdStoreClient.connect([store.urls[1]], tls=client_tls(pki_dir))
            assert (await good.put(b"/tls", b"ok")).revision > 1
            assert (await good.get(b"/tls")).value == b"ok"  # type: ignore[union-attr]
            await good.close()
            other_ca = ensure_pki(tmp_path / "other", hosts=[])  # a certificate of another CA
            cert, key = issue_client_cert(other_ca, APISERVER_CLIENT, [STORE_CLIENTS_GROUP])
            stranger = await EtcdStoreClient.connect(
                [store.urls[1]],
                tls=ClientTls(pki.ca_cert.read_bytes(), cert, key),
                deadline=1.0,
                request_timeout=0.5,
            )
            with pytest.raises(Unavailable):
                await stranger.get(b"/tls")
            await stranger.close()
        finally:
            for server in store.servers.values():
                await server.stop(None)
            await store.cluster.close()

    asyncio.run(main())


def test_endpoints_that_moved_are_found_again_through_discover(tmp_path: Path) -> None:
    async def main() -> None:
        store = await serve(tmp_path)
        asked: list[int] = []

        async def discover() -> list[str]:
            asked.append(1)
            return [store.urls[r] for r in sorted(store.servers)]

        gone = store.urls[1]
        await store.stop_server(1)  # the only endpoint the client starts with
        c = await EtcdStoreClient.connect([gone], discover=discover, deadline=10.0, request_timeout=1.0)
        try:
            res = await c.put(b"/moved", b"1")
            assert asked and sorted(ep.url for ep in c.endpoints) == sorted(store.urls[r] for r in (2, 3))
            kv = await c.get(b"/moved")
            assert kv is not None and kv.mod_revision == res.revision
        finally:
            await c.close()
            for server in store.servers.values():
                await server.stop(None)
            await store.cluster.close()

    asyncio.run(main())
