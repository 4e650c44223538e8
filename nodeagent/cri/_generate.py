"""Regenerate the committed CRI stubs: ``python -m nodeagent.cri._generate``.

``proto/cri/api.proto`` is compiled through the virtual include mapping
``nodeagent/cri=proto/cri``, so protoc sees it as ``nodeagent/cri/api.proto``: the
generated files land in this package and ``api_pb2_grpc.py`` imports
``nodeagent.cri.api_pb2`` by its package path, with no ``sys.path`` tricks. The
proto package (``runtime.v1``) and hence every gRPC method path are unaffected.
``api_pb2.pyi`` gives mypy the message types.
"""

from __future__ import annotations

import sys
from pathlib import Path

PROTO_REL = "proto/cri/api.proto"
VIRTUAL_DIR = "nodeagent/cri"
REPO_ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("api_pb2.py", "api_pb2.pyi", "api_pb2_grpc.py")


def generate(out_root: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Compile the proto into ``out_root/nodeagent/cri/``; return the generated files."""
    from grpc_tools import protoc

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    physical_dir = (repo_root / PROTO_REL).parent
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{VIRTUAL_DIR}={physical_dir}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            f"{VIRTUAL_DIR}/{Path(PROTO_REL).name}",
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}")
    out_dir = out_root / VIRTUAL_DIR
    return [out_dir / name for name in GENERATED]


def main() -> int:
    files = generate(REPO_ROOT)
    for f in files:
        print(f"wrote {f.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
