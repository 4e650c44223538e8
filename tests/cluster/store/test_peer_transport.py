"""Raft traffic on direct connections: the frame format, chunked snapshots, and real sockets on
loopback (plain and mutual TLS): delivery in order, reconnecting to a restarted peer, the bounded
queue dropping and counting, refusing the wrong replica and peers without a valid certificate, and
three real ``Replica``\\ s replicating over it (a lagging one catching up by a chunked snapshot).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cluster.apiserver.tls import Pki, ensure_pki, issue_client_cert
from cluster.store import peer_wire as wire
from cluster.store.membership import EmptyStart
from cluster.store.mvcc import PutOp, Request, encode_request
from cluster.store.peer_transport import PeerListener, PeerTransport
from cluster.store.raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMetadata,
)
from cluster.store.replica import Replica, ReplicaOptions
from cluster.store.tls import StorePki, StoreTls, ensure_store_pki, peer_is_replica, peer_ssl_contexts

MT = MessageType
HOST = "127.0.0.1"


def snap_msg(data: bytes, frm: int = 1, to: int = 2) -> Message:
    md = SnapshotMetadata(index=40, term=3, conf_state=ConfState((1, 2, 3)))
    return Message(MT.SNAP, to=to, frm=frm, term=3, snapshot=Snapshot(md, data))


def heartbeat(n: int, frm: int = 1, to: int = 2) -> Message:
    return Message(MT.HEARTBEAT, to=to, frm=frm, term=n, commit=n, context=b"ctx%d" % n)


def frames_of(data: bytes) -> list[list[Any]]:
    """Split a byte stream into decoded frames, checking every length prefix."""
    out, pos = [], 0
    while pos < len(data):
        (n,) = wire.HEADER.unpack_from(data, pos)
        assert n <= wire.MAX_FRAME
        out.append(wire.unpack_frame(data[pos + wire.HEADER.size : pos + wire.HEADER.size + n]))
        pos += wire.HEADER.size + n
    assert pos == len(data)
    return out


# --- the format, without sockets ----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(Message(MT.HEARTBEAT, to=2, frm=1, term=7, commit=12, context=b"r1"), id="heartbeat"),
        pytest.param(
            Message(
                MT.APP,
                to=3,
                frm=1,
                term=2,
                log_term=2,
                index=9,
                commit=8,
                entries=(
                    Entry(2, 10, EntryType.NORMAL, b"\x00data"),
                    Entry(2, 11, EntryType.CONF_CHANGE, b"\x01"),
                ),
            ),
            id="append-with-entries",
        ),
        pytest.param(
            Message(MT.APP_RESP, to=1, frm=2, term=2, index=9, reject=True, reject_hint=5), id="rejection"
        ),
        pytest.param(Message(MT.PRE_VOTE, to=2, frm=3, term=5, log_term=4, index=100), id="pre-vote"),
        pytest.param(snap_msg(b"state" * 1000), id="snapshot"),
        pytest.param(snap_msg(b""), id="empty-snapshot-data"),
    ],
)
def test_message_round_trip(message: Message) -> None:
    stream = b"".join(wire.encode_batches([[message]], chunk_bytes=700))
    asm = wire.Reassembler()
    got = [m for f in frames_of(stream) for m in asm.feed(f)]
    assert got == [message]
    assert not asm.partial


def test_batches_split_into_bounded_frames_in_order() -> None:
    big = [
        Message(MT.APP, to=2, frm=1, term=1, index=i, entries=(Entry(1, i + 1, data=bytes(300_000)),))
        for i in range(10)
    ]
    batches = [big[:4], [heartbeat(1)], big[4:]]
    frames = list(wire.encode_batches(batches, frame_bytes=1 << 20))
    assert len(frames) > 1 and all(len(f) <= (1 << 20) + 400_000 for f in frames)
    asm = wire.Reassembler()
    got = [m for f in frames_of(b"".join(frames)) for m in asm.feed(f)]
    assert got == [*big[:4], heartbeat(1), *big[4:]]


def test_snapshot_streams_in_bounded_chunks_between_other_messages() -> None:
    data = bytes(range(256)) * 40 + b"tail"  # 10,244 bytes: ten full chunks and a short one
    batch = [heartbeat(1), snap_msg(data), heartbeat(2)]
    frames = [f for raw in wire.encode_batches([batch], chunk_bytes=1000) for f in frames_of(raw)]
    kinds = [f[0] for f in frames]
    assert kinds == [wire.MSGS, wire.SNAP] + [wire.CHUNK] * 11 + [wire.MSGS]
    assert all(len(f[1]) <= 1000 for f in frames if f[0] == wire.CHUNK)
    asm = wire.Reassembler()
    delivered: list[list[Message]] = []
    for f in frames:
        delivered.append(asm.feed(f))
        assert asm.partial == (f[0] == wire.SNAP or (f[0] == wire.CHUNK and f is not frames[-2]))
    assert [m for ms in delivered for m in ms] == batch
    assert delivered[-2] == [snap_msg(data)], "the snapshot is delivered with its last chunk"


@pytest.mark.parametrize(
    "frames",
    [
        pytest.param([[wire.CHUNK, b"x"]], id="chunk-without-snapshot"),
        pytest.param(
            [[wire.SNAP, wire.message_to_wire(snap_msg(b""), snapshot_data=False), 4], [wire.MSGS, []]],
            id="batch-inside-a-snapshot",
        ),
        pytest.param(
            [[wire.SNAP, wire.message_to_wire(snap_msg(b""), snapshot_data=False), 2], [wire.CHUNK, b"xyz"]],
            id="more-bytes-than-announced",
        ),
        pytest.param(
            [[wire.SNAP, wire.message_to_wire(heartbeat(1)), 2]], id="snapshot-header-without-snapshot"
        ),
        pytest.param([[wire.MSGS, [[99, 2, 1]]]], id="malformed-message"),
        pytest.param([[wire.HELLO, 1, 1, 2]], id="hello-after-the-handshake"),
    ],
)
def test_reassembler_rejects_frames_out_of_place(frames: list[list[Any]]) -> None:
    asm = wire.Reassembler()
    with pytest.raises(wire.WireError):
        for f in frames:
            asm.feed(f)


def test_reassembler_bounds_snapshot_size_and_frames_are_arrays() -> None:
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.Reassembler(max_snapshot=10).feed([wire.SNAP, wire.message_to_wire(snap_msg(b"")), 11])
    with pytest.raises(wire.WireError):
        wire.unpack_frame(wire.pack({"not": "an array"}))
    with pytest.raises(wire.WireError):
        wire.unpack_frame(b"\xc1")  # never valid msgpack


# --- real sockets ---------------------------------------------------------------------------------


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    def deliver(self, messages: Sequence[Message]) -> None:
        self.messages.extend(messages)


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def retransmitting(t: PeerTransport, to: int, m: Message, cond: Callable[[], bool], what: str) -> None:
    """Send ``m`` every 10 ms until ``cond()``, as Raft resends heartbeats (refusals are expected)."""

    def again() -> bool:
        with contextlib.suppress(ConnectionError):
            t.send(to, [m])
        return cond()

    await until(again, what)


def resolver_for(addresses: dict[int, tuple[str, int]]) -> Callable[[int], Awaitable[tuple[str, int]]]:
    async def resolve(peer: int) -> tuple[str, int]:
        return addresses[peer]

    return resolve


async def listen(rid: int, inbox: Inbox, ctx: ssl.SSLContext | None = None, port: int = 0) -> PeerListener:
    lst = PeerListener(rid, inbox.deliver, ssl_context=ctx, authorize=peer_is_replica if ctx else None)
    lst.bind(HOST, port)
    await lst.serve()
    return lst


class Certs:
    """The store's real PKI (``ensure_pki`` + ``ensure_store_pki``), a kubectl user's certificate of
    the same CA, and a second cluster's PKI."""

    def __init__(self, tmp: Path) -> None:
        ensure_pki(tmp / "pki", hosts=[])
        ensure_store_pki(tmp / "pki", [HOST])
        self.tls = StoreTls.load(StorePki.in_dir(tmp / "pki"))
        user_cert, user_key = issue_client_cert(Pki.in_dir(tmp / "pki"), "alice", [])
        self.user = StoreTls(self.tls.ca, b"", b"", user_cert, user_key)
        ensure_pki(tmp / "other", hosts=[])
        ensure_store_pki(tmp / "other", [HOST])
        self.stranger = StoreTls.load(StorePki.in_dir(tmp / "other"))

    def server(self, tls: StoreTls | None = None) -> ssl.SSLContext:
        return peer_ssl_contexts(tls or self.tls)[0]

    def client(self, tls: StoreTls | None = None) -> ssl.SSLContext:
        return peer_ssl_contexts(tls or self.tls)[1]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return Certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("secure", [pytest.param(False, id="plain"), pytest.param(True, id="mutual-tls")])
