"""Round trip of one Raft message between two processes, on each candidate replica transport.

``python -m bench.peer_rtt [--modes tcp,tls,grpc,ray] [--rounds 2000]`` prints one JSON row per
mode: a leader-like sender in this process sends an APP with one 256-byte entry to a peer process
that answers an APP_RESP at once (the shape of a Raft round without the fsync), ``rounds`` times
one after the other (``p50_ms``, ``p99_ms``), then ``window`` at a time (``msgs_per_s``).

* ``tcp`` / ``tls``: ``cluster.store.peer_transport`` both ways (mutual TLS with the store's real
  peer certificates, made by ``ensure_store_pki`` in a temporary directory);
* ``grpc``: one grpc.aio bidirectional stream carrying the same ``peer_wire`` frames;
* ``ray``: ``step_batch``-style fire-and-forget actor calls between two actors, as ``RayTransport``.

Loopback on one host, so it measures the transports' own costs (encoding, syscalls, the event loop
hops), which is what a Raft round on 2 cores pays per hop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import ray

from cluster.apiserver.tls import ensure_pki
from cluster.store import peer_wire as wire
from cluster.store.peer_transport import PeerLink
from cluster.store.raft.types import Entry, Message, MessageType
from cluster.store.tls import StorePki, StoreTls, ensure_store_pki

HOST = "127.0.0.1"


def publish(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (the other process polls for it)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.rename(path)


def app(i: int) -> Message:
    return Message(MessageType.APP, to=2, frm=1, term=1, index=i, entries=(Entry(1, i + 1, data=b"x" * 256),))


def answer(m: Message) -> Message:
    return Message(MessageType.APP_RESP, to=m.frm, frm=m.to, term=m.term, index=m.index + 1)


class Meter:
    """Matches answers to sends by index; ``measure`` drives the rounds."""

    def __init__(self, send: Callable[[Message], None]) -> None:
        self.send = send
        self.waiting: dict[int, asyncio.Future[None]] = {}

    def deliver(self, messages: Sequence[Message]) -> None:
        for m in messages:
            fut = self.waiting.pop(m.index - 1, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def one(self, i: int) -> None:
        fut = asyncio.get_running_loop().create_future()
        self.waiting[i] = fut
        self.send(app(i))
        await asyncio.wait_for(fut, 10)

    async def measure(self, rounds: int, window: int) -> dict[str, float]:
        for i in range(200):  # warm up: connection, TLS, JIT-free but caches and allocators
            await self.one(i)
        lat = []
        for i in range(1000, 1000 + rounds):
            t0 = time.perf_counter()
            await self.one(i)
            lat.append((time.perf_counter() - t0) * 1000)
        lat.sort()
        n, t0 = rounds * 4, time.perf_counter()
        sem = asyncio.Semaphore(window)

        async def windowed(i: int) -> None:
            async with sem:
                await self.one(i)

        await asyncio.gather(*(windowed(i) for i in range(100_000, 100_000 + n)))
        return {
            "p50_ms": round(statistics.median(lat), 3),
            "p99_ms": round(lat[int(len(lat) * 0.99)], 3),
            "msgs_per_s": round(n / (time.perf_counter() - t0)),
        }


# --- tcp / tls ---------------------------------------------------------------------------------


def _tls(pki_dir: Path) -> Any:
    if not (pki_dir / "ca.crt").exists():
        ensure_pki(pki_dir, hosts=[])
        ensure_store_pki(pki_dir, [HOST])
    return StoreTls.load(StorePki.in_dir(pki_dir))


async def _peer_link(self_id: int, other: dict[int, tuple[str, int]], pki: Path | None) -> Any:
    async def resolve(peer: int) -> tuple[str, int]:
        while peer not in other:
            await asyncio.sleep(0.01)
        return other[peer]

    return PeerLink(self_id, resolve, _tls(pki) if pki else None)


async def serve_tcp(port_file: Path, pki: Path | None) -> None:
    """The peer process: answer every APP, over the transport, to the driver's listener."""
    other: dict[int, tuple[str, int]] = {}
    link = await _peer_link(2, other, pki)
    port = link.listen(lambda ms: [link.transport.send(1, [answer(m)]) for m in ms], HOST, 0)
    publish(port_file, str(port))
    while not (port_file.parent / "driver").exists():
        await asyncio.sleep(0.01)
    other[1] = (HOST, int((port_file.parent / "driver").read_text()))
    await asyncio.sleep(3600)


