"""Fixtures of the CNI kit's pytest wiring: each network plugin served on its own socket.

``PLUGINS`` is the table of plugins the kit runs against (built-ins and the example in examples/):
how to build each one's ``PluginContext`` options (private names and a small random subnet, so
parallel runs on one machine do not collide), the kit's ``capacity`` for it (None where addresses
cannot run out) and which cases do not apply, with the reason. A plugin is served in-process on a
background event loop for the module's lifetime, stopped with ``purge=True`` at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import NetworkServer, serve
from tests.capabilities import require
from tests.netplugins.cni_kit.support import LoopThread, free_subnet, node_ip


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
