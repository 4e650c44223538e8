"""Regenerate the committed etcd stubs: ``python -m bench._etcd_proto._generate``.

The proto is compiled with the repository root as the include path, so the
generated ``*_pb2_grpc.py`` imports ``bench._etcd_proto.etcd_kv_pb2`` by its
package path and works without touching ``sys.path``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_REL = "bench/_etcd_proto/etcd_kv.proto"
REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("etcd_kv_pb2.py", "etcd_kv_pb2_grpc.py")


def generate(out_root: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Compile the proto into ``out_root/bench/_etcd_proto/``; return the generated files."""
    from grpc_tools import protoc

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{repo_root}",
            f"--python_out={out_root}",
            f"--grpc_python_out={out_root}",
            str(repo_root / PROTO_REL),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}")
    out_dir = out_root / Path(PROTO_REL).parent
    return [out_dir / name for name in GENERATED]


def main() -> int:
    files = generate(REPO_ROOT)
    for f in files:
        print(f"wrote {f.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