async def drive_tcp(rounds: int, window: int, tmp: Path, pki: Path | None) -> dict[str, float]:
    args = [sys.executable, "-m", "bench.peer_rtt", "--serve", "tcp", "--dir", str(tmp)]
    if pki:
        args += ["--pki", str(pki)]
    proc = subprocess.Popen(args)
    try:
        other: dict[int, tuple[str, int]] = {}
        link = await _peer_link(1, other, pki)
        meter = Meter(lambda m: link.transport.send(2, [m]))
        port = link.listen(meter.deliver, HOST, 0)
        publish(tmp / "driver", str(port))
        while not (tmp / "port").exists():
            await asyncio.sleep(0.01)
        other[2] = (HOST, int((tmp / "port").read_text()))
        result = await meter.measure(rounds, window)
        await link.close()
        return result
    finally:
        proc.kill()
        proc.wait()


# --- grpc --------------------------------------------------------------------------------------

_METHOD = "/raykube.bench.Peer/Stream"


async def serve_grpc(port_file: Path) -> None:
    async def stream(requests: Any, context: Any) -> Any:
        async for raw in requests:
            msgs = wire.Reassembler().feed(wire.unpack_frame(raw[wire.HEADER.size :]))
            yield b"".join(wire.encode_batches([[answer(m) for m in msgs]]))

    handler = grpc.stream_stream_rpc_method_handler(stream)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("raykube.bench.Peer", {"Stream": handler})]
    )
    port = server.add_insecure_port(f"{HOST}:0")
    await server.start()
    publish(port_file, str(port))
    await server.wait_for_termination()


async def drive_grpc(rounds: int, window: int, tmp: Path) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.peer_rtt", "--serve", "grpc", "--dir", str(tmp)])
    try:
        while not (tmp / "port").exists():
            await asyncio.sleep(0.01)
        channel = grpc.aio.insecure_channel(f"{HOST}:{(tmp / 'port').read_text()}")
        call = channel.stream_stream(_METHOD)()
        outbox: asyncio.Queue[bytes] = asyncio.Queue()
        meter = Meter(lambda m: outbox.put_nowait(b"".join(wire.encode_batches([[m]]))))

        async def writer() -> None:
            while True:
                await call.write(await outbox.get())

        async def reader() -> None:
            async for raw in call:
                meter.deliver(wire.Reassembler().feed(wire.unpack_frame(raw[wire.HEADER.size :])))

        tasks = [asyncio.create_task(writer()), asyncio.create_task(reader())]
        result = await meter.measure(rounds, window)
        for t in tasks:
            t.cancel()
        await channel.close()
        return result
    finally:
        proc.kill()
        proc.wait()


# --- ray ---------------------------------------------------------------------------------------


def drive_ray(rounds: int, window: int) -> dict[str, float]:
    class Peer:
        def __init__(self, other_name: str | None) -> None:
            self.other_name = other_name
            self.other: Any = None
            self.meter: Meter | None = None

        async def step_batch(self, messages: list[Message]) -> None:
            if self.meter is not None:
                self.meter.deliver(messages)
                return
            if self.other is None:
                self.other = ray.get_actor(str(self.other_name))
            self.other.step_batch.remote([answer(m) for m in messages])

        async def run(self, peer_name: str, rounds: int, window: int) -> dict[str, float]:
            target = ray.get_actor(peer_name)
            self.meter = Meter(lambda m: target.step_batch.remote([m]))
            return await self.meter.measure(rounds, window)

    actor: Any = ray.remote(num_cpus=0, max_concurrency=10_000)(Peer)  # type: ignore[call-overload]
    ray.init(namespace="peer-rtt", include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    try:
        driver = actor.options(name="driver").remote(None)
        echo = actor.options(name="echo").remote("driver")
        ray.get(echo.step_batch.remote([]))
        row: dict[str, float] = ray.get(driver.run.remote("echo", rounds, window))
        return row
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", default="tcp,tls,grpc")
    p.add_argument("--rounds", type=int, default=2000)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--serve", choices=["tcp", "grpc"])
    p.add_argument("--dir", type=Path)
    p.add_argument("--pki", type=Path)
    a = p.parse_args(argv)
    if a.serve == "tcp":
        asyncio.run(serve_tcp(a.dir / "port", a.pki))
        return
    if a.serve == "grpc":
        asyncio.run(serve_grpc(a.dir / "port"))
        return
    with tempfile.TemporaryDirectory(prefix="peer-rtt-") as tmp:
        pki = Path(tmp) / "pki"
        for mode in a.modes.split(","):
            run_dir = Path(tmp) / mode
            run_dir.mkdir()
            if mode in ("tcp", "tls"):
                row = asyncio.run(drive_tcp(a.rounds, a.window, run_dir, pki if mode == "tls" else None))
            elif mode == "grpc":
                row = asyncio.run(drive_grpc(a.rounds, a.window, run_dir))
            else:
                row = drive_ray(a.rounds, a.window)
            print(json.dumps({"mode": mode, "rounds": a.rounds, "window": a.window, **row}), flush=True)


if __name__ == "__main__":
    main()
