"""Raft traffic between store replicas over long-lived TCP connections, as etcd's peer streams.

``PeerTransport`` (the dialing side, a ``Transport``) keeps one connection per peer, made on first
use and held; ``PeerListener`` accepts connections and hands what arrives to the replica
(``Replica.deliver``). Frames are ``cluster.store.peer_wire``'s. What the Ray actors still do is
placement, restarts and discovery: a peer's address comes from a resolver, ``async (peer_id) ->
(host, port)``, which the actor shell answers by asking the peer's actor.

Invariants and choices:

* ``send`` never blocks and never waits for the network: it appends to the peer's queue and wakes
  the peer's writer task. The queue is bounded (``queue_size`` batches, ``queue_bytes`` of
  entries); when it is full the batch is dropped and counted. That is the back-pressure: Raft
  retransmits what a follower did not acknowledge and the leader's inflight window bounds appends,
  so a slow or paused peer costs a bounded amount of memory and never the leader's loop.
* While a peer is known to be unreachable (the last dial failed, the next waits out its backoff),
  ``send`` drops and raises ``ConnectionError``, which the replica turns into
  ``report_unreachable`` (the leader stops pipelining to it and probes), and the queue is emptied:
  what was queued for a peer we cannot reach is stale by the time we reach it.
* A peer is dialed when there is something to send to it (a removed member is left alone). Dials,
  and connections that break at once, back off exponentially with jitter (``backoff``), and every
  dial asks the resolver again: a restarted peer may listen elsewhere. The handshake checks that
  the listener is the replica we meant (a restarted replica on a reused port may be another one).
* A snapshot travels in chunks (``chunk_bytes``), the writer waiting for the socket between them;
  the listener reassembles it per connection, so a broken connection leaves no partial snapshot.
  The replica hears whether each snapshot went out whole or was lost (``on_snapshot``, etcd's
  ReportSnapshot): the leader holds a follower that awaits a snapshot until it hears either.
* Mutual TLS when the caller gives ``ssl.SSLContext``\\ s (``cluster.store.tls.peer_ssl_contexts``):
  the listener requires a client certificate issued by the cluster CA, the dialer verifies the
  listener's certificate against the same CA; then ``authorize`` (``tls.peer_is_replica``) checks,
  on both sides, that the other end presented the replicas' certificate and not just any
  certificate of the cluster CA (a kubectl user's).
* The listener drops messages whose sender differs from the one the connection announced, so a
  peer cannot speak for another one; fault injection (``Replica.blocked``) stays in the replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.store import peer_wire as wire
from cluster.store.raft.types import Message, MessageType
from cluster.store.tls import StoreTls, peer_is_replica, peer_ssl_contexts

log = logging.getLogger("raykube.store.peer")

Resolver = Callable[[int], Awaitable[tuple[str, int]]]
Authorize = Callable[[ssl.SSLObject], bool]
HANDSHAKE_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class PeerStats:
    connected: bool
    sent_batches: int
    dropped_batches: int  # queue full, or the peer known unreachable
    dials: int
    failed_dials: int


async def read_frame(reader: asyncio.StreamReader) -> list[Any]:
    head = await reader.readexactly(wire.HEADER.size)
    (length,) = wire.HEADER.unpack(head)
    if length > wire.MAX_FRAME:
        raise wire.WireError(f"frame of {length} bytes exceeds {wire.MAX_FRAME}")
    return wire.unpack_frame(await reader.readexactly(length))


def _authorized(writer: asyncio.StreamWriter, authorize: Authorize | None) -> bool:
    """Whether the other end of a TLS connection passes ``authorize`` (no check: always)."""
    if authorize is None:
        return True
    ssl_object = writer.get_extra_info("ssl_object")
    return ssl_object is not None and authorize(ssl_object)


class _Peer:
    """The connection to one peer: its queue, and the task that dials and writes."""

    def __init__(self, owner: PeerTransport, peer_id: int) -> None:
        self.owner = owner
        self.id = peer_id
        self.queue: deque[list[Message]] = deque()
        self.queued_bytes = 0
        self.wake = asyncio.Event()
        self.unreachable = False  # the last dial failed; set until the next dial starts
        self.connected = False
        self.sent = self.dropped = self.dials = self.failed_dials = 0
        self.task = asyncio.get_running_loop().create_task(self._run(), name=f"peer-{peer_id}")

    def enqueue(self, messages: list[Message]) -> None:
        if self.unreachable:
            self.dropped += 1
            self.report([messages], False)
            raise ConnectionError(f"replica {self.id} is unreachable")
        size = sum(wire.message_size(m) for m in messages)
        # Bounded in batches and in bytes; a batch alone in the queue always fits (a snapshot
        # larger than the byte bound must still be able to go).
        if self.queue and (
            len(self.queue) >= self.owner.queue_size or self.queued_bytes + size > self.owner.queue_bytes
        ):
            self.dropped += 1
            self.report([messages], False)
            return
        self.queue.append(messages)
        self.queued_bytes += size
        self.wake.set()

    def report(self, batches: list[list[Message]], ok: bool) -> None:
        """Tell the replica the fate of every snapshot in ``batches`` (``on_snapshot``)."""
        callback = self.owner.on_snapshot
        if callback is None:
            return
        for batch in batches:
            for m in batch:
                if m.type == MessageType.SNAP:
                    try:
                        callback(self.id, ok)
                    except Exception:
                        log.exception("replica %d: snapshot report for %d failed", self.owner.id, self.id)

    def take(self) -> list[list[Message]]:
        batches = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        return batches

    async def _run(self) -> None:
        low, high = self.owner.backoff
        delay = low
        loop = asyncio.get_running_loop()
        while True:
            if not self.queue:  # dial only when there is something to send (a removed peer: never)
                self.wake.clear()
                await self.wake.wait()
            self.dials += 1
            try:
                reader, writer = await self._dial()
            except Exception as e:  # refused, unresolvable (the peer's actor is restarting), TLS, ...
                self.failed_dials += 1
                self.unreachable = True
                self.report(self.take(), False)
                log.debug("replica %d: dial to %d failed: %r", self.owner.id, self.id, e)
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, high)
                self.unreachable = False
                continue
            self.connected = True
            began = loop.time()
            try:
                await self._pump(reader, writer)
            except (OSError, ConnectionError, wire.WireError) as e:
                log.debug("replica %d: connection to %d lost: %r", self.owner.id, self.id, e)
            finally:
                self.connected = False
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            if loop.time() - began < 1.0:  # a connection that breaks at once: back off all the same
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, high)
            else:
                delay = low

    async def _dial(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        host, port = await asyncio.wait_for(self.owner.resolver(self.id), HANDSHAKE_TIMEOUT)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=self.owner.ssl,
                server_hostname=host if self.owner.ssl is not None else None,
                ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self.owner.ssl is not None else None,
            ),
            HANDSHAKE_TIMEOUT,
        )
        try:
            if not _authorized(writer, self.owner.authorize):
                raise ssl.SSLError(f"{host}:{port} did not present a replica's certificate")
            writer.write(wire.frame([wire.HELLO, wire.VERSION, self.owner.id, self.id]))
            answer = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
            if answer[0] != wire.WELCOME or answer[1:] != [self.id]:
                raise wire.WireError(f"{host}:{port} refused replica {self.id}: {answer[1:]}")
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        broken = asyncio.get_running_loop().create_task(reader.read(1))  # the listener never speaks again
        broken.add_done_callback(lambda _: self.wake.set())
        try:
            while True:
                if not self.queue:
                    self.wake.clear()
                    await self.wake.wait()
                if broken.done():
                    raise ConnectionError(f"replica {self.id} closed the connection")
                batches = self.take()
                try:
                    for data in wire.encode_batches(
                        batches, frame_bytes=self.owner.frame_bytes, chunk_bytes=self.owner.chunk_bytes
                    ):
                        writer.write(data)
                        if writer.transport.get_write_buffer_size() > self.owner.frame_bytes:
                            await writer.drain()  # a snapshot: wait for the socket between chunks
                    await writer.drain()
                except BaseException:
                    self.report(batches, False)
                    raise
                self.sent += len(batches)
                self.report(batches, True)
        finally:
            broken.cancel()


class PeerTransport:
    """``Transport`` over one long-lived connection per peer (see the module docstring).

    Must be created and used inside the replica's event loop; ``close`` ends every connection."""

    def __init__(
        self,
        self_id: int,
        resolver: Resolver,
        *,
        ssl_context: ssl.SSLContext | None = None,
        authorize: Authorize | None = None,
        queue_size: int = 4096,
        queue_bytes: int = 64 << 20,
        backoff: tuple[float, float] = (0.05, 2.0),
        frame_bytes: int = wire.FRAME_BYTES,
        chunk_bytes: int = wire.CHUNK_BYTES,
    ) -> None:
        self.id = self_id
        self.resolver = resolver
        self.ssl = ssl_context
        self.authorize = authorize
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes
        # Told whether each snapshot went out whole (True) or was lost (False): Replica.report_snapshot.
        self.on_snapshot: Callable[[int, bool], None] | None = None
        self.backoff = backoff
        self.frame_bytes = frame_bytes
        self.chunk_bytes = chunk_bytes
        self._peers: dict[int, _Peer] = {}
        self._closed = False

    def send(self, to: int, messages: list[Message]) -> None:
        if self._closed:
            raise ConnectionError("transport closed")
        peer = self._peers.get(to)
        if peer is None:
            peer = self._peers[to] = _Peer(self, to)
        peer.enqueue(messages)

    def stats(self) -> dict[int, PeerStats]:
        return {
            pid: PeerStats(p.connected, p.sent, p.dropped, p.dials, p.failed_dials)
            for pid, p in self._peers.items()
        }

    async def close(self) -> None:
        self._closed = True
        for p in self._peers.values():
            p.task.cancel()
        for p in self._peers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await p.task


