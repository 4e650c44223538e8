"""The seam between the proxier and a data path: what every proxy backend implements.

The proxier calls ``sync`` with the whole current ``ServiceTable`` after every (coalesced) change,
never concurrently; a backend makes its data path match it (incrementally if it can) and raises if
it could not, in which case the proxier calls ``sync`` again later with the then-current table.
``close(purge)`` stops it; with ``purge`` the backend removes everything it programmed.
A backend may also offer ``status() -> dict`` (shown by the proxy actor's ``status()``); optional.
"""

from __future__ import annotations

from typing import Protocol

from netplugins.proxy.model import NodeInfo, ServiceTable


class ProxyBackend(Protocol):
    async def sync(self, table: ServiceTable, node: NodeInfo) -> None: ...

    async def close(self, purge: bool) -> None: ...
