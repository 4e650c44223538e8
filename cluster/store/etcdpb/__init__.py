"""Generated stubs of etcd's v3 gRPC API (``proto/etcd``): ``rpc_pb2`` (etcdserverpb), ``kv_pb2`` (mvccpb)."""