class PeerListener:
    """Accepts peer connections and delivers their Raft messages to ``deliver``.

    ``bind`` (synchronous, so the caller knows its port at once) then ``serve``; ``close`` ends the
    listening socket and every accepted connection."""

    def __init__(
        self,
        self_id: int,
        deliver: Callable[[Sequence[Message]], None],
        *,
        ssl_context: ssl.SSLContext | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self.id = self_id
        self.deliver = deliver
        self.ssl = ssl_context
        self.authorize = authorize
        self._sock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self.accepted = 0
        self.refused = 0

    def bind(self, host: str, port: int = 0) -> tuple[str, int]:
        """Bind ``host:port`` (0 = any free port); returns the address peers should dial."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart reuses its port at once
        try:
            sock.bind((host, port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        sock.setblocking(False)
        self._sock = sock
        self._address = (host, int(sock.getsockname()[1]))
        return self._address

    @property
    def address(self) -> tuple[str, int]:
        """The bound ``(host, port)`` (kept after ``close``)."""
        if self._address is None:
            raise RuntimeError("not bound")
        return self._address

    async def serve(self) -> None:
        if self._sock is None:
            raise RuntimeError("bind first")
        self._server = await asyncio.start_server(
            self._handle,
            sock=self._sock,
            ssl=self.ssl,
            ssl_handshake_timeout=HANDSHAKE_TIMEOUT if self.ssl else None,
        )

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        elif self._sock is not None:
            self._sock.close()
        for w in list(self._conns):
            w.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            if not _authorized(writer, self.authorize):
                self.refused += 1
                log.warning("replica %d: refused a peer connection without a replica's certificate", self.id)
                return
            try:
                hello = await asyncio.wait_for(read_frame(reader), HANDSHAKE_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError, wire.WireError):
                self.refused += 1
                return
            if hello[0] != wire.HELLO or len(hello) != 4 or hello[1] != wire.VERSION or hello[3] != self.id:
                self.refused += 1
                writer.write(
                    wire.frame([wire.REFUSED, f"this is replica {self.id}, wire version {wire.VERSION}"])
                )
                return
            sender = hello[2]
            writer.write(wire.frame([wire.WELCOME, self.id]))
            self.accepted += 1
            assembler = wire.Reassembler()
            while True:
                msgs = assembler.feed(await read_frame(reader))
                if msgs:
                    self.deliver([m for m in msgs if m.frm == sender])
        except (OSError, asyncio.IncompleteReadError):
            pass  # the peer went away; it dials again
        except wire.WireError as e:
            log.warning("replica %d: closing a peer connection: %s", self.id, e)
        finally:
            self._conns.discard(writer)
            writer.close()


def transport_kind(configured: str) -> str:
    """The transport a replica uses: ``$RAYKUBE_STORE_TRANSPORT`` if set, else ``configured``
    (``ReplicaOptions.transport``); "tcp" or "ray"."""
    kind = os.environ.get("RAYKUBE_STORE_TRANSPORT") or configured
    if kind not in ("tcp", "ray"):
        raise ValueError(f"unknown store transport {kind!r} (tcp or ray)")
    return kind


class PeerLink:
    """A replica's two ends of the peer traffic, as the actor shell holds them: the transport it
    sends through and the listener it receives on, with mutual TLS when ``tls`` is given."""

    def __init__(self, self_id: int, resolver: Resolver, tls: StoreTls | None) -> None:
        server_ctx, client_ctx = peer_ssl_contexts(tls) if tls is not None else (None, None)
        authorize = peer_is_replica if tls is not None else None
        self.id = self_id
        self.transport = PeerTransport(self_id, resolver, ssl_context=client_ctx, authorize=authorize)
        self._server_ctx, self._authorize = server_ctx, authorize
        self.listener: PeerListener | None = None
        self._serving: asyncio.Task[None] | None = None

    def listen(
        self,
        deliver: Callable[[Sequence[Message]], None],
        host: str,
        port: int,
        *,
        report_snapshot: Callable[[int, bool], None] | None = None,
    ) -> int:
        """Bind ``host:port`` now (a port that is taken falls back to a free one) and serve in the
        background, handing what arrives to ``deliver``; snapshot outcomes go to ``report_snapshot``
        (``Replica.deliver`` and ``Replica.report_snapshot``). Returns the bound port."""
        self.transport.on_snapshot = report_snapshot
        self.listener = PeerListener(
            self.id, deliver, ssl_context=self._server_ctx, authorize=self._authorize
        )
        try:
            _, bound = self.listener.bind(host, port)
        except OSError as err:
            if port == 0:
                raise
            log.warning("replica %d: peer port %d is taken (%s); binding a free one", self.id, port, err)
            _, bound = self.listener.bind(host, 0)
        self._serving = asyncio.get_running_loop().create_task(self.listener.serve())
        return bound

    async def close(self) -> None:
        await self.transport.close()
        if self.listener is not None:
            await self.listener.close()
