"""etcd's v3 gRPC API served by a store replica.

``backend`` is the one interface the services call (``Backend``; ``ReplicaBackend`` adapts an
in-process ``cluster.store.replica.Replica``, forwarding to the leader what only the leader may
do). The services translate etcd's protobuf messages (``cluster.store.etcdpb``) to and from
``cluster.store.ops`` values: ``kv``, ``lease``, ``watch``, ``maintenance`` (with the Cluster
service), and ``server.build_server`` registers them on one grpc.aio server, with TLS optional.
"""
