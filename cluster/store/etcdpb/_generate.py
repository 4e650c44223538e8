"""Regenerate the committed etcd v3 API stubs: ``python -m cluster.store.etcdpb._generate``.

How: cluster.machinery.protogen (rpc.proto imports kv.proto by this package's path).
"""

import sys

from cluster.machinery.protogen import Stubs

STUBS = Stubs("proto/etcd/rpc.proto", "cluster/store/etcdpb", also=("proto/etcd/kv.proto",))

if __name__ == "__main__":
    sys.exit(STUBS.main())
