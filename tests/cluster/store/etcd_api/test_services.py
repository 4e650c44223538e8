"""The etcd v3 services over real gRPC on loopback, on three in-process replicas (no Ray).

Requests go to a follower unless said otherwise: its writes are forwarded to the leader and its
linearizable reads wait for the leader's read index, so every test also covers forwarding.
"""

from __future__ import annotations

import grpc
import pytest

from cluster.store.etcd_api.backend import REQUEST_ID_METADATA, RequestId
from cluster.store.etcdpb import rpc_pb2
from tests.cluster.store.etcd_api.served import Served, Stubs

RR = rpc_pb2.RangeRequest


def rpc_error(fn: object, *args: object, **kw: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as e:
        fn(*args, **kw)  # type: ignore[operator]
    return e.value


def put(s: Stubs, key: bytes, value: bytes, **kw: object) -> rpc_pb2.PutResponse:
    return s.kv.Put(rpc_pb2.PutRequest(key=key, value=value, **kw))  # type: ignore[arg-type]


def test_kv_through_a_follower(served3: Served) -> None:
    f = served3.follower_id()
    s = served3.stubs(f)
    first = put(s, b"/k/a", b"1")
    h = first.header
    assert (h.member_id, h.revision) == (f, 2) and h.raft_term >= 1 and h.cluster_id != 0
    leader_header = put(served3.stubs(served3.leader_id()), b"/k/b", b"2").header
    assert leader_header.cluster_id == h.cluster_id and leader_header.member_id == served3.leader_id()
    again = put(s, b"/k/a", b"3", prev_kv=True)
    assert again.prev_kv.value == b"1" and again.prev_kv.version == 1 and again.header.revision == 4

    got = s.kv.Range(RR(key=b"/k/", range_end=b"/k0"))
    assert [(kv.key, kv.value, kv.version) for kv in got.kvs] == [(b"/k/a", b"3", 2), (b"/k/b", b"2", 1)]
    assert got.count == 2 and not got.more and got.header.revision == 4 and got.header.member_id == f
    old = s.kv.Range(RR(key=b"/k/a", revision=2))
    assert old.kvs[0].value == b"1" and old.header.revision == 4
    limited = s.kv.Range(RR(key=b"/k/", range_end=b"/k0", limit=1, serializable=True))
    assert len(limited.kvs) == 1 and limited.more and limited.count == 2
    assert s.kv.Range(RR(key=b"/k/", range_end=b"/k0", count_only=True)).count == 2

    deleted = s.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/k/", range_end=b"/k0", prev_kv=True))
    assert deleted.deleted == 2 and [kv.key for kv in deleted.prev_kvs] == [b"/k/a", b"/k/b"]
    assert deleted.header.revision == 5
    nothing = s.kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"/none"))
    assert nothing.deleted == 0 and nothing.header.revision == 5


def test_txn_compare_and_swap(served3: Served) -> None:
    s = served3.stubs(served3.follower_id())
    rev = put(s, b"cas", b"v1").header.revision
    cmp = rpc_pb2.Compare(
        key=b"cas", target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL, mod_revision=rev
    )
    swap = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"cas", value=b"v2", prev_kv=True))
    read = rpc_pb2.RequestOp(request_range=RR(key=b"cas"))
    won = s.kv.Txn(rpc_pb2.TxnRequest(compare=[cmp], success=[swap], failure=[read]))
    assert won.succeeded and won.responses[0].response_put.prev_kv.value == b"v1"
    assert won.header.revision == rev + 1
    lost = s.kv.Txn(rpc_pb2.TxnRequest(compare=[cmp], success=[swap], failure=[read]))
    assert not lost.succeeded and lost.responses[0].response_range.kvs[0].value == b"v2"
    assert lost.header.revision == rev + 1


