"""A CSIPlugin served on a real unix socket for a test, and the mounts a test leaves behind.

``serving(plugin, socket)`` starts ``nodeagent.csi.server`` in the test's event loop and stops it
(and the plugin, purging) on the way out; ``run_kit`` runs conformance checks against a plugin
that way; ``leftover_mounts(path)`` asks findmnt for mounts at or below ``path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path

from nodeagent.csi import kit
from nodeagent.csi.client import CSIClient
from nodeagent.csi.plugin import CSIContext, CSIPlugin
from nodeagent.csi.server import serve, stop_serving

PluginFactory = Callable[[CSIContext], CSIPlugin]


def leftover_mounts(path: Path) -> list[str]:
    """Mount points at or below ``path`` in this mount namespace, per findmnt."""
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], check=True, capture_output=True, text=True
    ).stdout
    root = str(path.resolve())
    # findmnt -r escapes spaces as \x20; the test paths have none
    return [p for p in out.split() if p == root or p.startswith(root + "/")]


@contextlib.asynccontextmanager
async def serving(plugin: CSIPlugin, socket: str, purge: bool = True) -> AsyncIterator[CSIClient]:
    server = await serve(plugin, socket)
    try:
        async with CSIClient(socket, timeout=60) as client:
            yield client
    finally:
        await stop_serving(server, plugin, socket, purge=purge)


def context(tmp: Path, **options: object) -> CSIContext:
    labels = {"topology.kubernetes.io/zone": "zone-a", "topology.kubernetes.io/region": "region-1"}
    return CSIContext("node-a", str(tmp / "root"), dict(options), labels)


def run_kit(tmp: Path, factory: PluginFactory, names: Iterable[str], **options: object) -> list[kit.Result]:
    """The checks ``names`` against a fresh plugin; asserts nothing stays mounted below ``tmp``."""

    async def main() -> list[kit.Result]:
        async with serving(factory(context(tmp, **options)), str(tmp / "csi.sock")) as client:
            config = kit.KitConfig(staging_dir=str(tmp / "staging"), target_dir=str(tmp / "target"))
            return await kit.run(client, config, list(names))

    results = asyncio.run(main())
    left = leftover_mounts(tmp)
    assert not left, f"mounts left behind: {left}"
    return results
