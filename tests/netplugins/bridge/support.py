"""Helpers for the bridge plugin's tests: a free podCIDR, pod network namespaces, TCP probes."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import random
import secrets
import subprocess
import sys
from collections.abc import Iterator, Sequence

# A TCP server that answers each connection with the peer's address, then exits (one connection).
SERVER = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_STREAM)\n"
    "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
    "s.bind((sys.argv[1],int(sys.argv[2])))\n"
    "s.listen(4)\n"
    "print('listening',flush=True)\n"
    "s.settimeout(60)\n"
    "c,a=s.accept()\n"
    "c.sendall(a[0].encode())\n"
    "c.close()\n"
)
CLIENT = (
    "import socket,sys\n"
    "s=socket.create_connection((sys.argv[1],int(sys.argv[2])),timeout=10)\n"
    "print(s.recv(100).decode())\n"
)


def in_netns(netns: str | None, argv: Sequence[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *argv] if netns else list(argv)


def taken_networks() -> list[ipaddress.IPv4Network]:
    out = []
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"],
                                       capture_output=True, text=True, check=True).stdout)  # fmt: skip
    for r in routes:
        dst = r.get("dst", "")
        if dst and dst != "default" and "." in dst:
            with contextlib.suppress(ValueError):
                out.append(ipaddress.ip_network(dst, strict=False))
    return out


def free_pod_cidr(prefix: int = 24) -> str:
    """A random 10.x.y.0/prefix overlapping no route of the root namespace (the machine is shared)."""
    taken = taken_networks()
    rng = random.Random()
    for _ in range(200):
        net = ipaddress.ip_network(f"10.{rng.randrange(100, 200)}.{rng.randrange(0, 256)}.0/{prefix}")
        supernet = net.supernet(new_prefix=16)
        if not any(net.overlaps(t) or supernet.overlaps(t) for t in taken if t.prefixlen > 0):
            return str(net)
    raise RuntimeError("no free podCIDR found")


@contextlib.contextmanager
def pod_netns(count: int) -> Iterator[list[str]]:
    """``count`` fresh named network namespaces (``rkp<hex>-<i>``), deleted afterwards."""
    suffix = secrets.token_hex(3)
    names = [f"rkp{suffix}-{i}" for i in range(count)]
    try:
        for n in names:
            subprocess.run(["ip", "netns", "add", n], check=True)
        yield names
    finally:
        for n in names:
            subprocess.run(["ip", "netns", "del", n], check=False, capture_output=True)


def netns_path(name: str) -> str:
    return f"/run/netns/{name}"


@contextlib.contextmanager
def tcp_server(netns: str | None, bind: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """A one-connection server in ``netns`` that tells the client its source address."""
    proc = subprocess.Popen(in_netns(netns, [sys.executable, "-c", SERVER, bind, str(port)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line == "listening", (
            f"server did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}"
        )
        yield proc
    finally:
        proc.kill()
        proc.wait()


def tcp_client(netns: str | None, host: str, port: int) -> str:
    """Connect from ``netns`` to host:port; the server's answer (the source address it saw)."""
    proc = subprocess.run(in_netns(netns, [sys.executable, "-c", CLIENT, host, str(port)]),
                          capture_output=True, text=True, timeout=30)  # fmt: skip
    assert proc.returncode == 0, f"connect to {host}:{port} from {netns or 'host'} failed: {proc.stderr}"
    return proc.stdout.strip()


def links_in(netns: str | None) -> list[str]:
    out = subprocess.run(in_netns(netns, ["ip", "-j", "link"]), capture_output=True, text=True, check=True)
    return [link["ifname"] for link in json.loads(out.stdout)]
