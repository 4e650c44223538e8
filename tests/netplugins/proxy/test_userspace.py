"""The userspace proxy over real sockets on 127.x loopback addresses (no root needed): ClusterIP and
NodePort forwarding, ClientIP affinity, reset without endpoints, UDP sessions, a bind failure that
becomes an Event and spares the other Services, and Services that go away."""

from __future__ import annotations

import asyncio
import errno
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from cluster.client.events import ObjectRef
from netplugins.proxy.announcing import extend_backend
from netplugins.proxy.model import Endpoint, NodeInfo, ServicePort, ServicePortName, ServiceTable
from netplugins.proxy.userspace import (
    FAILED_TO_BIND,
    Affinity,
    Route,
    UserspaceBackend,
    _bind_advice,
    listen_plan,
    pick,
)
from tests.cluster.controllers.local_apiserver import local_apiserver
from tests.cluster.controllers.test_nodeipam import eventually

NODE = NodeInfo("n1", ("127.0.0.1",))


def cluster_ip() -> str:
    """A random 127.96.x.y address (every 127/8 address is local on Linux)."""
    rng = random.SystemRandom()
    return f"127.96.{rng.randrange(1, 255)}.{rng.randrange(11, 255)}"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def entry(
    ip: str, port: int, endpoints: list[Endpoint], *, protocol: str = "TCP", name: str = "web", **kw: Any
) -> tuple[ServicePortName, tuple[ServicePort, tuple[Endpoint, ...]]]:
    spn = ServicePortName("default", name, "", protocol)
    return spn, (ServicePort(spn, (ip,), port, **kw), tuple(endpoints))


