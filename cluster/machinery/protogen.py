"""Compile one of ``proto/``'s services into committed Python stubs (``grpc_tools.protoc``).

A proto is compiled through a virtual include mapping ``<package dir>=<proto dir>``, so protoc sees
it as ``<package dir>/<file>.proto``: the generated files land in that Python package and the
``*_pb2_grpc.py`` module imports its ``*_pb2`` by package path, with no ``sys.path`` tricks. The
proto's own ``package`` (hence every gRPC method path) is unaffected. The ``.pyi`` gives mypy the
message types. Each stub package has a ``_generate`` module naming its proto; a test per package
fails when the committed stubs are stale.

A package may hold several protos of one directory (``also``) compiled in one run; one imports
another by its virtual path (``import "<package dir>/<file>.proto"``), which the same mapping
resolves, so the generated modules import each other by package path too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def generated_names(proto_rel: str) -> tuple[str, str, str]:
    stem = Path(proto_rel).stem
    return (f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py")


def generate(
    proto_rel: str, virtual_dir: str, out_root: Path, repo_root: Path = REPO_ROOT, also: tuple[str, ...] = ()
) -> list[Path]:
    """Compile ``repo_root/proto_rel`` (and the protos ``also`` of the same directory) into
    ``out_root/virtual_dir/``; return the generated files."""
    from grpc_tools import protoc

    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    physical_dir = (repo_root / proto_rel).parent
    protos = (proto_rel, *also)
    if any((repo_root / p).parent != physical_dir for p in also):
        raise ValueError(f"{also}: every proto of a stub package must be in {physical_dir}")
    # protobuf's well-known types (google/protobuf/*.proto) ship inside grpc_tools.
    well_known = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{virtual_dir}={physical_dir}",
            f"-I{well_known}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            *(f"{virtual_dir}/{Path(p).name}" for p in protos),
        ]
    )
    if rc != 0:
        raise RuntimeError(f"grpc_tools.protoc failed with exit code {rc}")
    return [out_root / virtual_dir / name for p in protos for name in generated_names(p)]


@dataclass(frozen=True, slots=True)
class Stubs:
    """One stub package: ``proto_rel`` (and ``also``) compiled into the package directory ``virtual_dir``."""

    proto_rel: str
    virtual_dir: str
    also: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for p in (self.proto_rel, *self.also) for name in generated_names(p))

    @property
    def committed_dir(self) -> Path:
        return REPO_ROOT / self.virtual_dir

    def generate(self, out_root: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
        return generate(self.proto_rel, self.virtual_dir, out_root, repo_root, self.also)

    def main(self) -> int:
        """Rewrite the committed stubs (``python -m <package>._generate``)."""
        for f in self.generate(REPO_ROOT):
            print(f"wrote {f.relative_to(REPO_ROOT)}")
        return 0
