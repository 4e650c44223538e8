"""convert: etcd's request checks and the proto <-> store value mapping, on a real MVCCStore."""

from __future__ import annotations

import pytest

from cluster.store.etcd_api import convert, errors
from cluster.store.etcdpb import rpc_pb2
from cluster.store.mvcc import (
    Compare,
    CompareResult,
    CompareTarget,
    MVCCStore,
    PutOp,
    Request,
    TxnOp,
    TxnResult,
)

RR = rpc_pb2.RangeRequest


def store_with(*puts: tuple[bytes, bytes]) -> MVCCStore:
    s = MVCCStore()
    for k, v in puts:
        s.apply(Request(b"", 0, 0, PutOp(k, v)))
    return s


def op(**kw: object) -> rpc_pb2.RequestOp:
    return rpc_pb2.RequestOp(**kw)  # type: ignore[arg-type]


def put(key: bytes) -> rpc_pb2.RequestOp:
    return op(request_put=rpc_pb2.PutRequest(key=key, value=b"v"))


def test_checks_answer_etcds_errors() -> None:
    with pytest.raises(errors.EtcdError) as e:
        convert.check_range(RR())
    assert e.value == errors.EMPTY_KEY and e.value.message == "etcdserver: key is not provided"
    with pytest.raises(errors.EtcdError) as e:
        convert.check_range(RR(key=b"a", sort_order=7))
    assert e.value == errors.INVALID_SORT_OPTION
    with pytest.raises(errors.EtcdError) as e:
        convert.check_put(rpc_pb2.PutRequest(key=b"a", value=b"x", ignore_value=True))
    assert e.value == errors.VALUE_PROVIDED
    with pytest.raises(errors.EtcdError) as e:
        convert.check_put(rpc_pb2.PutRequest(key=b"a", lease=5, ignore_lease=True))
    assert e.value == errors.LEASE_PROVIDED
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(success=[put(b"k%d" % i) for i in range(129)]))
    assert e.value == errors.TOO_MANY_OPS and e.value.code == errors.Code.INVALID_ARGUMENT
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(success=[put(b"a"), put(b"a")]))
    assert e.value.message == "etcdserver: duplicate key given in txn request"
    deleted_then_put = [
        op(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a", range_end=b"c")),
        put(b"b"),
    ]
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(failure=deleted_then_put))
    assert e.value == errors.DUPLICATE_KEY
    # The two branches of a nested txn may put the same key: only one runs.
    nested = rpc_pb2.TxnRequest(success=[put(b"a")], failure=[put(b"a")])
    convert.check_txn(rpc_pb2.TxnRequest(success=[op(request_txn=nested)]))
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(success=[op(request_txn=nested), put(b"a")]))
    assert e.value == errors.DUPLICATE_KEY
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(result=0, target=0)]))
    assert e.value == errors.EMPTY_KEY
    with pytest.raises(errors.EtcdError) as e:
        convert.check_txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()]))
    assert e.value == errors.KEY_NOT_FOUND


