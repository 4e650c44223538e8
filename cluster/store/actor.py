"""The store replica as a detached, named Ray actor: a thin shell around ``Replica``.

Replicas are named ``store-<id>`` in the cluster's Ray namespace. Raft messages travel between
them on direct connections (``cluster.store.peer_transport``: one long-lived TCP connection per
peer, mutual TLS when the network has TLS), each replica listening on its peer port; a replica finds
a peer's address by asking the peer's actor (``peer_address``). Ray keeps placement, restarts and
discovery. The fallback (``ReplicaOptions.transport = "ray"`` or ``$RAYKUBE_STORE_TRANSPORT=ray``)
sends one fire-and-forget actor call per destination per Raft round (``step_batch``). Ray restarts
a killed replica with the same constructor arguments, and the replica recovers from its
write-ahead log.

Fail stop: when the replica reports a fatal disk or apply failure, the actor ends its own process
(``os._exit``, which Ray counts as a crash and restarts, unlike ``exit_actor``); until then its
status says ``failed``. A restarted actor whose data directory is empty (Ray may place it on a
node without its disk) never bootstraps: ``was_current_actor_reconstructed`` overrides the first
start's arguments, and the replica awaits replacement (``cluster.store.membership``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from cluster.store.etcd_api.backend import MemberURLs, ReplicaBackend
from cluster.store.etcd_api.server import ServerTLS, bound_port, build_server
from cluster.store.forwarding import GrpcForwarder, forward_handler
from cluster.store.membership import empty_start_rule
from cluster.store.mvcc import RangeOp
from cluster.store.network import StoreNetwork, record_ports, recorded_ports, url_host
from cluster.store.peer_transport import PeerLink, Resolver, transport_kind
from cluster.store.raft.types import ConfChange, ConfChangeType, Message
from cluster.store.replica import NotLeader, Replica, ReplicaOptions
from cluster.store.tls import ClientIdentityInterceptor, forwarding_tls

log = logging.getLogger("raykube.store")

REPLICA_PREFIX = "store-"


def replica_name(replica_id: int) -> str:
    return f"{REPLICA_PREFIX}{replica_id}"


class RayTransport:
    """Sends Raft messages to peer replicas by actor name; handles are cached and refreshed on error."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._handles: dict[int, Any] = {}

    def send(self, to: int, messages: list[Message]) -> None:
        handle = self._handles.get(to)
        if handle is None:
            try:
                handle = ray.get_actor(replica_name(to), namespace=self.namespace)
            except ValueError:
                raise ConnectionError(f"replica {to} is not running") from None
            self._handles[to] = handle
        handle.step_batch.remote(messages)


