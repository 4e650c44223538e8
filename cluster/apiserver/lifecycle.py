"""Background work the API server does for deletion semantics (filled in below)."""

from __future__ import annotations

import asyncio

from cluster.apiserver.registry import Registry
from cluster.apiserver.watchcache import WatchCache


def start_background(registry: Registry, cache: WatchCache) -> list[asyncio.Task[None]]:
    return []
