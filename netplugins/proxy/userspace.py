"""The userspace service proxy (kube-proxy's old ``userspace`` mode), for the ``host`` network plugin:
sockets instead of packet rewriting, so it needs no root.

For every Service port of the table it listens on each ClusterIP (and external / LoadBalancer IP
that is local here) at the Service port, and for a NodePort on each node address at the node port;
a connection (TCP) or a client's datagrams (UDP) go to an endpoint chosen by :func:`pick`:

* ready endpoints, else serving-but-terminating ones (:func:`~netplugins.proxy.model.select_endpoints`);
  only this node's for a Local traffic policy (internal for ClusterIPs, external otherwise);
* ClientIP affinity: a client keeps its endpoint while it comes back within the timeout and the
  endpoint still takes traffic;
* otherwise a random one; an endpoint that refuses the connection is skipped for the next one;
* no endpoint: a TCP connection is reset at once (``SO_LINGER`` 0, as kube-proxy's reject rule), a
  datagram is dropped.

UDP keeps one session per client address (a connected socket to the chosen endpoint, replies sent
back from the Service address) closed after ``udp_idle_timeout`` seconds without traffic.

Invariants: :meth:`UserspaceBackend.sync` is idempotent and never raises for one address it cannot
listen on: it logs it and records a Warning Event ``FailedToBind`` on the Service (once per address
and error; retried on every sync), and serves the rest. Without root the ClusterIPs must be local
addresses, hence the loopback Service CIDR ``raykube up`` gives a ``host`` cluster. Closing a
listener leaves established connections to finish; :meth:`close` ends everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import random
import socket
import struct
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cluster.client.event_recorder import EventSink, NullEvents
from cluster.client.events import ObjectRef
from netplugins.proxy.model import Endpoint, NodeInfo, ServicePortName, ServiceTable, select_endpoints

log = logging.getLogger("raykube.proxy.userspace")

FAILED_TO_BIND = "FailedToBind"
DEFAULT_UDP_IDLE_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
UNPRIVILEGED_PORT_START = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
BUFFER = 65536

ListenKey = tuple[str, str, int]  # (protocol, ip, port)


@dataclass(frozen=True, slots=True)
class Route:
    """Where one listener sends traffic: the Service port's endpoints and how to choose."""

    name: ServicePortName
    endpoints: tuple[Endpoint, ...]
    affinity_timeout: int | None = None


@dataclass(slots=True)
class Affinity:
    """ClientIP affinity: (Service port, client IP) -> endpoint, until ``expires`` (monotonic)."""

    clock: Callable[[], float]
    chosen: dict[tuple[ServicePortName, str], tuple[Endpoint, float]] = field(default_factory=dict)

    def get(self, route: Route, client_ip: str, candidates: tuple[Endpoint, ...]) -> Endpoint | None:
        entry = self.chosen.get((route.name, client_ip))
        if entry is None or entry[1] <= self.clock() or entry[0] not in candidates:
            return None
        return entry[0]

    def remember(self, route: Route, client_ip: str, endpoint: Endpoint) -> None:
        if route.affinity_timeout is not None:
            self.chosen[(route.name, client_ip)] = (endpoint, self.clock() + route.affinity_timeout)

    def forget(self, route: Route, client_ip: str) -> None:
        self.chosen.pop((route.name, client_ip), None)


def pick(
    route: Route,
    client_ip: str,
    affinity: Affinity,
    rng: random.Random,
    skip: frozenset[Endpoint] = frozenset(),
) -> Endpoint | None:
    """The endpoint for a new connection or session of ``client_ip`` (see the module docstring);
    None when no endpoint takes traffic. ``route.endpoints`` must already be the selected ones."""
    candidates = tuple(e for e in route.endpoints if e not in skip)
    if not candidates:
        return None
    if route.affinity_timeout is not None:
        kept = affinity.get(route, client_ip, candidates)
        if kept is not None:
            affinity.remember(route, client_ip, kept)  # the timeout counts from the last use
            return kept
    chosen = rng.choice(candidates)
    affinity.remember(route, client_ip, chosen)
    return chosen


