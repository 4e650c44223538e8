"""The CNI stubs are fresh relative to proto/cni/cni.proto and carry the service the docs name."""

from __future__ import annotations

from pathlib import Path

from netplugins.cni import _generate, cni_pb2
from tests.nodeagent.cri.test_proto import _normalize

COMMITTED_DIR = _generate.REPO_ROOT / "netplugins" / "cni"


def test_generated_stubs_are_fresh(tmp_path: Path) -> None:
    fresh = _generate.generate(tmp_path)
    assert [f.name for f in fresh] == list(_generate.GENERATED)
    for f in fresh:
        committed = COMMITTED_DIR / f.name
        assert committed.exists(), f"{committed} missing: run python -m netplugins.cni._generate"
        assert _normalize(committed.read_text()) == _normalize(f.read_text()), (
            f"{committed.name} is stale relative to cni.proto: run python -m netplugins.cni._generate"
        )


def test_service_and_methods() -> None:
    service = cni_pb2.DESCRIPTOR.services_by_name["CNI"]
    assert cni_pb2.DESCRIPTOR.package == "raykube.cni.v1"
    assert {m.name for m in service.methods} == {"Add", "Del", "Check", "Status", "GC", "Version"}
    # The error object's fields are the spec's.
    assert [f.name for f in cni_pb2.Error.DESCRIPTOR.fields] == ["cni_version", "code", "msg", "details"]
