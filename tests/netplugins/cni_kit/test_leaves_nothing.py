"""A whole kit run (``run_kit``, as ``python -m netplugins.cni.kit`` does) against each plugin, then a
purge: no failed case, and nothing of the plugin's left in the root namespace (links, addresses,
routes, nft rules, netns, CNI state files naming its bridge, subnet or the kit)."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from netplugins.cni.kit import FAIL, report, run_kit
from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import serve
from tests import hostnet
from tests.capabilities import require
from tests.netplugins.cni_kit.conftest import PLUGINS, PluginUnderTest, root_missing
from tests.netplugins.cni_kit.support import node_ip


def _tokens(options: dict[str, object]) -> list[str]:
    """Strings that name what this plugin instance makes: its bridge, its subnet's first three octets."""
    out = ["rkkit"]
    for key in ("bridge",):
        if options.get(key):
            out.append(str(options[key]))
    for key in ("pod_cidr", "subnet"):
        if options.get(key):
            net = ipaddress.ip_network(str(options[key]))
            out.append(str(net.network_address).rsplit(".", 1)[0] + ".")
    return out


async def _run(put: PluginUnderTest, options: dict[str, object], tmp: Path) -> tuple[bool, str]:
    ctx = PluginContext(f"rkkit-{put.name}", str(tmp / "state"), (node_ip(),), options)
    server = await serve(load_plugin(put.spec)(ctx), str(tmp / "cni.sock"))
    try:
        results, kit = await run_kit(server.socket_path, capacity=put.capacity)
    finally:
        await server.stop(purge=True)
    return not any(r.outcome == FAIL for r in results), report(results, kit)


@pytest.mark.parametrize("put", PLUGINS, ids=lambda p: p.name)
def test_kit_run_then_purge_leaves_nothing(put: PluginUnderTest, tmp_path: Path) -> None:
    require("root", root_missing())
    options = put.options()
    before = hostnet.snapshot()
    ok, text = asyncio.run(_run(put, options, tmp_path))
    after = hostnet.snapshot()
    assert ok, text
    assert hostnet.diff(before, after, only=_tokens(options)) == []