def test_errors_are_etcds(served3: Served) -> None:
    s = served3.stubs(served3.follower_id())
    for i in range(5):
        put(s, b"e", b"%d" % i)  # revisions 2..6
    assert s.kv.Compact(rpc_pb2.CompactionRequest(revision=4)).header.revision == 6
    put_d = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"d"))
    cases = [
        (s.kv.Range, RR(key=b"e", revision=3), grpc.StatusCode.OUT_OF_RANGE,
         "etcdserver: mvcc: required revision has been compacted"),
        (s.kv.Range, RR(key=b"e", revision=60), grpc.StatusCode.OUT_OF_RANGE,
         "etcdserver: mvcc: required revision is a future revision"),
        (s.kv.Compact, rpc_pb2.CompactionRequest(revision=4), grpc.StatusCode.OUT_OF_RANGE,
         "etcdserver: mvcc: required revision has been compacted"),
        (s.kv.Compact, rpc_pb2.CompactionRequest(revision=99), grpc.StatusCode.OUT_OF_RANGE,
         "etcdserver: mvcc: required revision is a future revision"),
        (s.kv.Put, rpc_pb2.PutRequest(key=b"", value=b"x"), grpc.StatusCode.INVALID_ARGUMENT,
         "etcdserver: key is not provided"),
        (s.kv.Put, rpc_pb2.PutRequest(key=b"x", value=b"x", lease=12345), grpc.StatusCode.NOT_FOUND,
         "etcdserver: requested lease not found"),
        (s.kv.Put, rpc_pb2.PutRequest(key=b"x", value=b"v" * 1_600_000), grpc.StatusCode.INVALID_ARGUMENT,
         "etcdserver: request is too large"),
        (s.kv.Put, rpc_pb2.PutRequest(key=b"missing", ignore_value=True), grpc.StatusCode.INVALID_ARGUMENT,
         "etcdserver: key not found"),
        (s.kv.Txn, rpc_pb2.TxnRequest(success=[put_d, put_d]), grpc.StatusCode.INVALID_ARGUMENT,
         "etcdserver: duplicate key given in txn request"),
        (s.kv.Txn, rpc_pb2.TxnRequest(
            success=[rpc_pb2.RequestOp(request_range=RR(key=b"k%d" % i)) for i in range(129)]),
         grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: too many operations in txn request"),
        (s.lease.LeaseRevoke, rpc_pb2.LeaseRevokeRequest(ID=777), grpc.StatusCode.NOT_FOUND,
         "etcdserver: requested lease not found"),
        (s.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(TTL=9_000_000_001), grpc.StatusCode.OUT_OF_RANGE,
         "etcdserver: too large lease TTL"),
    ]  # fmt: skip
    for call, request, code, message in cases:
        e = rpc_error(call, request)
        assert (e.code(), e.details()) == (code, message), request
    s.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(ID=42, TTL=60))
    e = rpc_error(s.lease.LeaseGrant, rpc_pb2.LeaseGrantRequest(ID=42, TTL=60))
    assert (e.code(), e.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: lease already exists",
    )
    # Nothing of the refused requests was applied.
    assert s.kv.Range(RR(key=b"x")).count == 0 and s.kv.Range(RR(key=b"e")).header.revision == 6


def test_ignore_value_and_lease_keep_the_current_ones(served3: Served) -> None:
    s = served3.stubs(served3.follower_id())
    lease = s.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=60)).ID
    put(s, b"kept", b"value", lease=lease)
    res = s.kv.Put(rpc_pb2.PutRequest(key=b"kept", ignore_value=True, ignore_lease=True, prev_kv=True))
    assert res.prev_kv.value == b"value"
    kv = s.kv.Range(RR(key=b"kept")).kvs[0]
    assert (kv.value, kv.lease, kv.version) == (b"value", lease, 2)
    s.kv.Put(rpc_pb2.PutRequest(key=b"kept", value=b"new", ignore_lease=True))
    kv = s.kv.Range(RR(key=b"kept")).kvs[0]
    assert (kv.value, kv.lease, kv.version) == (b"new", lease, 3)


