"""netplugins: see docs/architecture.md. gRPC fork handlers off first (cluster.machinery.grpcfork)."""

from cluster.machinery import grpcfork  # noqa: F401
