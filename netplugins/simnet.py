"""Simulated multi-node networking on one machine: node network namespaces on a bridged "underlay".

Role: tests and benchmarks need several *nodes* whose traffic really crosses a routed hop, on one
machine. ``SimulatedNodes`` builds, in the root network namespace, one Linux bridge per underlay
segment (standing in for the data-centre network, address ``10.250.N.1/24``) and one network
namespace per node (``rkn<hex>-<i>``) joined to its segment's bridge by a veth pair whose node end
is ``eth0``; each node has its own underlay address, ``lo`` up, a default route via its bridge's
address and ``net.ipv4.ip_forward=1`` (a node routes for its pods). With two segments the root
namespace routes between them (its ``ip_forward`` is set to 1 and restored on teardown), so nodes
on different segments share no L2 (what a VXLAN backend must cope with).

The planning is pure (``plan_underlay``, ``setup_commands``, ``teardown_commands``,
``taken_networks``); the shell runs ``ip``/``sysctl`` and holds the host-wide choice lock.

Invariants:
- Everything made is named with the plan's random suffix (``rkul<hex>`` bridges, ``rkv<hex>-<i>``
  host-side veths, ``rkn<hex>-<i>`` namespaces); teardown removes exactly those, kills the processes
  left in each node namespace first, and is idempotent (safe after a failed or partial setup).
- The underlay /24s never overlap a route or address already in the root namespace; the choice and
  the creation happen under an ``flock`` of ``/run/lock/raykube-simnet.lock`` (a lock file that stays,
  as lock files in /run/lock do) so two parallel runs cannot pick the same.
- The root ``ip_forward`` is restored to its previous value, unless another routed simulated underlay
  still exists (then that one's teardown restores it).

Ray nodes inside node namespaces: ``netplugins/simnet_ray.py``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import signal
import subprocess
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from types import TracebackType
from typing import Any

UNDERLAY_POOL = IPv4Network("10.250.0.0/16")
SEGMENT_PREFIX = 24
LOCK_FILE = Path("/run/lock/raykube-simnet.lock")
IP_FORWARD = "net.ipv4.ip_forward"
NODE_IFNAME = "eth0"
# Bridges of segment 1 carry this tail: teardown looks for other routed underlays by it.
ROUTED_TAIL = "s1"
Command = list[str]


# ---------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True, slots=True)
class Segment:
    """One L2 underlay segment: a bridge in the root namespace with the segment's first address."""

    index: int
    bridge: str
    network: IPv4Network

    @property
    def gateway(self) -> IPv4Interface:
        """The bridge's address (``10.250.N.1/24``): the nodes' default gateway."""
        return IPv4Interface(f"{self.network[1]}/{self.network.prefixlen}")