def test_delivers_in_order_with_a_chunked_snapshot(secure: bool, certs: Certs) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        lst = await listen(2, inbox, certs.server() if secure else None)
        t = PeerTransport(
            1,
            resolver_for({2: lst.address}),
            ssl_context=certs.client() if secure else None,
            authorize=peer_is_replica if secure else None,
            chunk_bytes=4096,
        )
        data = bytes(range(256)) * 4096  # 1 MiB: 256 chunks
        sent = [heartbeat(1)], [snap_msg(data), heartbeat(2)], [heartbeat(i) for i in range(3, 50)]
        for batch in sent:
            t.send(2, batch)
        await until(lambda: len(inbox.messages) == 50, "all messages")
        assert inbox.messages == [m for b in sent for m in b]
        assert t.stats()[2].connected and t.stats()[2].dropped_batches == 0
        assert lst.accepted == 1, "one long-lived connection"
        await t.close()
        await lst.close()

    asyncio.run(scenario())


def test_reconnects_to_a_restarted_peer_and_reports_it_unreachable_meanwhile() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        lst = await listen(2, inbox)
        addresses = {2: lst.address}
        t = PeerTransport(1, resolver_for(addresses), backoff=(0.02, 0.1))
        t.send(2, [heartbeat(1)])
        await until(lambda: len(inbox.messages) == 1, "the first message")
        await lst.close()  # the peer dies: its port refuses connections

        refused = 0

        def retransmit() -> bool:  # as Raft does every tick: send, and count the refusals
            nonlocal refused
            try:
                t.send(2, [heartbeat(2)])
            except ConnectionError:
                refused += 1
            return refused > 0

        await until(retransmit, "send to report the peer unreachable")
        assert t.stats()[2].failed_dials >= 1 and not t.stats()[2].connected

        restarted = Inbox()
        lst2 = await listen(2, restarted)  # back, on another port: the resolver says where
        addresses[2] = lst2.address
        await until(lambda: (retransmit() or True) and bool(restarted.messages), "delivery after the restart")
        assert all(m == heartbeat(2) for m in restarted.messages)
        assert inbox.messages == [heartbeat(1)]
        assert t.stats()[2].dials >= 3  # first connection, at least one refused, the reconnection
        await t.close()
        await lst2.close()

    asyncio.run(scenario())