def test_range_sort_filters_limit_as_etcd() -> None:
    s = store_with((b"/a", b"3"), (b"/b", b"1"), (b"/c", b"2"), (b"/b", b"4"))  # /b mod 5, version 2
    base = dict(key=b"/", range_end=b"0")

    def rng(**kw: object) -> rpc_pb2.RangeResponse:
        q = convert.range_query(RR(**base, **kw))  # type: ignore[arg-type]
        return q.finish(s.range(q.op))

    plain = rng(limit=2)
    assert [kv.key for kv in plain.kvs] == [b"/a", b"/b"] and plain.more and plain.count == 3
    by_value = rng(sort_target=RR.VALUE, sort_order=RR.DESCEND, limit=2)
    assert [kv.value for kv in by_value.kvs] == [b"4", b"3"] and by_value.more and by_value.count == 3
    ascend_mod = rng(sort_target=RR.MOD)  # a target without an order sorts ascending
    assert [kv.key for kv in ascend_mod.kvs] == [b"/a", b"/c", b"/b"]
    ascend_mod = rng(sort_target=RR.MOD, limit=2)  # etcd: the first 2 keys, then sorted
    assert [kv.key for kv in ascend_mod.kvs] == [b"/a", b"/b"] and ascend_mod.more
    ascend_mod = rng(sort_target=RR.MOD, sort_order=RR.ASCEND, limit=2)
    assert [kv.key for kv in ascend_mod.kvs] == [b"/a", b"/c"] and ascend_mod.more
    desc_key = rng(sort_order=RR.DESCEND)
    assert [kv.key for kv in desc_key.kvs] == [b"/c", b"/b", b"/a"]
    filtered = rng(min_mod_revision=3, max_create_revision=4, keys_only=True)
    assert [(kv.key, kv.value) for kv in filtered.kvs] == [(b"/b", b""), (b"/c", b"")]
    assert filtered.count == 3  # etcd's count is the range's, before the filters
    assert [kv.key for kv in rng(min_create_revision=3, max_mod_revision=4).kvs] == [b"/c"]
    counted = rng(count_only=True, sort_order=RR.DESCEND)
    assert counted.count == 3 and not counted.kvs
    assert [kv.value for kv in rng(keys_only=True).kvs] == [b"", b"", b""]


def test_txn_roundtrip_with_nested_ops_and_every_compare_target() -> None:
    s = store_with((b"k", b"v"))
    cmp = [
        rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.VALUE, result=rpc_pb2.Compare.EQUAL, value=b"v"),
        rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.GREATER, version=0),
        rpc_pb2.Compare(
            key=b"k", target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.LESS, create_revision=3
        ),
        rpc_pb2.Compare(
            key=b"k", target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.NOT_EQUAL, mod_revision=9
        ),
        rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.LEASE, result=rpc_pb2.Compare.EQUAL, lease=0),
    ]
    inner = rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=b"x", target=rpc_pb2.Compare.VERSION, result=rpc_pb2.Compare.EQUAL)],
        success=[put(b"x"), op(request_range=RR(key=b"x"))],
    )
    req = rpc_pb2.TxnRequest(
        compare=cmp,
        success=[
            op(request_range=RR(key=b"k", sort_order=RR.DESCEND)),
            op(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"k", prev_kv=True)),
            op(request_txn=inner),
        ],
        failure=[put(b"never")],
    )
    convert.check_txn(req)
    txn = convert.txn_op(req)
    assert txn.compare[0] == Compare(b"k", CompareTarget.VALUE, CompareResult.EQUAL, b"v")
    assert sorted(c.target for c in txn.compare) == list(CompareTarget)
    res = s.apply(Request(b"", 0, 0, txn))
    assert isinstance(res, TxnResult) and res.succeeded
    out = convert.txn_response(req, res)
    assert out.succeeded
    r0, r1, r2 = out.responses
    assert [kv.value for kv in r0.response_range.kvs] == [b"v"] and r0.response_range.header.revision == 2
    assert r1.response_delete_range.deleted == 1 and r1.response_delete_range.prev_kvs[0].value == b"v"
    assert r2.response_txn.succeeded and r2.response_txn.responses[1].response_range.kvs[0].key == b"x"
    assert out.responses[1].response_delete_range.header.revision == res.revision == 3


def test_compare_reads_the_union_member_of_its_target() -> None:
    """etcd compares against zero when the union holds another member than the target's."""
    c = convert.compare_op(
        rpc_pb2.Compare(key=b"k", target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL, version=5)
    )
    assert c.value == 0
    with pytest.raises(errors.EtcdError) as e:
        convert.compare_op(rpc_pb2.Compare(key=b"k", range_end=b"z"))
    assert e.value.code == errors.Code.UNIMPLEMENTED
    assert isinstance(convert.txn_op(rpc_pb2.TxnRequest()), TxnOp)
