"""The nftables backend: applies ``netplugins.proxy.nftables`` renderings with ``nft -f -``.

Role: keeps the per-Service-port rules it last applied; ``sync`` sends only the difference (one
``nft`` transaction, so a change is all-or-nothing); the first sync, and any sync after a failed
one, atomically replaces the whole table instead. ``close(purge=True)`` deletes the table.

Decisions:
- ``route_localnet`` is not set: NodePorts answer on the node's addresses, not on 127.0.0.1
  (the ``services`` chain excludes 127.0.0.0/8, as kube-proxy's nftables mode does), so no sysctl of
  the host changes.
- Pods on one bridge reaching each other through a ClusterIP need the replies to pass conntrack
  (``br_netfilter`` with ``bridge-nf-call-iptables=1``, which the bridge plugin's nodes have); the
  backend does not change that setting.
- ``command_prefix`` (e.g. ``ip netns exec NS``) lets tests program a node namespace.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from netplugins.proxy.model import NodeInfo, ServicePortName, ServiceTable
from netplugins.proxy.nftables import NftOptions, ServiceRules, full_ruleset, incremental_ruleset, table_rules

log = logging.getLogger("raykube.proxy")


class NftError(RuntimeError):
    """``nft`` refused a script; the message carries its stderr."""


class NftablesBackend:
    """One node's table; ``sync`` and ``close`` must not run concurrently (the proxier serializes)."""

    def __init__(self, options: NftOptions, *, command_prefix: Sequence[str] = ()) -> None:
        self.options = options
        self.command_prefix = tuple(command_prefix)
        self._applied: dict[ServicePortName, ServiceRules] | None = None  # None: rebuild next time
        self._applied_from: tuple[ServiceTable, NodeInfo] | None = None  # the inputs of _applied
        self.full_syncs = 0
        self.partial_syncs = 0
        self.last_script_lines = 0
        self.last_error = ""

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        reuse = None
        if self._applied is not None and self._applied_from is not None and self._applied_from[1] == node:
            reuse = (self._applied_from[0], self._applied)
        new = table_rules(table, node, self.options, reuse)
        if self._applied is not None:
            script = incremental_ruleset(self._applied, new, self.options)
            try:
                await self._apply(script)
                self.partial_syncs += 1
                self._applied, self._applied_from = new, (dict(table), node)
                return
            except NftError as e:
                log.warning("incremental nft update failed, rebuilding the table: %s", e)
                self._applied = self._applied_from = None
        await self._apply(full_ruleset(new, self.options))
        self.full_syncs += 1
        self._applied, self._applied_from = new, (dict(table), node)

    async def close(self, purge: bool) -> None:
        if purge:
            t = f"ip {self.options.table}"
            await self._apply(f"add table {t}\ndelete table {t}\n")
        self._applied = self._applied_from = None

    def status(self) -> dict[str, Any]:
        return {
            "backend": "nftables",
            "table": f"ip {self.options.table}",
            "full_syncs": self.full_syncs,
            "partial_syncs": self.partial_syncs,
            "last_script_lines": self.last_script_lines,
            "last_error": self.last_error,
        }

    async def _apply(self, script: str) -> None:
        if not script:
            return
        self.last_script_lines = script.count("\n")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *self.command_prefix,
            "nft",
            "-f",
            "-",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await proc.communicate(script.encode())
        if proc.returncode != 0:
            self.last_error = err.decode(errors="replace").strip()[-2000:]
            raise NftError(self.last_error)
        self.last_error = ""
        log.debug("nft applied %d lines in %.3fs", self.last_script_lines, time.monotonic() - started)
