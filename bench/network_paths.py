"""The network benchmark's data-path half: bare namespaces, and TCP measured between two endpoints.

An ``Endpoint`` is a network namespace and the address a peer reaches it at; a ``NetPath`` is a
client endpoint and a server endpoint. ``measure_paths`` runs ``bench.netperf`` on both ends of each
path (a server per path for the whole run, one throughput and one ping-pong client per path and
round, the paths' order rotated every round so machine noise spreads over all of them) and returns
the raw samples; ``path_summary`` turns them into figures (pure).

``Scratch`` names and removes what the benchmark creates on the host: network namespaces and links
named ``rkb<hex>...`` (the run's suffix). ``bare_pair`` makes the peer: two namespaces joined by one
veth pair, nothing else.

Invariants: every server process started is killed when its context exits; ``Scratch.close`` deletes
every namespace and link it handed out that still exists (also after a failure) and reports what it
could not remove.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import signal
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

NETPERF_PORT = 5201
SERVER_START_TIMEOUT_S = 30.0
BARE_ADDRESSES = ("192.168.231.1", "192.168.231.2")  # inside the two bare namespaces only


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def netns_names() -> set[str]:
    return {line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()}


def link_names() -> set[str]:
    return {str(link["ifname"]) for link in json.loads(run(["ip", "-j", "link"]).stdout or "[]")}


# ------------------------------------------------------------------------------- what we create


@dataclass
class Scratch:
    """The run's names (``rkb<6 hex>`` + a tail) and their removal."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(3))
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return f"rkb{self.suffix}"

    def name(self, tail: str) -> str:
        name = self.prefix + tail
        if len(name) > 15:
            raise ValueError(f"{name!r} is longer than an interface name may be")
        return name

    def add_netns(self, tail: str) -> str:
        name = self.name(tail)
        self.netns.append(name)
        run(["ip", "netns", "add", name])
        run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"])
        return name

    def own_link(self, tail: str) -> str:
        """A link name the caller (or a plugin it drives) will create in the root namespace."""
        name = self.name(tail)
        self.links.append(name)
        return name

    def close(self) -> list[str]:
        """Delete what still exists (links first: a veth dies with its peer at once); what is left."""
        present_links = link_names()
        for link in self.links:
            if link in present_links:
                run(["ip", "link", "del", link], check=False)
        present_ns = netns_names()
        for ns in self.netns:
            if ns in present_ns:
                for pid in run(["ip", "netns", "pids", ns], check=False).stdout.split():
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), signal.SIGKILL)
                run(["ip", "netns", "del", ns], check=False)
        return self.leftovers()

    def leftovers(self) -> list[str]:
        """Our names still on the host: anything starting with the run's prefix."""
        return sorted(n for n in netns_names() | link_names() if n.startswith(self.prefix))


