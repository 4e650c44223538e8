"""The API server as a detached, named Ray actor: ``apiserver`` on the node that ran ``raykube up``,
``apiserver-<node name>`` on every other control-plane node (``cluster.bootstrap.deploy_apiserver``).

All instances serve the same port on their nodes and keep no state of their own (everything is in
the store; each has its own watch cache), so any of them answers any request. They bind with
SO_REUSEPORT: where several Ray nodes share one host (``ray.cluster_utils``) they share the port
and the kernel spreads connections over the live ones. So that a second cluster on the same host
cannot silently share the port too, the first instance (``claim_port``) checks on its first start
that nothing listens on it yet.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import ray

from cluster.apiserver.admission.service_allocation import SERVICE_CIDR, ServiceNetwork
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.server import run_server
from cluster.apiserver.tls import Pki, server_ssl_context
from cluster.machinery.files import private_dir, write_private
from cluster.store.clients import connect_store

log = logging.getLogger("raykube.apiserver")

ACTOR_NAME = "apiserver"


def instance_name(node: str, *, first: bool) -> str:
    """``apiserver`` for the instance on the node running ``up`` (``first``), else
    ``apiserver-<node>`` (``node``: its Kubernetes node name)."""
    return ACTOR_NAME if first else f"{ACTOR_NAME}-{node}"


class PortTaken(RuntimeError):
    """Something already listens on the API server's port."""


def check_port_free(host: str, port: int) -> None:
    """Raise ``PortTaken`` when a socket listens on ``host:port``. SO_REUSEADDR (as the server
    sets it) ignores connections lingering in TIME_WAIT, but not a listener."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise PortTaken(
                f"port {port} is already in use on this host (another raykube cluster or program?); "
                "stop it or give `raykube up` another --port"
            ) from None


async def _wait_port_free(host: str, port: int, timeout: float = 10.0) -> None:
    """``check_port_free``, allowing a few seconds for the API server of a cluster just taken down
    (``raykube down``; ``ray.kill`` does not wait for the process to go) to release the port."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            check_port_free(host, port)
            return
        except PortTaken:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.25)


def install_pki(pki_dir: Path, files: dict[str, bytes]) -> None:
    """Write the cluster's PKI files (from the node that ran ``up``) where this node lacks them or
    has other contents: an API server on another host has no copy of that node's data directory."""
    private_dir(pki_dir)
    for name, data in files.items():
        path = pki_dir / name
        if not path.exists() or path.read_bytes() != data:
            write_private(path, data)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)  # type: ignore[call-overload]
class ApiServerActor:
    def __init__(
        self,
        namespace: str,
        pki_dir: str,
        host: str,
        port: int,
        service_cidr: str = str(SERVICE_CIDR),
        *,
        node: str | None = None,
        reuse_port: bool = False,
        claim_port: bool = False,
        pki_files: dict[str, bytes] | None = None,
        security: dict[str, Any] | None = None,
        store_client: str | None = None,
    ) -> None:
        """``store_client``: ``grpc`` or ``ray`` (``cluster.store.clients``; None: this process's
        ``$RAYKUBE_STORE_CLIENT``, else the default)."""
        logging.basicConfig(level=logging.INFO)
        self.namespace = namespace
        self.store_client = store_client
        self.services = ServiceNetwork.parse(service_cidr)
        if pki_files:
            install_pki(Path(pki_dir), pki_files)
        self.pki = Pki.in_dir(Path(pki_dir))
        self.host, self.port = host, port
        self.node = node  # this instance's node name: it keeps its address in the kubernetes Endpoints
        self.reuse_port = reuse_port
        self.claim_port = (
            claim_port and port != 0 and not ray.get_runtime_context().was_current_actor_reconstructed
        )
        self.security = SecurityOptions.from_dict(security)  # files it names are in pki_dir
        self.bound: int | None = None
        self.runner: Any = None
        self.ssl: ssl.SSLContext | None = None
        self._started = asyncio.get_event_loop().create_task(self._start())

    async def _start(self) -> None:
        if self.claim_port:
            await _wait_port_free(self.host, self.port)
        # The store's client certificate is in the PKI directory (shipped with ``pki_files``).
        client = await connect_store(self.namespace, pki_dir=self.pki.ca_cert.parent, kind=self.store_client)
        ctx = self.ssl = server_ssl_context(self.pki)

        def ready(port: int) -> None:
            self.bound = port

        advertise = None
        if self.node is not None:
            # Where clients reach it: the address it binds, or this node's when it binds them all.
            ip = self.host
            if ip in ("", "0.0.0.0", "::"):
                ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            advertise = (self.node, str(ip))
        self.runner = await run_server(
            client,
            self.host,
            self.port,
            ctx,
            ready=ready,
            pki_dir=self.pki.ca_cert.parent,
            services=self.services,
            reuse_port=self.reuse_port,
            advertise=advertise,
            security=self.security,
        )

    async def ready(self) -> int:
        await asyncio.shield(self._started)
        assert self.bound is not None
        return self.bound

    async def reload_certificate(self, pki_files: dict[str, bytes] | None = None) -> None:
        """Serve the serving certificate now in the PKI directory (``raykube up`` re-issued it for
        a changed set of names; ``pki_files`` brings it to another host); new connections get it."""
        if pki_files:
            install_pki(self.pki.ca_cert.parent, pki_files)
        await asyncio.shield(self._started)
        assert self.ssl is not None
        self.ssl.load_cert_chain(certfile=str(self.pki.server_cert), keyfile=str(self.pki.server_key))

    async def shutdown(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