@dataclass(frozen=True, slots=True)
class SimNode:
    """One simulated node: a network namespace with ``eth0`` on a segment."""

    index: int
    netns: str
    segment: int
    address: IPv4Interface
    gateway: IPv4Address
    host_veth: str
    ifname: str = NODE_IFNAME

    @property
    def ip(self) -> str:
        """The node's underlay address without prefix (its Ray ``--node-ip-address``)."""
        return str(self.address.ip)

    def command(self, argv: Sequence[str]) -> Command:
        """``argv`` run inside this node's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]


@dataclass(frozen=True, slots=True)
class UnderlayPlan:
    """What ``SimulatedNodes`` builds: segments, nodes, and whether the root namespace routes."""

    suffix: str
    segments: tuple[Segment, ...]
    nodes: tuple[SimNode, ...]

    @property
    def routed(self) -> bool:
        """True when nodes sit on more than one segment (root ``ip_forward`` must be 1)."""
        return len(self.segments) > 1

    def names(self) -> tuple[str, ...]:
        """Every name and subnet this plan creates (to scope a host-network diff to it)."""
        return (
            *(s.bridge for s in self.segments),
            *(str(s.network) for s in self.segments),
            *(n.netns for n in self.nodes),
            *(n.host_veth for n in self.nodes),
        )


def taken_networks(
    routes: Iterable[Mapping[str, Any]], addrs: Iterable[Mapping[str, Any]]
) -> list[IPv4Network]:
    """IPv4 networks in use, from ``ip -j route show table all`` and ``ip -j addr`` output.

    The default route is not "in use" for our purposes (it covers everything).
    """
    taken: list[IPv4Network] = []
    for route in routes:
        dst = str(route.get("dst", ""))
        if dst in ("", "default"):
            continue
        with contextlib.suppress(ValueError):
            taken.append(IPv4Network(dst, strict=False))
    for link in addrs:
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                taken.append(IPv4Network(f"{info['local']}/{info['prefixlen']}", strict=False))
    return taken


def free_subnets(
    taken: Iterable[IPv4Network], count: int, rng: random.Random, pool: IPv4Network = UNDERLAY_POOL
) -> list[IPv4Network]:
    """``count`` distinct /24s of ``pool`` overlapping nothing in ``taken``, in random order."""
    used = list(taken)
    free = [net for net in pool.subnets(new_prefix=SEGMENT_PREFIX) if not any(net.overlaps(t) for t in used)]
    if len(free) < count:
        raise RuntimeError(f"no {count} free /{SEGMENT_PREFIX} left in {pool} for a simulated underlay")
    return rng.sample(free, count)


def plan_underlay(
    suffix: str, placement: Sequence[int], taken: Iterable[IPv4Network], rng: random.Random
) -> UnderlayPlan:
    """The underlay for nodes placed on segments ``placement`` (``[0, 0, 1]``: three nodes, two segments).

    Segments are numbered 0 and 1 (segment 1 only when some node uses it). On each segment the
    bridge has ``.1`` and its nodes ``.2``, ``.3``, ... in node order.
    """
    if not placement:
        raise ValueError("a simulated underlay needs at least one node")
    if any(s not in (0, 1) for s in placement):
        raise ValueError(f"segments are 0 or 1, got {list(placement)}")
    count = max(placement) + 1
    networks = free_subnets(taken, count, rng)
    segments = tuple(
        Segment(i, f"rkul{suffix}" + (ROUTED_TAIL if i else ""), net) for i, net in enumerate(networks)
    )
    nodes: list[SimNode] = []
    used = [1] * count  # host numbers taken on each segment (the bridge has .1)
    for i, seg in enumerate(placement):
        used[seg] += 1
        segment = segments[seg]
        address = IPv4Interface(f"{segment.network[used[seg]]}/{segment.network.prefixlen}")
        nodes.append(SimNode(i, f"rkn{suffix}-{i}", seg, address, segment.gateway.ip, f"rkv{suffix}-{i}"))
    return UnderlayPlan(suffix, segments, tuple(nodes))


def setup_commands(plan: UnderlayPlan) -> list[Command]:
    """The ``ip``/``sysctl`` commands that build ``plan`` (root ``ip_forward`` is the shell's job)."""
    cmds: list[Command] = []
    for s in plan.segments:
        cmds += [
            ["ip", "link", "add", s.bridge, "type", "bridge"],
            ["ip", "addr", "add", str(s.gateway), "dev", s.bridge],
            ["ip", "link", "set", s.bridge, "up"],
        ]
    for n in plan.nodes:
        bridge = plan.segments[n.segment].bridge
        cmds += [
            ["ip", "netns", "add", n.netns],
            ["ip", "link", "add", n.host_veth, "type", "veth", "peer", "name", n.ifname, "netns", n.netns],
            ["ip", "link", "set", n.host_veth, "master", bridge],
            ["ip", "link", "set", n.host_veth, "up"],
            n.command(["ip", "link", "set", "lo", "up"]),
            n.command(["ip", "addr", "add", str(n.address), "dev", n.ifname]),
            n.command(["ip", "link", "set", n.ifname, "up"]),
            n.command(["ip", "route", "add", "default", "via", str(n.gateway)]),
            n.command(["sysctl", "-qw", f"{IP_FORWARD}=1"]),
        ]
    return cmds


def teardown_commands(plan: UnderlayPlan, netns: Iterable[str], links: Iterable[str]) -> list[Command]:
    """Commands removing what of ``plan`` still exists (``netns`` and ``links``: what the host has).

    Host-side veths go first: deleting one end removes the pair at once, whereas a namespace's
    ``eth0`` (and so the pair) is destroyed asynchronously after ``ip netns del`` returns.
    """
    present_ns, present_links = set(netns), set(links)
    cmds = [["ip", "link", "del", n.host_veth] for n in plan.nodes if n.host_veth in present_links]
    cmds += [["ip", "netns", "del", n.netns] for n in plan.nodes if n.netns in present_ns]
    cmds += [["ip", "link", "del", s.bridge] for s in plan.segments if s.bridge in present_links]
    return cmds


# --------------------------------------------------------------------------------------- the shell


def run(cmd: Sequence[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run one command, raising with its stderr when ``check`` and it fails."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def ip_json(*args: str) -> list[dict[str, Any]]:
    """``ip -j ARGS`` parsed (an empty list when it prints nothing)."""
    out = run(["ip", "-j", *args]).stdout.strip()
    return list(json.loads(out)) if out else []


def netns_names() -> list[str]:
    """Names of the named network namespaces (``ip netns list``)."""
    return [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]


def link_names() -> list[str]:
    """Names of the root namespace's links."""
    return [str(link["ifname"]) for link in ip_json("link")]


def read_sysctl(name: str) -> str:
    return Path("/proc/sys", *name.split(".")).read_text().strip()


def write_sysctl(name: str, value: str) -> None:
    Path("/proc/sys", *name.split(".")).write_text(value)


@contextlib.contextmanager
def choice_lock() -> Iterator[None]:
    """Host-wide lock for choosing, creating and removing underlays.

    Not an flock of ``/run/netns``: ``ip netns add`` takes that one itself.
    """
    LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def netns_pids(netns: str) -> list[int]:
    """PIDs of the processes living in ``netns`` (their /proc/PID/ns/net is the namespace's inode)."""
    proc = run(["ip", "netns", "pids", netns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()] if proc.returncode == 0 else []


def kill_netns_processes(netns: str, grace: float = 10.0) -> list[int]:
    """SIGTERM every process in ``netns``, SIGKILL what is left after ``grace`` seconds; the PIDs seen.

    Returns once the namespace holds no process (or after a further ``grace`` of SIGKILLs).
    """
    seen: set[int] = set()
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, grace)):
        pids = netns_pids(netns)
        if not pids:
            break
        for pid in pids:
            seen.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while netns_pids(netns) and time.monotonic() < deadline:  # a zombie no longer counts
            time.sleep(0.1)
    return sorted(seen)


class SimulatedNodes:
    """A simulated underlay with nodes in network namespaces; a context manager (see module doc).

    ``SimulatedNodes(2)``: two nodes on one segment; ``SimulatedNodes(segments=[0, 1])``: two nodes on
    two segments routed through the root namespace. Use ``with``, or ``start()`` and ``close()``;
    ``close()`` is idempotent and also runs when ``start()`` fails half-way.
    """

    def __init__(
        self, count: int = 2, *, segments: Sequence[int] | None = None, suffix: str | None = None
    ) -> None:
        self.placement: tuple[int, ...] = tuple(segments) if segments is not None else (0,) * count
        self.suffix = suffix or secrets.token_hex(3)
        self.plan: UnderlayPlan | None = None
        self._saved_forward: str | None = None

    # -- lifecycle

    def start(self) -> SimulatedNodes:
        try:
            with choice_lock():
                taken = taken_networks(ip_json("route", "show", "table", "all"), ip_json("addr"))
                self.plan = plan_underlay(self.suffix, self.placement, taken, random.Random())
                if self.plan.routed:
                    self._saved_forward = read_sysctl(IP_FORWARD)
                for cmd in setup_commands(self.plan):
                    run(cmd)
                if self.plan.routed:
                    write_sysctl(IP_FORWARD, "1")
        except BaseException:
            self.close()
            raise
        return self

    def close(self, grace: float = 10.0) -> None:
        """Remove everything this underlay made (processes in its namespaces first); idempotent."""
        plan = self.plan
        if plan is None:
            return
        with choice_lock():
            present = set(netns_names())
            for node in plan.nodes:
                if node.netns in present:
                    kill_netns_processes(node.netns, grace)
            for cmd in teardown_commands(plan, present, link_names()):
                run(cmd, check=False)
            self._restore_forward()
        leftover = [n for n in plan.names() if n in set(netns_names()) | set(link_names())]
        if leftover:
            raise RuntimeError(f"simulated underlay teardown left {leftover}")

    def _restore_forward(self) -> None:
        saved, self._saved_forward = self._saved_forward, None
        if saved is None:
            return
        others = [name for name in link_names() if name.startswith("rkul") and name.endswith(ROUTED_TAIL)]
        if not others:
            write_sysctl(IP_FORWARD, saved)

    def __enter__(self) -> SimulatedNodes:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- accessors

    def _plan(self) -> UnderlayPlan:
        if self.plan is None:
            raise RuntimeError("SimulatedNodes is not started")
        return self.plan

    @property
    def nodes(self) -> tuple[SimNode, ...]:
        return self._plan().nodes

    @property
    def segments(self) -> tuple[Segment, ...]:
        return self._plan().segments

    @property
    def head_ip(self) -> str:
        """The root namespace's address on segment 0 (where a Ray head in the root namespace listens)."""
        return str(self._plan().segments[0].gateway.ip)

    def names(self) -> tuple[str, ...]:
        return self._plan().names()

    # -- running things in a node

    def exec(self, node: SimNode, argv: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` in ``node``'s namespace to completion (text mode, output captured)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("check", False)
        return subprocess.run(node.command(argv), **kw)

    def popen(self, node: SimNode, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` in ``node``'s namespace; teardown kills it if the caller did not."""
        return subprocess.Popen(node.command(argv), **kw)


__all__ = [
    "Segment",
    "SimNode",
    "SimulatedNodes",
    "UnderlayPlan",
    "free_subnets",
    "kill_netns_processes",
    "netns_pids",
    "plan_underlay",
    "setup_commands",
    "taken_networks",
    "teardown_commands",
]
