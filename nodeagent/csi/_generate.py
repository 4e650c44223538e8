"""Regenerate the committed CSI stubs: ``python -m nodeagent.csi._generate``.

How: cluster.machinery.protogen.
"""

import sys

from cluster.machinery.protogen import Stubs

STUBS = Stubs("proto/csi/csi.proto", "nodeagent/csi")

if __name__ == "__main__":
    sys.exit(STUBS.main())
