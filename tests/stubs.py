"""The committed gRPC stubs of ``proto/`` match what protoc makes of the .proto today."""

from __future__ import annotations

import re
from pathlib import Path

from cluster.machinery.protogen import Stubs

# Lines that only record which protoc / grpcio-tools produced the file.
_VERSION_PATTERNS = [
    (re.compile(r"^# Protobuf Python Version: .*$", re.M), "# Protobuf Python Version: X"),
    (
        re.compile(r"_runtime_version\.ValidateProtobufRuntimeVersion\(.*?\n\)", re.S),
        "_runtime_version.ValidateProtobufRuntimeVersion(X)",
    ),
    (re.compile(r"^GRPC_GENERATED_VERSION = .*$", re.M), "GRPC_GENERATED_VERSION = X"),
]


def normalize(text: str) -> str:
    for pattern, repl in _VERSION_PATTERNS:
        text = pattern.sub(repl, text)
    return text


def assert_fresh(stubs: Stubs, tmp_path: Path) -> None:
    """Fail naming the command that regenerates a missing or stale stub."""
    fresh = stubs.generate(tmp_path)
    assert [f.name for f in fresh] == list(stubs.names)
    regenerate = f"python -m {stubs.virtual_dir.replace('/', '.')}._generate"
    for f in fresh:
        committed = stubs.committed_dir / f.name
        assert committed.exists(), f"{committed} missing: run {regenerate}"
        assert normalize(committed.read_text()) == normalize(f.read_text()), (
            f"{committed.name} is stale relative to {stubs.proto_rel}: run {regenerate}"
        )
