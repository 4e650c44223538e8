"""The committed etcd stubs must match what etcd_kv.proto compiles to today."""

from __future__ import annotations

import re
from pathlib import Path

from bench._etcd_proto import _generate

COMMITTED_DIR = _generate.REPO_ROOT / "bench" / "_etcd_proto"

# Lines that only record which protoc / grpcio-tools produced the file. A different
# (allowed) grpcio-tools version changes them without the stubs being stale.
_VERSION_PATTERNS = [
    (re.compile(r"^# Protobuf Python Version: .*$", re.M), "# Protobuf Python Version: X"),
    (
        re.compile(r"_runtime_version\.ValidateProtobufRuntimeVersion\(.*?\n\)", re.S),
        "_runtime_version.ValidateProtobufRuntimeVersion(X)",
    ),
    (re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M), "GRPC_GENERATED_VERSION = X"),
]


def _normalize(text: str) -> str:
    for pattern, repl in _VERSION_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = _generate.generate(tmp_path)
    assert [f.name for f in fresh] == list(_generate.GENERATED)
    for f in fresh:
        committed = COMMITTED_DIR / f.name
        assert committed.exists(), f"{committed} missing: run python -m bench._etcd_proto._generate"
        assert _normalize(committed.read_text()) == _normalize(f.read_text()), (
            f"{committed.name} is stale relative to etcd_kv.proto: run python -m bench._etcd_proto._generate"
        )


def test_stubs_speak_etcds_method_paths() -> None:
    from bench._etcd_proto import etcd_kv_pb2

    kv = etcd_kv_pb2.DESCRIPTOR.services_by_name["KV"]
    assert kv.full_name == "etcdserverpb.KV"
    assert {m.name for m in kv.methods} >= {"Put", "Range"}
    put = etcd_kv_pb2.PutRequest.DESCRIPTOR.fields_by_name
    assert (put["key"].number, put["value"].number, put["prev_kv"].number) == (1, 2, 4)
    assert etcd_kv_pb2.RangeRequest.DESCRIPTOR.fields_by_name["serializable"].number == 7