@dataclass(frozen=True, slots=True)
class Endpoint:
    netns: str
    ip: str

    def command(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass(frozen=True, slots=True)
class NetPath:
    name: str
    client: Endpoint
    server: Endpoint
    what: str = ""


def bare_pair(scratch: Scratch) -> NetPath:
    """Two namespaces joined by one veth pair (addresses only inside them): the peer path."""
    a, b = scratch.add_netns("-ba"), scratch.add_netns("-bb")
    va, vb = scratch.own_link("a"), scratch.own_link("b")
    run(["ip", "link", "add", va, "type", "veth", "peer", "name", vb])
    for ns, dev, ip in ((a, va, BARE_ADDRESSES[0]), (b, vb, BARE_ADDRESSES[1])):
        run(["ip", "link", "set", dev, "netns", ns])
        run(["ip", "netns", "exec", ns, "ip", "addr", "add", f"{ip}/30", "dev", dev])
        run(["ip", "netns", "exec", ns, "ip", "link", "set", dev, "up"])
    return NetPath(
        "bare veth pair", Endpoint(a, BARE_ADDRESSES[0]), Endpoint(b, BARE_ADDRESSES[1]),
        "two network namespaces joined by one veth pair",
    )  # fmt: skip


# ----------------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Placement:
    """CPUs of the two ends (see ``bench.netperf`` on why they are pinned)."""

    sender: int
    sink: int
    ping: int

    @staticmethod
    def default() -> Placement:
        """Transfers with sender and receiver on two CPUs; ping-pong with both ends on one."""
        cpus = sorted(os.sched_getaffinity(0))
        return Placement(cpus[0], cpus[1] if len(cpus) > 1 else cpus[0], cpus[0])


def netperf(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.netperf", *args]


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line ``proc`` prints; it is killed if none comes within ``timeout`` seconds."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    try:
        return proc.stdout.readline() if proc.stdout else ""
    finally:
        timer.cancel()


@contextlib.contextmanager
def netperf_server(endpoint: Endpoint, cpus: Placement) -> Iterator[subprocess.Popen[str]]:
    """``bench.netperf serve`` in ``endpoint``'s namespace, up until the block exits."""
    argv = ["serve", "--port", str(NETPERF_PORT), "--sink-cpu", str(cpus.sink), "--echo-cpu", str(cpus.ping)]
    proc = subprocess.Popen(
        endpoint.command(netperf(*argv)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = first_line(proc, SERVER_START_TIMEOUT_S)
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=SERVER_START_TIMEOUT_S)
            raise RuntimeError(f"netperf server in {endpoint.netns} did not start: {err.strip()}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=SERVER_START_TIMEOUT_S)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def netperf_client(path: NetPath, args: Sequence[str], timeout: float) -> dict[str, Any]:
    argv = path.client.command(netperf(*args, "--host", path.server.ip, "--port", str(NETPERF_PORT)))
    proc = run(argv, check=False, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"netperf {args[0]} on {path.name} failed: {proc.stderr.strip()}")
    out: dict[str, Any] = json.loads(proc.stdout)
    return out


@dataclass
class PathSamples:
    """Raw samples of one path: one (bytes, seconds) per round, every round trip in ns."""

    path: NetPath
    transfers: list[tuple[float, float]] = field(default_factory=list)
    rtt_ns: list[int] = field(default_factory=list)


def measure_paths(
    paths: Sequence[NetPath], rounds: int, seconds: float, round_trips: int, cpus: Placement
) -> list[PathSamples]:
    """Throughput and ping-pong on every path, ``rounds`` times, the order rotated each round."""
    samples = [PathSamples(p) for p in paths]
    send, ping = ["--cpu", str(cpus.sender)], ["--cpu", str(cpus.ping)]
    with contextlib.ExitStack() as stack:
        for p in paths:
            stack.enter_context(netperf_server(p.server, cpus))
        for r in range(rounds):
            order = [(i + r) % len(paths) for i in range(len(paths))]
            for i in order:
                p = paths[i]
                t = netperf_client(p, ["throughput", "--seconds", str(seconds), *send], seconds + 60)
                samples[i].transfers.append((float(t["bytes"]), float(t["seconds"])))
                pong = netperf_client(p, ["rtt", "--count", str(round_trips), *ping], 120)
                samples[i].rtt_ns.extend(int(x) for x in pong["rtt_ns"])
    return samples


# ------------------------------------------------------------------------------------ figures


def percentile(values: Sequence[float], p: float) -> float:
    """``sorted[ceil(n * p / 100) - 1]`` (scheduler_perf's rule); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(len(ordered) * p / 100) - 1)])


def latency_summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50, p99 and mean of ``values`` (their unit), rounded."""
    if not values:
        return {"p50": 0.0, "p99": 0.0, "mean": 0.0}
    return {
        "p50": round(percentile(values, 50), digits),
        "p99": round(percentile(values, 99), digits),
        "mean": round(statistics.fmean(values), digits),
    }


def path_summary(s: PathSamples) -> dict[str, Any]:
    """Throughput (median of the rounds' MB/s, and each round's) and round-trip latency in µs."""
    per_round = [b / t / 1e6 for b, t in s.transfers if t > 0]
    return {
        "path": s.path.name,
        "what": s.path.what,
        "throughput_mb_s": round(statistics.median(per_round), 1) if per_round else 0.0,
        "throughput_rounds_mb_s": [round(x, 1) for x in per_round],
        "rtt_us": latency_summary([ns / 1000 for ns in s.rtt_ns], 1),
        "round_trips": len(s.rtt_ns),
    }


def ratio(ours: float, peer: float, digits: int = 3) -> float | None:
    return round(ours / peer, digits) if peer > 0 else None