def test_full_queue_drops_and_counts_then_flushes_in_order() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        lst = await listen(2, inbox)
        gate = asyncio.Event()

        async def slow_resolve(peer: int) -> tuple[str, int]:
            await gate.wait()  # the dial hangs: everything sent meanwhile waits in the queue
            return lst.address

        t = PeerTransport(1, slow_resolve, queue_size=5)
        for i in range(8):
            t.send(2, [heartbeat(i)])  # never blocks, never raises: the last three are dropped
        assert t.stats()[2].dropped_batches == 3
        gate.set()
        await until(lambda: len(inbox.messages) == 5, "the queued batches")
        await asyncio.sleep(0.05)
        assert inbox.messages == [heartbeat(i) for i in range(5)]
        assert t.stats()[2].sent_batches == 5
        await t.close()

        # Bounded in bytes too; a batch alone in the queue always goes (a large snapshot must).
        gate.clear()
        inbox.messages.clear()
        t = PeerTransport(1, slow_resolve, queue_bytes=100_000)
        big = snap_msg(bytes(300_000))
        entries = Message(MT.APP, to=2, frm=1, term=1, entries=(Entry(1, 1, data=bytes(60_000)),))
        t.send(2, [big])  # over the bound, but the queue was empty
        t.send(2, [heartbeat(1)])  # dropped: the queue holds more than the bound already
        assert t.stats()[2].dropped_batches == 1
        gate.set()
        await until(lambda: len(inbox.messages) == 1, "the snapshot")
        t.send(2, [entries])
        t.send(2, [entries])  # may or may not still be queued behind the first: never both over 100 kB
        await until(lambda: len(inbox.messages) >= 2, "the appends")
        await asyncio.sleep(0.05)
        assert inbox.messages[0] == big and all(m == entries for m in inbox.messages[1:])
        await t.close()
        await lst.close()

    asyncio.run(scenario())


