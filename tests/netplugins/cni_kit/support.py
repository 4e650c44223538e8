"""Helpers the CNI kit's tests and other network tests share: a free private subnet, the node's
address, and an event loop in a thread to serve a plugin on while the test runs its own loops."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import secrets
import subprocess
import threading
from typing import Any


def _taken_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True, text=True)
    nets = []
    for route in json.loads(out.stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def free_subnet(prefix: int = 28) -> str:
    """A random 10.96-10.127.x.y/prefix that no route of this machine overlaps."""
    taken = _taken_networks()
    for _ in range(100):
        base = ipaddress.ip_network(f"10.{96 + secrets.randbelow(32)}.{secrets.randbelow(256)}.0/24")
        net = next(base.subnets(new_prefix=prefix))
        if not any(net.overlaps(t) for t in taken):
            return str(net)
    raise RuntimeError("no free subnet found")


def node_ip() -> str:
    out = subprocess.run(["ip", "-j", "route", "get", "192.0.2.1"], capture_output=True, text=True)
    routes = json.loads(out.stdout or "[]")
    return str(routes[0].get("prefsrc", "127.0.0.1")) if routes else "127.0.0.1"


class LoopThread:
    """An event loop in a thread: the served plugin lives there while tests run their own loops."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="cni-kit-plugin", daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 120) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
