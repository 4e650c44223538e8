"""Minimal etcd v3 gRPC stubs for the store benchmark (generated from etcd_kv.proto)."""