class RayForwarder:
    """The followers' ``Forwarder``: runs ``serve_forwarded`` on the leader's actor by a Ray call
    (handles cached by id, dropped when a call fails so the next one looks the actor up again)."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self._handles: dict[int, Any] = {}

    async def __call__(self, leader: int, method: str, args: tuple[Any, ...]) -> Any:
        handle: Any = self._handles.get(leader)
        if handle is None:
            try:
                handle = await asyncio.to_thread(
                    ray.get_actor, replica_name(leader), namespace=self.namespace
                )
            except ValueError:
                raise ConnectionError(f"replica {leader} is not running") from None
            self._handles[leader] = handle
        try:
            return await handle.serve_forwarded.remote(method, args)
        except Exception:
            self._handles.pop(leader, None)
            raise


def cluster_id(namespace: str) -> int:
    """The store's etcd cluster id: stable for the cluster's life (its Ray namespace), the same on
    every member, whichever voters it started with."""
    return int.from_bytes(hashlib.sha256(b"raykube-store:" + namespace.encode()).digest()[:8], "big") or 1


def peer_resolver(namespace: str) -> Resolver:
    """Where a peer replica listens for Raft traffic: its actor says (it may have moved or restarted)."""

    async def resolve(peer: int) -> tuple[str, int]:
        handle = await asyncio.to_thread(ray.get_actor, replica_name(peer), namespace=namespace)
        address = await handle.peer_address.remote()
        if address is None:
            raise ConnectionError(f"replica {peer} does not listen for peers (transport ray)")
        return str(address[0]), int(address[1])

    return resolve


def leader_forwarder(namespace: str, network: StoreNetwork | None) -> Any:
    """How a follower reaches the leader: over gRPC to its client port when replicas listen
    (``cluster.store.forwarding``; 1.7 ms per forwarded put against 1.2 ms on the leader, in one
    process, where a Ray actor call alone costs ~3.6 ms), else by a Ray call."""
    if network is None:
        return RayForwarder(namespace)

    async def resolve(leader: int) -> str:
        handle = await asyncio.to_thread(ray.get_actor, replica_name(leader), namespace=namespace)
        address = await handle.client_address.remote()
        if address is None:
            raise ConnectionError(f"replica {leader} serves no client port")
        return f"{url_host(address[0])}:{address[1]}"

    return GrpcForwarder(resolve, forwarding_tls(network.tls) if network.tls is not None else None)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=10_000)  # type: ignore[call-overload]
class StoreReplicaActor:
    def __init__(
        self,
        replica_id: int,
        voters: Sequence[int],
        data_dir: str,
        namespace: str,
        options: ReplicaOptions | None = None,
        join: bool = False,
        initial: bool = False,
        network: StoreNetwork | None = None,
    ) -> None:
        """``initial``: this is the first start of a new cluster, so an empty data directory may
        bootstrap; ``join``: a new member id that a membership change adds. ``network``: where to
        serve etcd's API and the peer traffic (``cluster.store.network``); None: neither (Ray only)."""
        logging.basicConfig(level=logging.INFO)
        ctx = ray.get_runtime_context()
        rule = empty_start_rule(initial=initial, join=join, reconstructed=ctx.was_current_actor_reconstructed)
        tcp = transport_kind((options or ReplicaOptions()).transport) == "tcp"
        self.peers = (
            PeerLink(replica_id, peer_resolver(namespace), network.tls if network else None) if tcp else None
        )
        self.replica = Replica(
            replica_id,
            voters,
            data_dir,
            self.peers.transport if self.peers is not None else RayTransport(namespace),
            options,
            empty_start=rule,
            on_fatal=self._exit_process,
        )
        self.replica.start()
        self.node_id = ray.get_runtime_context().get_node_id()
        self.node_ip = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        self.namespace = namespace
        self.data_dir = Path(data_dir)
        self.network = network
        # Ports 0 mean free ones, bound once and then kept: a restart binds what the first start did.
        wanted = (network.client_port, network.peer_port) if network else (0, 0)
        had = recorded_ports(self.data_dir) or (0, 0)
        self.client_port, self.peer_port = wanted[0] or had[0], wanted[1] or had[1]
        if self.peers is not None:  # bound now, so peer_address() and the ports record have the port
            host = network.host if network else self.node_ip
            self.peer_port = self.peers.listen(
                self.replica.deliver, host, self.peer_port, report_snapshot=self.replica.report_snapshot
            )
        self.backend = ReplicaBackend(
            self.replica, cluster_id=cluster_id(namespace), forward=leader_forwarder(namespace, network)
        )
        self.grpc_server: Any = None
        self._serving = asyncio.get_event_loop().create_task(self._serve()) if network else None
        self._learning = asyncio.get_event_loop().create_task(self._learn_member_urls()) if network else None

    @staticmethod
    def _exit_process(reason: str) -> None:
        """Fail stop: let ``status`` report the failure for a moment, then die so Ray restarts us."""
        log.critical("store replica exits its process: %s", reason)
        for handler in logging.getLogger().handlers:
            handler.flush()
        asyncio.get_running_loop().call_later(1.0, os._exit, 70)

    async def _serve(self) -> None:
        """Serve etcd's v3 API on the client port (``network.tls``: TLS, client certificates of
        ``cluster.store.tls.CLIENT_IDENTITIES`` only). A port that is taken (another program took it
        since ``up`` chose it) falls back to a free one, which is recorded and kept."""
        assert self.network is not None
        tls = self.network.tls
        server_tls = ServerTLS(tls.ca, tls.server_cert, tls.server_key) if tls is not None else None
        interceptors = [ClientIdentityInterceptor()] if tls is not None else []
        for port in dict.fromkeys((self.client_port, 0)):
            try:
                self.grpc_server = build_server(
                    self.backend, host=self.network.host, port=port, tls=server_tls, interceptors=interceptors
                )
                break
            except (RuntimeError, OSError) as err:
                if port == 0:
                    raise
                log.warning(
                    "store-%d: client port %d is taken (%s); binding a free one", self.replica.id, port, err
                )
        # The followers' forwarded calls, beside etcd's services (replicas' certificate only).
        forward = forward_handler(self.backend.serve_forwarded, require_peer=tls is not None)
        self.grpc_server.add_generic_rpc_handlers((forward,))
        await self.grpc_server.start()
        self.client_port = bound_port(self.grpc_server)
        record_ports(self.data_dir, self.client_port, self.peer_port)

    async def _learn_member_urls(self) -> None:
        """MemberList's URLs (etcd lists every member's client and peer URLs, and etcdctl's
        ``--cluster`` flags dial them): asked of each voter's actor, every second until all are known,
        then every ten (members move and restart on other ports)."""
        while True:
            known = 0
            voters = self.replica.node.status().voters
            for vid in voters:
                try:
                    if vid == self.replica.id:
                        urls = self.urls()
                    else:
                        handle = await asyncio.to_thread(
                            ray.get_actor, replica_name(vid), namespace=self.namespace
                        )
                        urls = await asyncio.wait_for(handle.urls.remote(), timeout=5.0)
                except Exception:  # a member that is down or not started yet: ask again later
                    continue
                peer, client = urls["peer_url"], urls["client_url"]
                self.backend.member_urls[vid] = MemberURLs(
                    (peer,) if peer else (), (client,) if client else ()
                )
                known += bool(peer and client)
            await asyncio.sleep(10.0 if known == len(voters) else 1.0)

    def urls(self) -> dict[str, Any]:
        """This replica's client and peer URLs and ports (its node's address; "" and 0 while not
        listening)."""
        scheme = "https" if self.network is not None and self.network.tls is not None else "http"
        host = url_host(self.node_ip)
        client_port = self.client_port if self.grpc_server is not None else 0
        return {
            "client_port": client_port,
            "peer_port": self.peer_port,
            "client_url": f"{scheme}://{host}:{client_port}" if client_port else "",
            "peer_url": f"{scheme}://{host}:{self.peer_port}" if self.peer_port else "",
        }

    async def ready(self) -> int:
        if self._serving is not None:
            await asyncio.shield(self._serving)
        return self.replica.id

    async def client_address(self) -> tuple[str, int] | None:
        """Where this replica serves etcd's API (its node's IP, the port), None when it does not."""
        if self.grpc_server is None:
            return None
        return self.node_ip, self.client_port

    async def network_template(self) -> StoreNetwork | None:
        """This replica's network with free ports: what a new member on another node gets."""
        return self.network.with_ports(0, 0) if self.network is not None else None

    async def serve_forwarded(self, method: str, args: tuple[Any, ...]) -> Any:
        """A follower's forwarded call (``ReplicaBackend.serve_forwarded``), run here as the leader."""
        return await self.backend.serve_forwarded(method, args)

    async def step_batch(self, messages: list[Message]) -> None:
        self.replica.deliver(messages)

    async def peer_address(self) -> tuple[str, int] | None:
        """Where this replica takes Raft traffic from its peers (None: it uses the Ray transport)."""
        return (self.node_ip, self.peer_port) if self.peers is not None else None

    async def peer_stats(self) -> dict[int, Any]:
        """Per peer: connected, batches sent and dropped, dials (``PeerTransport.stats``)."""
        return self.peers.transport.stats() if self.peers is not None else {}

    # Client-facing calls return NotLeader as a value (not an exception) so that clients can follow
    # the leader hint without unwrapping Ray's task errors.

    async def propose(self, datas: list[bytes]) -> Any:
        try:
            return await self.replica.propose(datas)
        except NotLeader as e:
            return e

    async def range(self, op: RangeOp, serializable: bool = False) -> Any:
        try:
            return await self.replica.range(op, serializable=serializable)
        except NotLeader as e:
            return e

    async def ranges(self, ops: list[RangeOp], serializable: bool = False) -> Any:
        try:
            if not serializable:
                await self.replica.linearizable_read_index()
        except NotLeader as e:
            return e
        return [await self.replica.range(op, serializable=True) for op in ops]

    async def wait_events(
        self, key: bytes, range_end: bytes, start_revision: int, timeout: float, limit: int = 1000
    ) -> Any:
        try:
            return await self.replica.wait_events(key, range_end, start_revision, timeout, limit)
        except Exception as e:  # typed store errors travel back as values
            return e

    async def lease_keepalive(self, lease_id: int) -> Any:
        try:
            return self.replica.lease_keepalive(lease_id)
        except NotLeader as e:
            return e

    async def add_member(self, node_id: int) -> Any:
        try:
            return await self.replica.change_membership(ConfChange(ConfChangeType.ADD_NODE, node_id))
        except NotLeader as e:
            return e

    async def remove_member(self, node_id: int) -> Any:
        try:
            return await self.replica.change_membership(ConfChange(ConfChangeType.REMOVE_NODE, node_id))
        except NotLeader as e:
            return e

    async def status(self) -> dict[str, Any]:
        st = self.replica.status()
        st["node_id"] = self.node_id
        st["node_ip"] = self.node_ip
        st.update(self.urls())
        return st

    async def kv_hash(self) -> tuple[int, int, int]:
        return self.replica.kv_hash()

    async def set_blocked(self, peers: list[int]) -> None:
        """Fault injection for tests: drop all Raft traffic to and from ``peers``."""
        self.replica.blocked = set(peers)

    async def inject_fault(self, kind: str) -> None:
        """Fault injection for tests: the next persist ("fsync") or apply ("apply") fails."""
        self.replica.inject_fault(kind)

    async def pid(self) -> int:
        return os.getpid()

    async def shutdown(self) -> None:
        if self._learning is not None:
            self._learning.cancel()
        if self.peers is not None:
            await self.peers.close()
        if self.grpc_server is not None:
            await self.grpc_server.stop(grace=1.0)
        if isinstance(self.backend.forward, GrpcForwarder):
            await self.backend.forward.close()
        await self.replica.close()
        await asyncio.sleep(0)
