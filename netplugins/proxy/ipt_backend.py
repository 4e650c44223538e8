"""The iptables backend: applies ``netplugins.proxy.iptables`` renderings with ``iptables-restore``.

Role: the service proxy's data path where nftables is missing. Every ``sync`` writes the whole
rendering in one ``iptables-restore --noflush`` (each iptables table commits atomically): all our
chains are declared (flushed) and rewritten, and chains of ours that are no longer rendered are
removed. Incremental updates are not done — this is the fallback, not the fast path.
The jumps from the built-in chains (nat PREROUTING/OUTPUT/POSTROUTING, filter INPUT/FORWARD/OUTPUT)
are added once, idempotently: only those ``iptables-save`` does not already show.
``close(purge=True)`` removes our jumps and every chain with our prefix (found with
``iptables-save``, so it also cleans what an earlier process left).
``command_prefix`` (e.g. ``ip netns exec NS``) lets tests program a node namespace.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from netplugins.proxy.iptables import IptOptions, chain_prefix, hook_rules, render, restore_script
from netplugins.proxy.model import NodeInfo, ServiceTable

log = logging.getLogger("raykube.proxy")
TABLES = ("nat", "filter")


class IptablesError(RuntimeError):
    """``iptables-restore``/``iptables-save`` failed; the message carries its stderr."""


class IptablesBackend:
    """One node's chains; ``sync`` and ``close`` must not run concurrently (the proxier serializes)."""

    def __init__(self, options: IptOptions, *, command_prefix: Sequence[str] = ()) -> None:
        self.options = options
        self.command_prefix = tuple(command_prefix)
        self.syncs = 0
        self.last_script_lines = 0
        self.last_error = ""

    async def sync(self, table: ServiceTable, node: NodeInfo) -> None:
        rendering = render(table, node, self.options)
        saved = {t: await self._save(t) for t in TABLES}
        stale = {t: _our_chains(saved[t], self.options.table) for t in TABLES}
        await self._restore(restore_script(rendering, stale))
        hooks = _missing_hooks(saved, self.options.table)
        if hooks:
            await self._restore(hooks)
        self.syncs += 1

    async def close(self, purge: bool) -> None:
        if not purge:
            return
        prefix = chain_prefix(self.options.table)
        out = []
        for t in TABLES:
            saved = await self._save(t)
            jumps = [
                "-D" + line[2:]
                for line in saved.splitlines()
                if line.startswith("-A ")
                and f"-j {prefix}" in line
                and not line.split()[1].startswith(prefix)
            ]
            chains = _our_chains(saved, self.options.table)
            decl = [f":{c} - [0:0]" for c in chains]
            out.append("\n".join([f"*{t}", *decl, *jumps, *(f"-X {c}" for c in chains), "COMMIT"]) + "\n")
        await self._restore("".join(out))

    def status(self) -> dict[str, Any]:
        return {
            "backend": "iptables",
            "chain_prefix": chain_prefix(self.options.table),
            "syncs": self.syncs,
            "last_script_lines": self.last_script_lines,
            "last_error": self.last_error,
        }

    async def _save(self, table: str) -> str:
        return await self._run(["iptables-save", "-t", table], "")

    async def _restore(self, script: str) -> None:
        self.last_script_lines = script.count("\n")
        await self._run(["iptables-restore", "--noflush"], script)

    async def _run(self, cmd: list[str], stdin: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            *self.command_prefix,
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate(stdin.encode())
        if proc.returncode != 0:
            self.last_error = err.decode(errors="replace").strip()[-2000:]
            raise IptablesError(f"{cmd[0]}: {self.last_error}")
        self.last_error = ""
        return out.decode()


def _our_chains(saved: str, table: str) -> list[str]:
    """Our chains in an ``iptables-save`` listing."""
    prefix = f":{chain_prefix(table)}"
    return [line[1:].split()[0] for line in saved.splitlines() if line.startswith(prefix)]


def _missing_hooks(saved: dict[str, str], table: str) -> str:
    """A restore input adding the jumps from built-in chains that ``saved`` lacks (empty: none)."""
    out = []
    for t, hooks in hook_rules(table).items():
        lines = saved[t].splitlines()
        add = [
            f"-A {chain} {spec}"
            for chain, spec in hooks
            if not any(x.startswith(f"-A {chain} ") and x.endswith(spec.split()[-1]) for x in lines)
        ]
        if add:
            out.append("\n".join([f"*{t}", *add, "COMMIT"]) + "\n")
    return "".join(out)