def test_the_replica_hears_whether_each_snapshot_went_out_or_was_lost() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        lst = await listen(2, inbox)
        reports: list[tuple[int, bool]] = []
        t = PeerTransport(1, resolver_for({2: lst.address}), chunk_bytes=1000)
        t.on_snapshot = lambda peer, ok: reports.append((peer, ok))
        t.send(2, [heartbeat(1), snap_msg(bytes(10_000))])
        await until(lambda: reports == [(2, True)], "the snapshot written out")
        await t.close()

        gate = asyncio.Event()

        async def slow_resolve(peer: int) -> tuple[str, int]:
            await gate.wait()
            return lst.address

        t = PeerTransport(1, slow_resolve, queue_size=1)
        t.on_snapshot = lambda peer, ok: reports.append((peer, ok))
        t.send(2, [heartbeat(2)])
        t.send(2, [snap_msg(b"dropped")])  # the queue is full
        assert reports[1:] == [(2, False)]
        await t.close()

        await lst.close()  # nobody listens there now: the dial fails and the queued snapshot is lost
        t = PeerTransport(1, resolver_for({2: lst.address}))
        t.on_snapshot = lambda peer, ok: reports.append((peer, ok))
        t.send(2, [snap_msg(b"never")])
        await until(lambda: len(reports) == 3, "the failed dial")
        assert reports[2] == (2, False)
        assert [m.type for m in inbox.messages] == [MT.HEARTBEAT, MT.SNAP]
        await t.close()

    asyncio.run(scenario())


def test_dials_only_when_there_is_something_to_send() -> None:
    async def scenario() -> None:
        asked: list[int] = []

        async def resolve(peer: int) -> tuple[str, int]:
            asked.append(peer)
            raise ConnectionError("no such replica")  # e.g. its actor is gone (removed member)

        t = PeerTransport(1, resolve, backoff=(0.01, 0.02))
        t.send(2, [heartbeat(1)])
        await until(lambda: t.stats()[2].failed_dials == 1, "the failed dial")
        await asyncio.sleep(0.3)  # many backoff periods: nothing to send, so no dial
        assert asked == [2] and t.stats()[2].dials == 1
        await retransmitting(t, 2, heartbeat(2), lambda: len(asked) >= 2, "a dial for a new message")
        await t.close()

    asyncio.run(scenario())


def test_refuses_a_dial_meant_for_another_replica_and_messages_forged_for_another_sender() -> None:
    async def scenario() -> None:
        inbox = Inbox()
        lst = await listen(3, inbox)  # replica 3 listens where 1 believes replica 2 is
        t = PeerTransport(1, resolver_for({2: lst.address}), backoff=(0.02, 0.05))
        t.send(2, [heartbeat(1)])
        await retransmitting(
            t, 2, heartbeat(1), lambda: lst.refused >= 2 and t.stats()[2].failed_dials >= 2, "refusals"
        )
        assert inbox.messages == [] and lst.accepted == 0
        await t.close()

        t2 = PeerTransport(1, resolver_for({3: lst.address}))
        t2.send(3, [heartbeat(5, frm=2, to=3), heartbeat(6, frm=1, to=3)])
        await until(lambda: len(inbox.messages) >= 1, "delivery")
        await asyncio.sleep(0.05)
        assert inbox.messages == [heartbeat(6, frm=1, to=3)], "1 may not speak for 2"
        await t2.close()
        await lst.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "who",
    [
        pytest.param("no-client-certificate", id="no-client-certificate"),
        pytest.param("client-certificate-of-another-ca", id="client-certificate-of-another-ca"),
        pytest.param("user-certificate-of-the-cluster-ca", id="user-certificate-of-the-cluster-ca"),
        pytest.param("plain-tcp-to-a-tls-listener", id="plain-tcp-to-a-tls-listener"),
        pytest.param("listener-of-another-ca", id="listener-of-another-ca"),
        pytest.param("listener-with-a-user-certificate", id="listener-with-a-user-certificate"),
    ],
)
def test_mutual_tls_refuses_peers_without_a_valid_certificate(who: str, certs: Certs) -> None:
    async def scenario() -> None:
        inbox = Inbox()
        listener_tls = {
            "listener-of-another-ca": certs.stranger,
            "listener-with-a-user-certificate": certs.user,
        }
        lst = await listen(2, inbox, certs.server(listener_tls.get(who)))
        ctx: ssl.SSLContext | None
        if who == "no-client-certificate":
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=certs.tls.ca.decode())
            ctx.check_hostname = False
        elif who == "client-certificate-of-another-ca":
            ctx = certs.client(certs.stranger)
        elif who == "user-certificate-of-the-cluster-ca":
            ctx = certs.client(certs.user)
        elif who == "plain-tcp-to-a-tls-listener":
            ctx = None
        else:
            ctx = certs.client()
        t = PeerTransport(
            1,
            resolver_for({2: lst.address}),
            ssl_context=ctx,
            authorize=peer_is_replica,
            backoff=(0.02, 0.05),
        )
        t.send(2, [heartbeat(1)])
        await retransmitting(t, 2, heartbeat(1), lambda: t.stats()[2].failed_dials >= 2, "refused dials")
        assert inbox.messages == [] and lst.accepted == 0 and not t.stats()[2].connected
        await t.close()
        # The same listener accepts a replica's certificate: the refusal was the certificate.
        if not who.startswith("listener"):
            ok = PeerTransport(
                1, resolver_for({2: lst.address}), ssl_context=certs.client(), authorize=peer_is_replica
            )
            ok.send(2, [heartbeat(2)])
            await until(lambda: inbox.messages == [heartbeat(2)], "delivery with a replica's certificate")
            await ok.close()
        await lst.close()

    asyncio.run(scenario())


