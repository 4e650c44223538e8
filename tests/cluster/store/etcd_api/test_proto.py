"""The etcd v3 API stubs: fresh relative to proto/etcd, importing each other by package path."""

from __future__ import annotations

from pathlib import Path

from cluster.store.etcdpb import _generate, kv_pb2, rpc_pb2
from tests.stubs import assert_fresh


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    assert_fresh(_generate.STUBS, tmp_path)


def test_modules_import_by_package_path() -> None:
    committed = _generate.STUBS.committed_dir
    assert "from cluster.store.etcdpb import kv_pb2" in (committed / "rpc_pb2.py").read_text()
    assert "from cluster.store.etcdpb import rpc_pb2" in (committed / "rpc_pb2_grpc.py").read_text()


def test_wire_names_are_etcds() -> None:
    """Method paths and field numbers etcdctl relies on (etcd's api/etcdserverpb/rpc.proto)."""
    services = rpc_pb2.DESCRIPTOR.services_by_name
    assert services["KV"].full_name == "etcdserverpb.KV"
    assert [m.name for m in services["KV"].methods] == ["Range", "Put", "DeleteRange", "Txn", "Compact"]
    assert kv_pb2.KeyValue.DESCRIPTOR.full_name == "mvccpb.KeyValue"
    assert rpc_pb2.WatchResponse.DESCRIPTOR.fields_by_name["events"].number == 11
    assert rpc_pb2.Compare.DESCRIPTOR.fields_by_name["range_end"].number == 64
    assert rpc_pb2.RangeRequest.DESCRIPTOR.fields_by_name["max_create_revision"].number == 13
    encoded = rpc_pb2.PutRequest(key=b"k", value=b"v", lease=7, prev_kv=True).SerializeToString()
    assert encoded == b"\n\x01k\x12\x01v\x18\x07 \x01"
