"""Which store client our components use (``StoreAPI``), and where it finds the store.

``connect_store`` gives the gRPC client (``cluster.store.etcd_client``: etcd's v3 API on the replicas'
client ports, TLS with our components' client certificate) unless ``$RAYKUBE_STORE_CLIENT`` is
``ray``: then the Ray-call client (``cluster.store.client``), the fallback. The variable is read in
the process that connects (an API server actor reads its own environment, which Ray's workers
inherit from whoever started Ray).

Endpoints: the replicas' client URLs, from the replica actors (Ray) over what ``raykube up``
recorded in the data directory (``cluster.store.endpoints.store_endpoints``); the client asks again
when every endpoint it knows failed (a replica replaced on another node). A store whose replicas
serve no client port (started before they did) is reached through Ray instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cluster.store.api import StoreAPI
from cluster.store.client import StoreClient
from cluster.store.endpoints import store_endpoints
from cluster.store.etcd_client import EtcdStoreClient
from cluster.store.tls import ClientTls, client_tls

log = logging.getLogger("raykube.store")

STORE_CLIENT_ENV = "RAYKUBE_STORE_CLIENT"
KINDS = ("grpc", "ray")
DEFAULT_KIND = "grpc"


def client_kind() -> str:
    """``grpc`` or ``ray``, from ``$RAYKUBE_STORE_CLIENT`` (default ``DEFAULT_KIND``)."""
    kind = os.environ.get(STORE_CLIENT_ENV, "").strip().lower() or DEFAULT_KIND
    if kind not in KINDS:
        raise ValueError(f"${STORE_CLIENT_ENV} must be one of {', '.join(KINDS)}, not {kind!r}")
    return kind


async def connect_store(
    namespace: str,
    *,
    pki_dir: Path | None = None,
    data_dir: Path | None = None,
    tls: ClientTls | None = None,
    endpoints: Sequence[str] | None = None,
    kind: str | None = None,
    **options: Any,
) -> StoreAPI:
    """A connected client of the store in Ray namespace ``namespace``.

    TLS: ``tls``, else our components' certificate from ``pki_dir`` (default ``data_dir/pki``).
    Endpoints: ``endpoints``, else the replicas' (Ray and ``data_dir``'s record). ``options``
    (``deadline``, ``request_timeout``) go to the client either way.
    """
    kind = kind or client_kind()
    if kind == "grpc":

        async def discover() -> list[str]:
            return await asyncio.to_thread(store_endpoints, namespace=namespace, data_dir=data_dir)

        urls = list(endpoints) if endpoints else await discover()
        if urls:
            if tls is None and any(u.startswith("https://") for u in urls):
                pki = pki_dir if pki_dir is not None else data_dir / "pki" if data_dir is not None else None
                if pki is None:
                    raise ValueError("the store serves TLS: give connect_store a pki_dir, data_dir or tls")
                tls = await asyncio.to_thread(client_tls, pki)
            log.info("store client: etcd v3 gRPC to %s", ", ".join(urls))
            return await EtcdStoreClient.connect(urls, tls=tls, discover=discover, **options)
        log.warning("store in %r serves no client port; using the Ray-call client", namespace)
    log.info("store client: Ray calls to the replica actors of %r", namespace)
    return await StoreClient.connect(namespace, **options)