def test_request_id_metadata_makes_a_retry_apply_once(served3: Served) -> None:
    s = served3.stubs(served3.follower_id())
    rid = RequestId(b"\xab" * 16, 1, 1).render()
    first = s.kv.Put(rpc_pb2.PutRequest(key=b"once", value=b"1"), metadata=[(REQUEST_ID_METADATA, rid)])
    leader = served3.stubs(served3.leader_id())
    retry = leader.kv.Put(rpc_pb2.PutRequest(key=b"once", value=b"1"), metadata=[(REQUEST_ID_METADATA, rid)])
    assert retry.header.revision == first.header.revision
    assert s.kv.Range(RR(key=b"once")).kvs[0].version == 1
    e = rpc_error(
        s.kv.Put, rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=[(REQUEST_ID_METADATA, "x/1/1")]
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and REQUEST_ID_METADATA in e.details()


def test_leases_through_a_follower(served3: Served) -> None:
    s = served3.stubs(served3.follower_id())
    granted = s.lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=30))
    lid = granted.ID
    assert granted.TTL == 30 and lid > 0 and granted.header.revision == 1
    put(s, b"/leased/a", b"x", lease=lid)
    ttl = s.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid, keys=True))
    assert ttl.grantedTTL == 30 and 0 < ttl.TTL <= 30 and list(ttl.keys) == [b"/leased/a"]
    gone = s.lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lid + 1000))
    assert (lid + 1000, -1) == (gone.ID, gone.TTL)
    assert [x.ID for x in s.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases] == [lid]

    answers = list(
        s.lease.LeaseKeepAlive(
            iter([rpc_pb2.LeaseKeepAliveRequest(ID=lid), rpc_pb2.LeaseKeepAliveRequest(ID=999)])
        )
    )
    assert [(a.ID, a.TTL) for a in answers] == [(lid, 30), (999, 0)]
    assert answers[0].header.member_id == served3.follower_id() and answers[0].header.revision == 2

    revoked = s.lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lid))
    assert revoked.header.revision == 3  # the revoke deleted the attached key
    assert s.kv.Range(RR(key=b"/leased/a")).count == 0
    assert not s.lease.LeaseLeases(rpc_pb2.LeaseLeasesRequest()).leases


def test_maintenance_cluster_and_auth(served3: Served) -> None:
    leader = served3.leader_id()
    for i in range(3):
        put(served3.stubs(), b"m%d" % i, b"v")
    statuses = {rid: served3.stubs(rid).maintenance.Status(rpc_pb2.StatusRequest()) for rid in served3.ports}
    for rid, st in statuses.items():
        assert st.header.member_id == rid and st.leader == leader and st.version == "3.4.0"
        assert (
            st.raftTerm >= 1 and st.raftIndex >= st.raftAppliedIndex > 0 and st.dbSize > 0 and not st.errors
        )
    s = served3.stubs(served3.follower_id())
    s.kv.Range(RR(key=b"m0"))  # linearizable: the follower has applied everything acknowledged
    hashes = {served3.stubs(rid).maintenance.HashKV(rpc_pb2.HashKVRequest()).hash for rid in (leader,)}
    assert s.maintenance.HashKV(rpc_pb2.HashKVRequest()).hash in hashes
    s.kv.Compact(rpc_pb2.CompactionRequest(revision=3))
    hkv = s.maintenance.HashKV(rpc_pb2.HashKVRequest())
    assert hkv.compact_revision == 3 and hkv.hash_revision == 4 and hkv.header.revision == 4
    assert s.maintenance.Hash(rpc_pb2.HashRequest()).hash == hkv.hash
    assert s.maintenance.Defragment(rpc_pb2.DefragmentRequest()).header.member_id == served3.follower_id()
    assert not s.maintenance.Alarm(rpc_pb2.AlarmRequest()).alarms

    members = s.cluster.MemberList(rpc_pb2.MemberListRequest()).members
    assert [(m.ID, m.name) for m in members] == [(1, "store-1"), (2, "store-2"), (3, "store-3")]
    assert members[0].clientURLs == [f"http://127.0.0.1:{served3.ports[1]}"]

    for call, request in [
        (s.auth.AuthStatus, rpc_pb2.AuthStatusRequest()),
        (s.auth.Authenticate, rpc_pb2.AuthenticateRequest(name="root", password="x")),
        (s.auth.RoleList, rpc_pb2.AuthRoleListRequest()),
        (s.cluster.MemberAdd, rpc_pb2.MemberAddRequest(peerURLs=["http://x:1"])),
        (s.maintenance.MoveLeader, rpc_pb2.MoveLeaderRequest(targetID=1)),
    ]:
        assert rpc_error(call, request).code() == grpc.StatusCode.UNIMPLEMENTED
    e = rpc_error(lambda: list(s.maintenance.Snapshot(rpc_pb2.SnapshotRequest())))
    assert e.code() == grpc.StatusCode.UNIMPLEMENTED
    assert e.details() == "etcdserver: Snapshot is not served by raykube's store"  # etcdctl prints it


