"""One grpc.aio server serving etcd's v3 API for a ``Backend``: KV, Watch, Lease, Cluster,
Maintenance and Auth (which answers UNIMPLEMENTED), with TLS optional.

``build_server`` returns the server unstarted (``await server.start()``; ``bound_port`` tells the
port when 0 asked for a free one). With ``ServerTLS`` the port speaks TLS only, and with
``require_client_cert`` the handshake refuses a client without a certificate of the given CA, as
etcd's ``--client-cert-auth``. ``interceptors`` run before every call (the store's client identity
check, ``cluster.store.tls.ClientIdentityInterceptor``). Message limits as etcd's: requests up to
--max-request-bytes plus 512 KiB of gRPC overhead, responses unbounded.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from cluster.store.etcd_api.backend import Backend
from cluster.store.etcd_api.kv import KVServicer
from cluster.store.etcd_api.lease import LeaseServicer
from cluster.store.etcd_api.maintenance import AuthServicer, ClusterServicer, MaintenanceServicer
from cluster.store.etcd_api.watch import WatchServicer
from cluster.store.etcdpb import rpc_pb2_grpc
from cluster.store.mvcc import MAX_REQUEST_BYTES

GRPC_OVERHEAD_BYTES = 512 * 1024
MAX_SEND_BYTES = 2**31 - 1

_PORTS: weakref.WeakKeyDictionary[grpc.aio.Server, int] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """PEM bytes: the CA that signs client certificates, the server's certificate (chain) and key."""

    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    require_client_cert: bool = True

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_pem, self.cert_pem)],
            root_certificates=self.ca_pem,
            require_client_auth=self.require_client_cert,
        )


def build_server(
    backend: Backend,
    *,
    host: str,
    port: int,
    tls: ServerTLS | None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    watch_options: dict[str, Any] | None = None,
) -> grpc.aio.Server:
    """A grpc.aio server with every etcd service of ``backend`` registered, bound to ``host:port``.

    Raises RuntimeError when the address cannot be bound. ``watch_options`` go to
    ``WatchServicer`` (tests shorten its progress interval)."""
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_receive_message_length", MAX_REQUEST_BYTES + GRPC_OVERHEAD_BYTES),
            ("grpc.max_send_message_length", MAX_SEND_BYTES),
            ("grpc.so_reuseport", 0),
            # etcd's server keepalive enforcement: clients may ping every 5 s, even without calls.
            ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    rpc_pb2_grpc.add_KVServicer_to_server(KVServicer(backend), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_WatchServicer_to_server(WatchServicer(backend, **(watch_options or {})), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseServicer(backend), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_ClusterServicer_to_server(ClusterServicer(backend), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_MaintenanceServicer_to_server(MaintenanceServicer(backend), server)  # type: ignore[no-untyped-call]
    rpc_pb2_grpc.add_AuthServicer_to_server(AuthServicer(), server)  # type: ignore[no-untyped-call]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = (
            server.add_secure_port(address, tls.credentials()) if tls else server.add_insecure_port(address)
        )
    except RuntimeError as e:
        raise RuntimeError(f"etcd API: cannot listen on {address}: {e}") from e
    if bound == 0:  # older grpc releases report a failed bind as port 0
        raise RuntimeError(f"etcd API: cannot listen on {address}")
    _PORTS[server] = bound
    return server


def bound_port(server: grpc.aio.Server) -> int:
    """The port ``build_server`` bound (the chosen one when it was asked for port 0)."""
    return _PORTS[server]
