"""The CNI stubs are fresh relative to proto/cni/cni.proto and carry the service the docs name."""

from __future__ import annotations

from pathlib import Path

from netplugins.cni import _generate, cni_pb2
from tests.stubs import assert_fresh


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    assert_fresh(_generate.STUBS, tmp_path)


def test_service_and_methods() -> None:
    service = cni_pb2.DESCRIPTOR.services_by_name["CNI"]
    assert cni_pb2.DESCRIPTOR.package == "raykube.cni.v1"
    assert {m.name for m in service.methods} == {"Add", "Del", "Check", "Status", "GC", "Version"}
    # The error object's fields are the spec's.
    assert [f.name for f in cni_pb2.Error.DESCRIPTOR.fields] == ["cni_version", "code", "msg", "details"]
