"""The network benchmark's measuring program: a TCP bulk transfer and a 1-byte TCP ping-pong.

Run on both ends of every measured path, so each path is measured by the same code (iperf3 is not
installed here). Standard library only, so ``ip netns exec NS python -m bench.netperf ...`` starts
fast:

- ``serve --port P [--sink-cpu C] [--echo-cpu C]``: listens on all addresses, prints ``ready`` on
  stdout once listening, then serves connections one at a time until killed. A connection's first
  byte picks the test: ``T`` (throughput) reads until the peer shuts its side down and answers the
  byte count as 8 bytes; ``P`` (ping-pong) echoes every byte back until the peer closes. While
  serving one, the server runs on the CPU given for that test (``-1``: wherever the kernel likes).
- ``throughput --host H --port P --seconds S``: sends 128 KiB buffers for ``S`` seconds, shuts its
  side down and waits for the receiver's count; prints ``{"bytes": n, "seconds": t}`` where ``t``
  runs from the first send to the count's arrival (so every byte counted was received).
- ``rtt --host H --port P --count N``: ``TCP_NODELAY``, after 50 unrecorded warm-up exchanges sends
  one byte and waits for it ``N`` times; prints ``{"rtt_ns": [...]}``.
- both clients take ``--cpu C`` (run on CPU ``C``; ``-1``: anywhere).

Why pin: on a small machine a 1-byte round trip costs ~13 µs when both ends share a CPU and
~35-50 µs when the kernel puts them on two (a cross-CPU wake-up per message), and which one a run
gets is a coin flip; pinning makes every path pay the same scheduling cost, so the ratios compare the
paths. The caller chooses the placement (the benchmark: transfers on two CPUs, ping-pong on one).

Invariants: the client exits non-zero with a message on stderr when the peer misbehaves (short
count, early close); nothing here retries.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import sys
import time

BUFFER = 128 * 1024
WARMUP_ROUND_TRIPS = 50
COUNT = struct.Struct("!Q")
ALL_CPUS = frozenset(os.sched_getaffinity(0))


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"peer closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def pin(cpu: int) -> None:
    """Run this process on ``cpu`` (``-1``: on every CPU it may use)."""
    os.sched_setaffinity(0, ALL_CPUS if cpu < 0 else {cpu})


def _sink(conn: socket.socket) -> None:
    buf = bytearray(BUFFER * 2)
    total = 0
    while True:
        n = conn.recv_into(buf)
        if not n:
            break
        total += n
    conn.sendall(COUNT.pack(total))


def _echo(conn: socket.socket) -> None:
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = conn.recv(1)
        if not data:
            return
        conn.sendall(data)


def serve(port: int, sink_cpu: int = -1, echo_cpu: int = -1) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4)
    print("ready", flush=True)
    while True:
        conn, _ = listener.accept()
        with conn:
            try:
                kind = conn.recv(1)
                if kind == b"T":
                    pin(sink_cpu)
                    _sink(conn)
                elif kind == b"P":
                    pin(echo_cpu)
                    _echo(conn)
            except OSError as e:  # a broken client must not end the server
                print(f"connection failed: {e}", file=sys.stderr, flush=True)


def _connect(host: str, port: int, kind: bytes) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=30)
    sock.sendall(kind)
    return sock


def throughput(host: str, port: int, seconds: float) -> dict[str, float]:
    payload = b"\0" * BUFFER
    with _connect(host, port, b"T") as sock:
        start = time.perf_counter()
        deadline = start + seconds
        sent = 0
        while time.perf_counter() < deadline:
            sock.sendall(payload)
            sent += BUFFER
        sock.shutdown(socket.SHUT_WR)
        (received,) = COUNT.unpack(_recv_exact(sock, COUNT.size))
        elapsed = time.perf_counter() - start
    if received != sent:
        raise ConnectionError(f"receiver counted {received} bytes, {sent} were sent")
    return {"bytes": float(received), "seconds": elapsed}


def rtt(host: str, port: int, count: int) -> dict[str, list[int]]:
    samples: list[int] = []
    with _connect(host, port, b"P") as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(WARMUP_ROUND_TRIPS + count):
            t0 = time.perf_counter_ns()
            sock.sendall(b"x")
            _recv_exact(sock, 1)
            if i >= WARMUP_ROUND_TRIPS:
                samples.append(time.perf_counter_ns() - t0)
    return {"rtt_ns": samples}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.netperf", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--sink-cpu", type=int, default=-1, help="CPU for throughput connections")
    s.add_argument("--echo-cpu", type=int, default=-1, help="CPU for ping-pong connections")
    t = sub.add_parser("throughput")
    r = sub.add_parser("rtt")
    for sp in (t, r):
        sp.add_argument("--host", required=True)
        sp.add_argument("--port", type=int, required=True)
        sp.add_argument("--cpu", type=int, default=-1, help="run on this CPU (-1: anywhere)")
    t.add_argument("--seconds", type=float, default=2.0)
    r.add_argument("--count", type=int, default=2000)
    args = p.parse_args(argv)
    try:
        if args.mode == "serve":
            serve(args.port, args.sink_cpu, args.echo_cpu)
            return 0
        pin(args.cpu)
        out = (
            throughput(args.host, args.port, args.seconds)
            if args.mode == "throughput"
            else rtt(args.host, args.port, args.count)
        )
    except OSError as e:
        print(f"netperf {args.mode}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