# --- three replicas over it -----------------------------------------------------------------------

FAST = ReplicaOptions(tick_seconds=0.01, election_tick=10, snapshot_entries=50, keep_entries=10)


def test_replicas_replicate_and_a_lagging_one_catches_up_by_chunked_snapshot(
    tmp_path: Path, certs: Certs
) -> None:
    async def scenario() -> None:
        ids = (1, 2, 3)
        replicas: dict[int, Replica] = {}
        listeners: dict[int, PeerListener] = {}
        addresses: dict[int, tuple[str, int]] = {}
        transports: list[PeerTransport] = []
        received: dict[int, list[MessageType]] = {i: [] for i in ids}

        def deliver_to(i: int) -> Callable[[Sequence[Message]], None]:
            def deliver(messages: Sequence[Message]) -> None:
                received[i].extend(m.type for m in messages)
                replicas[i].deliver(messages)

            return deliver

        for i in ids:
            lst = PeerListener(i, deliver_to(i), ssl_context=certs.server(), authorize=peer_is_replica)
            addresses[i] = lst.bind(HOST)
            listeners[i] = lst
        for i in ids:
            t = PeerTransport(
                i,
                resolver_for(addresses),
                ssl_context=certs.client(),
                authorize=peer_is_replica,
                chunk_bytes=512,
            )
            transports.append(t)
            replicas[i] = Replica(i, list(ids), tmp_path / f"r{i}", t, FAST, empty_start=EmptyStart.BOOTSTRAP)
            t.on_snapshot = replicas[i].report_snapshot
        for i in ids:
            await listeners[i].serve()
            replicas[i].start()
        await until(lambda: sum(r.role.name == "LEADER" for r in replicas.values()) == 1, "a leader")
        leader = next(r for r in replicas.values() if r.role.name == "LEADER")
        lagging = next(r for r in replicas.values() if r is not leader)
        lagging.blocked = {x for x in ids if x != lagging.id}  # cut off (fault injection in Replica)
        for k in range(150):  # past three snapshots: the leader's log no longer has what it lacks
            req = Request(b"c", k + 1, k + 1, PutOp(b"/k/%03d" % k, b"v" * 100))
            res = await leader.propose([encode_request(req)])
            assert getattr(res[0], "revision", 0) > 0, res
        assert lagging.kv_hash() != leader.kv_hash()
        lagging.blocked = set()
        await until(lambda: lagging.kv_hash() == leader.kv_hash(), "the lagging replica to catch up", 30)
        assert MT.SNAP in received[lagging.id], "it caught up from the leader's snapshot"
        for t in transports:
            await t.close()
        for r in replicas.values():
            await r.close()
        for lst in listeners.values():
            await lst.close()

    asyncio.run(scenario())