def listen_plan(table: ServiceTable, node: NodeInfo) -> dict[ListenKey, tuple[Route, bool]]:
    """Every (protocol, ip, port) to listen on -> (its route, whether binding is optional: external
    and LoadBalancer IPs are only local on some nodes). Pure."""
    plan: dict[ListenKey, tuple[Route, bool]] = {}
    for name, (port, endpoints) in sorted(table.items()):
        if name.protocol not in ("TCP", "UDP"):
            continue  # SCTP has no userspace path
        internal = Route(
            name,
            select_endpoints(endpoints, node.name if port.internal_local else None),
            port.session_affinity_timeout,
        )
        external = Route(
            name,
            select_endpoints(endpoints, node.name if port.external_local else None),
            port.session_affinity_timeout,
        )
        for ip in port.cluster_ips:
            plan[(name.protocol, ip, port.port)] = (internal, False)
        for ip in (*port.external_ips, *port.load_balancer_ips):
            plan.setdefault((name.protocol, ip, port.port), (external, True))
        if port.node_port:
            for ip in node.ips:
                plan[(name.protocol, ip, port.node_port)] = (external, False)
    return plan


def _bind_advice(port: int, err: OSError) -> str:
    if err.errno == errno.EACCES:
        try:
            start = int(UNPRIVILEGED_PORT_START.read_text())
        except (OSError, ValueError):
            start = 1024
        if port < start:
            return f" (ports below {start} need root: net.ipv4.ip_unprivileged_port_start is {start})"
    if err.errno == errno.EADDRNOTAVAIL:
        return " (the address is not local: without root the Service CIDR must be a loopback range)"
    return ""


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN (the client sees 'connection refused/reset' at once)."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(BUFFER):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()


class UdpSession(asyncio.DatagramProtocol):
    """One client's datagrams to one endpoint; replies go back through the listener's transport."""

    def __init__(self, listener: UdpListener, client: tuple[str, int], endpoint: Endpoint) -> None:
        self.listener, self.client, self.endpoint = listener, client, endpoint
        self.transport: asyncio.DatagramTransport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.touch()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp session %s: %s", self.client, exc)

    def touch(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.listener.backend.udp_idle_timeout, self.close)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        if self.transport is not None:
            self.transport.close()
        self.listener.sessions.pop(self.client, None)


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, backend: UserspaceBackend, route: Route) -> None:
        self.backend, self.route = backend, route
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple[str, int], UdpSession] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        session = self.sessions.get(addr)
        if session is not None and session.transport is not None:
            session.touch()
            session.transport.sendto(data)
        elif addr in self.pending:
            self.pending[addr].append(data)  # the session is being opened
        else:
            self.pending[addr] = [data]
            self.backend.spawn(self._open(addr))

    async def _open(self, client: tuple[str, int]) -> None:
        endpoint = pick(self.route, client[0], self.backend.affinity, self.backend.rng)
        queued = self.pending.get(client, [])
        try:
            if endpoint is None:
                return  # no endpoint: dropped
            loop = asyncio.get_running_loop()
            session = UdpSession(self, client, endpoint)
            await loop.create_datagram_endpoint(lambda: session, remote_addr=(endpoint.ip, endpoint.port))
            self.sessions[client] = session
            session.touch()
            assert session.transport is not None
            for data in queued:
                session.transport.sendto(data)
        except OSError as err:
            log.debug("udp %s -> %s: %s", client, endpoint, err)
        finally:
            self.pending.pop(client, None)

    def reroute(self, route: Route) -> None:
        """Take ``route``; sessions to an endpoint that no longer takes traffic end (the client's
        next datagram opens a new one), as kube-proxy clears UDP conntrack entries."""
        self.route = route
        for session in list(self.sessions.values()):
            if session.endpoint not in route.endpoints:
                session.close()

    def close(self) -> None:
        for session in list(self.sessions.values()):
            session.close()
        if self.transport is not None:
            self.transport.close()


