"""Regenerate the committed CNI stubs: ``python -m netplugins.cni._generate``.

How: ``cluster.machinery.protogen``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from cluster.machinery import protogen

PROTO_REL = "proto/cni/cni.proto"
VIRTUAL_DIR = "netplugins/cni"
REPO_ROOT = protogen.REPO_ROOT
GENERATED = protogen.generated_names(PROTO_REL)


def generate(out_root: Path, repo_root: Path = REPO_ROOT) -> list[Path]:
    """Compile the proto into ``out_root/netplugins/cni/``; return the generated files."""
    return protogen.generate(PROTO_REL, VIRTUAL_DIR, out_root, repo_root)


if __name__ == "__main__":
    sys.exit(protogen.main(PROTO_REL, VIRTUAL_DIR))