class FakeEvents:
    def __init__(self) -> None:
        self.events: list[tuple[ObjectRef, str, str, str]] = []

    def event(self, ref: ObjectRef, event_type: str, reason: str, message: str) -> None:
        self.events.append((ref, event_type, reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def tcp_backends(*names: str) -> AsyncIterator[list[Endpoint]]:
    """TCP servers on 127.0.0.1 that answer each line with ``<name>:<line>`` until EOF."""

    def handler(name: str) -> Any:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(f"{name}:".encode() + line)
                await writer.drain()
            writer.close()

        return serve

    servers = [await asyncio.start_server(handler(n), "127.0.0.1", 0) for n in names]
    try:
        yield [Endpoint("127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
    finally:
        for s in servers:
            s.close()


async def ask(ip: str, port: int, line: str = "hi") -> str:
    reader, writer = await asyncio.open_connection(ip, port)
    writer.write(f"{line}\n".encode())
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return answer.decode().strip()


# -- pure parts ---------------------------------------------------------------------------------------


def test_pick_random_affinity_and_skip() -> None:
    a, b = Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80)
    clock = Clock()
    affinity = Affinity(clock)
    rng = random.Random(1)
    plain = Route(ServicePortName("d", "s", "", "TCP"), (a, b))
    assert {pick(plain, "c", affinity, rng) for _ in range(30)} == {a, b}
    sticky = Route(plain.name, (a, b), affinity_timeout=10)
    first = pick(sticky, "c", affinity, rng)
    assert all(pick(sticky, "c", affinity, rng) == first for _ in range(30))
    clock.now = 9.0  # each use renews the timeout
    assert pick(sticky, "c", affinity, rng) == first
    clock.now = 18.5
    assert pick(sticky, "c", affinity, rng) == first
    clock.now = 40.0  # expired: chosen afresh, both seen again
    assert {pick(sticky, f"c{i}", affinity, rng) for i in range(30)} == {a, b}
    assert pick(sticky, "c", affinity, rng, frozenset({a, b})) is None
    gone = Route(plain.name, (b,), affinity_timeout=10)  # the remembered endpoint left: another one
    affinity.remember(sticky, "x", a)
    assert pick(gone, "x", affinity, rng) == b
    assert pick(Route(plain.name, ()), "c", affinity, rng) is None


def test_listen_plan() -> None:
    ready, unready = Endpoint("10.0.0.1", 8080, "n1"), Endpoint("10.0.0.2", 8080, "n2", ready=False)
    other = Endpoint("10.0.0.3", 8080, "n2")
    spn, value = entry("127.96.0.20", 80, [ready, unready, other], node_port=30080,
                       load_balancer_ips=("172.29.0.1",), external_local=True)  # fmt: skip
    sctp, sctp_value = entry("127.96.0.21", 80, [ready], protocol="SCTP")
    plan = listen_plan({spn: value, sctp: sctp_value}, NodeInfo("n1", ("127.0.0.1", "192.0.2.5")))
    assert sorted(plan) == [
        ("TCP", "127.0.0.1", 30080),
        ("TCP", "127.96.0.20", 80),
        ("TCP", "172.29.0.1", 80),
        ("TCP", "192.0.2.5", 30080),
    ]
    assert plan[("TCP", "127.96.0.20", 80)][0].endpoints == (ready, other)  # internal: cluster-wide
    assert plan[("TCP", "127.0.0.1", 30080)][0].endpoints == (ready,)  # external Local: this node's
    assert {key for key, (_, optional) in plan.items() if optional} == {("TCP", "172.29.0.1", 80)}


# -- real sockets -------------------------------------------------------------------------------------


def test_cluster_ip_and_node_port_forward() -> None:
    asyncio.run(_forward())


async def _forward() -> None:
    ip, node_port = cluster_ip(), free_port()
    backend = UserspaceBackend(rng=random.Random(7))
    try:
        async with tcp_backends("a", "b") as endpoints:
            await backend.sync(dict([entry(ip, 8080, endpoints, node_port=node_port)]), NODE)
            seen = {(await ask(ip, 8080)).split(":")[0] for _ in range(20)}
            assert seen == {"a", "b"}
            assert (await ask("127.0.0.1", node_port, "np")).endswith(":np")
            await backend.sync(dict([entry(ip, 8080, endpoints, node_port=node_port)]), NODE)  # idempotent
            assert (await ask(ip, 8080)).endswith(":hi")
            await backend.sync({}, NODE)  # the Service is gone: nothing listens any more
            with pytest.raises(ConnectionRefusedError):
                await ask(ip, 8080)
    finally:
        await backend.close(purge=True)


def test_client_ip_affinity_sticks_until_the_timeout() -> None:
    asyncio.run(_affinity())


async def _affinity() -> None:
    ip, clock = cluster_ip(), Clock()
    backend = UserspaceBackend(rng=random.Random(3), clock=clock)
    try:
        async with tcp_backends("a", "b", "c") as endpoints:
            await backend.sync(dict([entry(ip, 8080, endpoints, session_affinity_timeout=60)]), NODE)
            seen = {(await ask(ip, 8080)).split(":")[0] for _ in range(15)}
            assert len(seen) == 1
            clock.now = 1000.0
            seen = set()
            for _ in range(15):  # expired before each connection: every connection chooses afresh
                seen.add((await ask(ip, 8080)).split(":")[0])
                clock.now += 100
            assert len(seen) > 1
    finally:
        await backend.close(purge=True)


def test_no_ready_endpoint_resets_the_connection() -> None:
    asyncio.run(_refused())


async def _refused() -> None:
    ip = cluster_ip()
    backend = UserspaceBackend()
    try:
        unready = Endpoint("127.0.0.1", free_port(), ready=False, serving=False)
        await backend.sync(dict([entry(ip, 8080, [unready])]), NODE)
        reader, writer = await asyncio.open_connection(ip, 8080)
        with pytest.raises(ConnectionResetError):
            writer.write(b"x\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(10), 10)
        writer.close()
        # an endpoint that refuses is skipped for one that answers
        async with tcp_backends("up") as endpoints:
            dead = Endpoint("127.0.0.1", free_port())
            await backend.sync(dict([entry(ip, 8080, [dead, *endpoints])]), NODE)
            assert {await ask(ip, 8080) for _ in range(8)} == {"up:hi"}
    finally:
        await backend.close(purge=True)


class UdpEcho(asyncio.DatagramProtocol):
    def __init__(self, prefix: bytes = b"echo:") -> None:
        self.prefix = prefix
        self.peers: set[tuple[str, int]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.DatagramTransport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.peers.add(addr)
        self.transport.sendto(self.prefix + data, addr)


class UdpClient(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.put_nowait((data, addr))


def test_udp_sessions() -> None:
    asyncio.run(_udp())


async def _udp() -> None:
    loop = asyncio.get_running_loop()
    ip = cluster_ip()
    echo_transport, echo = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    port = echo_transport.get_extra_info("sockname")[1]
    backend = UserspaceBackend({"udp_idle_timeout": 0.3})
    client_transport, client = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
    try:
        table = dict([entry(ip, 5353, [Endpoint("127.0.0.1", port)], protocol="UDP", name="dns")])
        await backend.sync(table, NODE)
        for i in range(3):
            client_transport.sendto(f"q{i}".encode(), (ip, 5353))
            data, source = await asyncio.wait_for(client.got.get(), 10)
            assert data == f"echo:q{i}".encode() and source == (ip, 5353)  # the reply comes from the Service
        assert len(echo.peers) == 1  # one session for the client: one source port at the endpoint
        (listener,) = backend.listeners.values()
        assert len(listener.sessions) == 1  # type: ignore[union-attr]
        for _ in range(200):  # the idle session is closed
            if not listener.sessions:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        assert not listener.sessions  # type: ignore[union-attr]
        client_transport.sendto(b"again", (ip, 5353))
        assert (await asyncio.wait_for(client.got.get(), 10))[0] == b"echo:again"
        assert len(echo.peers) == 2  # a new session, from a new source port

    finally:
        client_transport.close()
        echo_transport.close()
        await backend.close(purge=True)


def test_a_bind_failure_is_an_event_and_spares_the_rest() -> None:
    asyncio.run(_bind_failure())


async def _bind_failure() -> None:
    busy_ip, ok_ip = cluster_ip(), cluster_ip()
    events = FakeEvents()
    backend = UserspaceBackend(events=events)
    squatter = socket.socket()
    squatter.bind((busy_ip, 8080))
    squatter.listen()
    try:
        async with tcp_backends("a") as endpoints:
            table: ServiceTable = dict(
                [entry(busy_ip, 8080, endpoints, name="busy"), entry(ok_ip, 8080, endpoints, name="fine")]
            )
            await backend.sync(table, NODE)
            await backend.sync(table, NODE)  # said once
            assert [(r.kind, r.namespace, r.name, t, reason) for r, t, reason, _ in events.events] == [
                ("Service", "default", "busy", "Warning", FAILED_TO_BIND)
            ]
            assert f"cannot listen on {busy_ip}:8080/TCP" in events.events[0][3]
            assert await ask(ok_ip, 8080) == "a:hi"
            squatter.close()  # the address is free now: the next sync listens
            await backend.sync(table, NODE)
            assert await ask(busy_ip, 8080) == "a:hi"
            assert backend.failed == {}
    finally:
        squatter.close()
        await backend.close(purge=True)


def test_a_non_local_address_explains_the_loopback_cidr() -> None:
    asyncio.run(_not_local())


async def _not_local() -> None:
    events = FakeEvents()
    backend = UserspaceBackend(events=events)
    try:
        await backend.sync(dict([entry("192.0.2.77", 8080, [Endpoint("127.0.0.1", 1)])]), NODE)
        (event,) = events.events
        assert "Service CIDR must be a loopback range" in event[3]
    finally:
        await backend.close(purge=True)


def test_bind_advice_names_the_unprivileged_port_limit() -> None:
    advice = _bind_advice(80, OSError(errno.EACCES, "Permission denied"))
    assert "ports below 1024 need root" in advice  # 1024 on this machine (and the kernel's default)
    assert _bind_advice(8080, OSError(errno.EACCES, "Permission denied")) == ""
    assert "loopback range" in _bind_advice(8080, OSError(errno.EADDRNOTAVAIL, "Cannot assign"))


def test_failed_to_bind_reaches_the_api_server_through_the_proxy_wiring(tmp_path: Any) -> None:
    asyncio.run(_wired(tmp_path))


async def _wired(tmp_path: Any) -> None:
    async with local_apiserver() as client:
        backend = extend_backend(UserspaceBackend(), NODE, client, tmp_path, {"announce": False})
        assert backend.announcer is None
        try:
            await backend.sync(dict([entry("192.0.2.77", 8080, [Endpoint("127.0.0.1", 1)])]), NODE)

            async def failed() -> list[Any]:
                items = (await client.list("v1", "events", "default"))["items"]
                return [e for e in items if e["reason"] == FAILED_TO_BIND]

            (event,) = await eventually(failed, "a FailedToBind Event")
            assert event["involvedObject"]["kind"] == "Service" and event["involvedObject"]["name"] == "web"
            assert event["type"] == "Warning" and event["source"]["component"] == "kube-proxy"
        finally:
            await backend.close(purge=True)


def test_a_udp_session_ends_when_its_endpoint_leaves() -> None:
    asyncio.run(_udp_reroute())


async def _udp_reroute() -> None:
    loop = asyncio.get_running_loop()
    ip = cluster_ip()
    first_transport, _ = await loop.create_datagram_endpoint(UdpEcho, local_addr=("127.0.0.1", 0))
    other_transport, _ = await loop.create_datagram_endpoint(
        lambda: UdpEcho(b"other:"), local_addr=("127.0.0.1", 0)
    )
    first = Endpoint("127.0.0.1", first_transport.get_extra_info("sockname")[1])
    other = Endpoint("127.0.0.1", other_transport.get_extra_info("sockname")[1])
    backend = UserspaceBackend({"udp_idle_timeout": 3600})
    client_transport, client = await loop.create_datagram_endpoint(UdpClient, local_addr=("127.0.0.1", 0))
    try:
        await backend.sync(dict([entry(ip, 5353, [first], protocol="UDP")]), NODE)
        client_transport.sendto(b"one", (ip, 5353))
        assert (await asyncio.wait_for(client.got.get(), 10))[0] == b"echo:one"
        (listener,) = backend.listeners.values()
        assert len(listener.sessions) == 1  # type: ignore[union-attr]
        await backend.sync(dict([entry(ip, 5353, [first, other], protocol="UDP")]), NODE)
        assert len(listener.sessions) == 1  # type: ignore[union-attr]  # its endpoint is still there
        await backend.sync(dict([entry(ip, 5353, [other], protocol="UDP")]), NODE)
        assert not listener.sessions  # type: ignore[union-attr]
        client_transport.sendto(b"two", (ip, 5353))
        assert (await asyncio.wait_for(client.got.get(), 10))[0] == b"other:two"
    finally:
        for t in (client_transport, first_transport, other_transport):
            t.close()
        await backend.close(purge=True)
