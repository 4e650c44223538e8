"""Regenerate the committed CNI stubs: ``python -m netplugins.cni._generate``.

How: cluster.machinery.protogen.
"""

import sys

from cluster.machinery.protogen import Stubs

STUBS = Stubs("proto/cni/cni.proto", "netplugins/cni")

if __name__ == "__main__":
    sys.exit(STUBS.main())
