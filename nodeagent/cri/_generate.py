"""Regenerate the committed CRI stubs: ``python -m nodeagent.cri._generate``.

How: cluster.machinery.protogen.
"""

import sys

from cluster.machinery.protogen import Stubs

STUBS = Stubs("proto/cri/api.proto", "nodeagent/cri")

if __name__ == "__main__":
    sys.exit(STUBS.main())
