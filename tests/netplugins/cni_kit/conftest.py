"""Fixtures of the CNI kit's pytest wiring: each network plugin served on its own socket.

``PLUGINS`` is the table of plugins the kit runs against (built-ins and the example in examples/):
how to build each one's ``PluginContext`` options (private names and a small random subnet, so
parallel runs on one machine do not collide), the kit's ``capacity`` for it (None where addresses
cannot run out) and which cases do not apply, with the reason. A plugin is served in-process on a
background event loop for the module's lifetime, stopped with ``purge=True`` at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import NetworkServer, serve
from tests.capabilities import require


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


@dataclass(frozen=True)
class PluginUnderTest:
    name: str
    spec: str  # what `raykube up --network` takes
    options: Callable[[], dict[str, Any]]
    capacity: int | None  # pod addresses in the subnet given (a /28 leaves 13 after the gateway)
    not_applicable: dict[str, str] = field(default_factory=dict)  # case -> why


PLUGINS = [
    PluginUnderTest(
        "bridge",
        "bridge",
        lambda: {
            "bridge": f"rkk{secrets.token_hex(4)}",
            "pod_cidr": free_subnet(),
            "cluster_cidr": "10.96.0.0/11",
            "backend": "host-gw",
        },
        capacity=13,
    ),
    PluginUnderTest(
        "host",
        "host",
        dict,
        capacity=None,
        not_applicable={
            "exhaustion": "the host plugin hands out no addresses (pods use the node's)",
            "add_gone_netns": "node_network: pods have no namespace of their own",
            "del_gone_netns": "node_network: pods have no namespace of their own",
        },
    ),
    PluginUnderTest(
        "ptp-example",
        "examples.ptp_network:PtpNetwork",
        lambda: {"subnet": free_subnet()},
        capacity=13,
    ),
]


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


@dataclass
class Served:
    plugin: PluginUnderTest
    socket: str
    options: dict[str, Any]
    server: NetworkServer


def root_missing() -> str | None:
    return None if os.geteuid() == 0 else f"the kit makes network namespaces (euid {os.geteuid()})"


@pytest.fixture(scope="module", params=PLUGINS, ids=lambda p: p.name)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The plugin served on ``<tmp>/cni.sock``; stopped with purge afterwards."""
    require("root", root_missing())
    put: PluginUnderTest = request.param
    tmp: Path = tmp_path_factory.mktemp(f"cni-kit-{put.name}")
    options = put.options()
    ctx = PluginContext(
        node_name=f"rkkit-{put.name}", root_dir=str(tmp / "state"), node_ips=(node_ip(),), options=options
    )
    plugin = load_plugin(put.spec)(ctx)
    lt = LoopThread()
    try:
        server = lt.run(serve(plugin, str(tmp / "cni.sock")))
        try:
            yield Served(put, server.socket_path, options, server)
        finally:
            lt.run(server.stop(purge=True))
    finally:
        lt.close()