class TcpListener:
    def __init__(self, backend: UserspaceBackend, route: Route) -> None:
        self.backend, self.route = backend, route
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()  # both ends of every forwarded connection

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections.add(writer)
        try:
            await self._forward(reader, writer)
        finally:
            self.connections.discard(writer)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        route = self.route
        tried: set[Endpoint] = set()
        while True:
            endpoint = pick(route, peer[0], self.backend.affinity, self.backend.rng, frozenset(tried))
            if endpoint is None:
                _reset(writer)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(endpoint.ip, endpoint.port), self.backend.connect_timeout
                )
                break
            except (OSError, TimeoutError) as err:
                log.debug("%s: endpoint %s:%d: %s", route.name, endpoint.ip, endpoint.port, err)
                self.backend.affinity.forget(route, peer[0])
                tried.add(endpoint)
        self.connections.add(up_writer)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self.connections.discard(up_writer)
            for w in (writer, up_writer):
                w.close()

    def close(self) -> None:
        """Stop accepting; established connections go on until they end."""
        if self.server is not None:
            self.server.close()

    def abort(self) -> None:
        self.close()
        for w in list(self.connections):
            w.transport.abort()


Listener = TcpListener | UdpListener


class UserspaceBackend:
    """A service-proxy backend (``sync(table, node)`` / ``close(purge)``) forwarding with sockets.

    ``options``: ``udp_idle_timeout`` (seconds, default 30), ``connect_timeout`` (default 5).
    ``events`` records the ``FailedToBind`` Warnings (involvedObject: the Service)."""

    def __init__(
        self,
        options: Mapping[str, Any] | None = None,
        *,
        events: EventSink | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        options = options or {}
        self.udp_idle_timeout = float(options.get("udp_idle_timeout", DEFAULT_UDP_IDLE_TIMEOUT))
        self.connect_timeout = float(options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        self.events: EventSink = events or NullEvents()
        self.rng = rng or random.Random()
        self.affinity = Affinity(clock)
        self.listeners: dict[ListenKey, Listener] = {}
        self.failed: dict[ListenKey, str] = {}  # what could not be bound, and why (reported once)
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        """Listen on what ``table`` needs on ``node``, stop listening on the rest, and route every
        listener to its Service port's current endpoints."""
        plan = listen_plan(table, node)
        for key in [k for k in self.listeners if k not in plan]:
            self.listeners.pop(key).close()
        for key in [k for k in self.failed if k not in plan]:
            del self.failed[key]
        for key, (route, optional) in plan.items():
            listener = self.listeners.get(key)
            if isinstance(listener, UdpListener):
                listener.reroute(route)
                continue
            if listener is not None:
                listener.route = route
                continue
            try:
                self.listeners[key] = await self._listen(key, route)
                self.failed.pop(key, None)
            except OSError as err:
                self._bind_failed(key, route, optional, err)
        self._expire_affinity(table)

    def _expire_affinity(self, table: ServiceTable) -> None:
        now = self.affinity.clock()
        gone = [k for k, (_, expires) in self.affinity.chosen.items() if k[0] not in table or expires <= now]
        for k in gone:
            del self.affinity.chosen[k]

    async def _listen(self, key: ListenKey, route: Route) -> Listener:
        protocol, ip, port = key
        loop = asyncio.get_running_loop()
        if protocol == "TCP":
            tcp = TcpListener(self, route)
            tcp.server = await asyncio.start_server(tcp.handle, ip, port, reuse_address=True)
            return tcp
        udp = UdpListener(self, route)
        await loop.create_datagram_endpoint(lambda: udp, local_addr=(ip, port))
        return udp

    def _bind_failed(self, key: ListenKey, route: Route, optional: bool, err: OSError) -> None:
        protocol, ip, port = key
        message = f"cannot listen on {ip}:{port}/{protocol} for {route.name}: {err.strerror or err}"
        message += _bind_advice(port, err)
        if self.failed.get(key) == message:
            return
        self.failed[key] = message
        if optional and err.errno == errno.EADDRNOTAVAIL:
            log.debug("%s", message)  # an external / LoadBalancer IP that is not on this node
            return
        log.warning("%s", message)
        ref = ObjectRef(kind="Service", name=route.name.name, namespace=route.name.namespace)
        self.events.event(ref, "Warning", FAILED_TO_BIND, message)

    async def close(self, purge: bool) -> None:
        """Stop listening and end every forwarded connection and session. Nothing outlives the
        process, so ``purge`` changes nothing here."""
        for listener in self.listeners.values():
            if isinstance(listener, TcpListener):
                listener.abort()
            else:
                listener.close()
        servers = [
            lst.server for lst in self.listeners.values() if isinstance(lst, TcpListener) and lst.server
        ]
        self.listeners.clear()
        for task in list(self._tasks):
            task.cancel()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