def test_follower_cut_off_from_the_leader_answers_unavailable(served3: Served) -> None:
    f = served3.follower_id()
    backend = served3.cluster.backends[f]
    served3.call(lambda: setattr(backend, "request_timeout", 0.5))
    served3.cluster.forwarder.down.add(served3.leader_id())
    s = served3.stubs(f)
    e = rpc_error(s.kv.Put, rpc_pb2.PutRequest(key=b"k", value=b"v"))
    assert (e.code(), e.details()) == (grpc.StatusCode.UNAVAILABLE, "etcdserver: request timed out")
    # Serializable reads need no leader.
    assert s.kv.Range(RR(key=b"k", serializable=True)).count == 0


def test_hashkv_checks_its_revision_as_etcd(served1: Served) -> None:
    s = served1.stubs()
    for i in range(3):
        put(s, b"h", b"%d" % i)  # revisions 2..4
    s.kv.Compact(rpc_pb2.CompactionRequest(revision=3))
    assert s.maintenance.HashKV(rpc_pb2.HashKVRequest(revision=4)).hash_revision == 4
    e = rpc_error(s.maintenance.HashKV, rpc_pb2.HashKVRequest(revision=2))
    assert (e.code(), e.details()) == (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision has been compacted",
    )
    e = rpc_error(s.maintenance.HashKV, rpc_pb2.HashKVRequest(revision=5))
    assert (e.code(), e.details()) == (
        grpc.StatusCode.OUT_OF_RANGE,
        "etcdserver: mvcc: required revision is a future revision",
    )


def test_writes_and_reads_go_on_across_a_leader_failure(served3: Served) -> None:
    old = served3.leader_id()
    survivor = next(rid for rid in served3.ports if rid != old)
    s = served3.stubs(survivor)
    put(s, b"before", b"1")
    rid = RequestId(b"\xcd" * 16, 1, 1).render()
    first = s.kv.Put(rpc_pb2.PutRequest(key=b"retried", value=b"x"), metadata=[(REQUEST_ID_METADATA, rid)])

    async def stop_leader() -> None:
        served3.cluster.transport.down.add(old)
        served3.cluster.forwarder.down.add(old)
        await served3.servers[old].stop(None)
        await served3.cluster.backends[old].replica.close()

    served3.run(stop_leader())
    # The survivor waits out the election (its request timeout covers it) and forwards or serves.
    after = put(s, b"after", b"2")
    assert after.header.revision == first.header.revision + 1
    new_leader = served3.cluster.backends[survivor].replica.leader
    assert new_leader not in (0, old)
    retry = s.kv.Put(rpc_pb2.PutRequest(key=b"retried", value=b"x"), metadata=[(REQUEST_ID_METADATA, rid)])
    assert retry.header.revision == first.header.revision  # the remembered result, not a second write
    got = s.kv.Range(RR(key=b"\0", range_end=b"\0"))  # every key, as etcdctl get "" --prefix asks
    assert [(kv.key, kv.version) for kv in got.kvs] == [(b"after", 1), (b"before", 1), (b"retried", 1)]
