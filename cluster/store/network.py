"""Where each store replica listens: its client port (etcd's v3 gRPC API) and its peer port (Raft
between replicas), chosen at ``raykube up`` and kept for the replica's life.

The choice (``choose_ports``): a replica that has ports recorded keeps them (a restarted cluster
keeps its endpoints, so ``raykube store env``'s output stays right); the others take etcd's
2379/2380, else the next pairs (2381/2382, ...) free on the node that runs ``up`` and not taken by
another replica; ``--store-port N`` starts the search at N; port 0 lets each replica bind free ports
(tests run many clusters on one host, so ``up --port 0`` means that too, unless ``--store-port``).

A replica actor gets its ``StoreNetwork`` as a constructor argument, so a Ray restart reuses it;
with ports 0 the replica records what it bound in its own data directory (``NETWORK_MARKER``) and a
restart binds those again. ``raykube up`` records every replica's ports in the store directory
(``ENDPOINTS_MARKER``), where ``cluster.store.endpoints`` finds them.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from cluster.store.membership import read_marker, write_marker
from cluster.store.tls import StoreTls

DEFAULT_CLIENT_PORT = 2379  # etcd's
NETWORK_MARKER = "network.json"  # in a replica's data directory: the ports it bound
ENDPOINTS_MARKER = "endpoints.json"  # in the store directory: every replica's host and ports
LISTEN_HOST = "0.0.0.0"  # every address of the node: its own IP for the others, loopback for itself


@dataclass(frozen=True, slots=True)
class StoreNetwork:
    """A replica's listeners: ports (0: a free one, then kept) and TLS (None: plain TCP, for tests
    of the core only; ``raykube up`` always gives TLS)."""

    client_port: int = 0
    peer_port: int = 0
    tls: StoreTls | None = None
    host: str = LISTEN_HOST

    def with_ports(self, client_port: int, peer_port: int) -> StoreNetwork:
        return replace(self, client_port=client_port, peer_port=peer_port)


def port_free(port: int, host: str = LISTEN_HOST) -> bool:
    """Whether nothing listens on ``host:port`` of this node (connections in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            if err.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def choose_ports(
    replica_ids: Iterable[int],
    recorded: Mapping[int, tuple[int, int]],
    base: int,
    free: Callable[[int], bool] = port_free,
) -> dict[int, tuple[int, int]]:
    """Replica id -> (client port, peer port): the recorded ones, else pairs from ``base`` (2379:
    etcd's) upwards free by ``free`` and not another replica's; ``base`` 0: (0, 0), free ports bound
    by the replica. Pure but for ``free``."""
    chosen: dict[int, tuple[int, int]] = {}
    taken = {p for pair in recorded.values() for p in pair if p}
    ids = list(replica_ids)
    for rid in ids:
        if rid in recorded and all(recorded[rid]):
            chosen[rid] = recorded[rid]
    candidate = base
    for rid in ids:
        if rid in chosen:
            continue
        if base == 0:
            chosen[rid] = (0, 0)
            continue
        while True:
            if candidate + 1 > 65535:
                raise ValueError(f"no free pair of store ports from {base} upwards")
            pair = (candidate, candidate + 1)
            candidate += 2
            if not taken & set(pair) and all(free(p) for p in pair):
                break
        taken.update(pair)
        chosen[rid] = pair
    return chosen


def recorded_ports(replica_dir: Path) -> tuple[int, int] | None:
    """The ports a replica bound before (its own ``NETWORK_MARKER``), or None."""
    marker = read_marker(replica_dir, NETWORK_MARKER)
    if not marker:
        return None
    return int(marker.get("client_port", 0)), int(marker.get("peer_port", 0))


def record_ports(replica_dir: Path, client_port: int, peer_port: int) -> None:
    if recorded_ports(replica_dir) != (client_port, peer_port):
        write_marker(replica_dir, NETWORK_MARKER, {"client_port": client_port, "peer_port": peer_port})


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one replica serves, as ``raykube up`` last saw it."""

    replica_id: int
    host: str  # its node's IP address
    client_port: int
    peer_port: int

    @property
    def client_url(self) -> str:
        return f"https://{url_host(self.host)}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://{url_host(self.host)}:{self.peer_port}"


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def record_endpoints(store_dir: Path, endpoints: Iterable[Endpoint]) -> None:
    """Remember every replica's host and ports (``raykube up``, after they answered)."""
    payload = {
        str(e.replica_id): {"host": e.host, "client_port": e.client_port, "peer_port": e.peer_port}
        for e in sorted(endpoints, key=lambda e: e.replica_id)
    }
    if payload and payload != read_marker(store_dir, ENDPOINTS_MARKER):
        write_marker(store_dir, ENDPOINTS_MARKER, payload)


def recorded_endpoints(store_dir: Path) -> dict[int, Endpoint]:
    marker = read_marker(store_dir, ENDPOINTS_MARKER) or {}
    return {
        int(rid): Endpoint(int(rid), str(e.get("host", "")), int(e["client_port"]), int(e["peer_port"]))
        for rid, e in marker.items()
    }
