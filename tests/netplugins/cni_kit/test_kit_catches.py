"""The kit fails plugins that break the contract: one faulty fake per case, each served for real.

``Dummies`` is a correct small plugin (an ``eth0`` with the next free address of a pool of
``CAPACITY`` in the pod's netns); each subclass breaks one rule, and the kit's matching case must
report FAIL with a message that says what went wrong, while the correct one passes it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from typing import ClassVar

import pytest

from netplugins.cni.kit import FAIL, PASS, Kit, run_case, session
from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.server import serve
from netplugins.cni.types import Attachment, IPConfig, NetRequest, Result, UnknownContainer
from tests.capabilities import require
from tests.netplugins.cni_kit.conftest import root_missing

CAPACITY = 3


class Dummies(NetworkPlugin):
    NAME: ClassVar[str] = "dummies"

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.taken: dict[Attachment, str] = {}

    def _free(self) -> str:
        free = [f"192.0.2.{i}" for i in range(2, 2 + CAPACITY) if f"192.0.2.{i}" not in self.taken.values()]
        if not free:
            raise UnknownContainer("pool exhausted")  # any CNI error will do for the kit
        return free[0]

    async def add(self, req: NetRequest) -> Result:
        if not os.path.exists(req.netns):
            raise UnknownContainer(f"no netns {req.netns}")
        ip = self._free()
        name = os.path.basename(req.netns)
        # A veth pair with both ends inside (this kernel has no dummy links).
        link = ["link", "add", req.ifname, "type", "veth", "peer", "name", "rkpeer"]
        subprocess.run(["ip", "-n", name, *link], check=True)
        subprocess.run(["ip", "-n", name, "addr", "add", f"{ip}/24", "dev", req.ifname], check=True)
        self.taken[req.attachment] = ip
        return Result(ips=(IPConfig(f"{ip}/24"),))

    async def delete(self, req: NetRequest) -> None:
        self.taken.pop(req.attachment, None)
        if os.path.exists(req.netns):
            subprocess.run(["ip", "-n", os.path.basename(req.netns), "link", "del", req.ifname], check=False)

    async def check(self, req: NetRequest) -> None:
        if req.attachment not in self.taken:
            raise UnknownContainer(f"unknown {req.container_id}")

    async def gc(self, valid: list[Attachment]) -> None:
        self.taken = {a: ip for a, ip in self.taken.items() if a in valid}


class NoInterface(Dummies):
    async def add(self, req: NetRequest) -> Result:
        ip = self._free()
        self.taken[req.attachment] = ip
        return Result(ips=(IPConfig(f"{ip}/24"),))


class SameAddress(Dummies):
    def _free(self) -> str:
        return "192.0.2.2"


class DelNotIdempotent(Dummies):
    async def delete(self, req: NetRequest) -> None:
        if req.attachment not in self.taken:
            raise UnknownContainer(f"unknown {req.container_id}")
        await super().delete(req)


class CheckAlwaysPasses(Dummies):
    async def check(self, req: NetRequest) -> None:
        return None


class HangsWithoutNetns(Dummies):
    async def add(self, req: NetRequest) -> Result:
        if not os.path.exists(req.netns):
            await asyncio.Event().wait()
        return await super().add(req)


class GcKeepsEverything(Dummies):
    async def gc(self, valid: list[Attachment]) -> None:
        return None


class GcDropsValid(Dummies):
    async def gc(self, valid: list[Attachment]) -> None:
        self.taken = {}


class NeverExhausted(Dummies):
    def _free(self) -> str:
        return f"192.0.2.{len(self.taken) + 2}"


CASES = [
    pytest.param(NoInterface, "add", "not in netns", id="add-no-interface"),
    pytest.param(SameAddress, "parallel_adds", "duplicate IPs", id="parallel-same-address"),
    pytest.param(DelNotIdempotent, "del_twice", "unknown", id="del-twice"),
    pytest.param(
        CheckAlwaysPasses, "del_then_check_fails", "CHECK after DEL succeeded", id="check-after-del"
    ),
    pytest.param(HangsWithoutNetns, "add_gone_netns", "hung", id="hang-on-gone-netns"),
    pytest.param(GcKeepsEverything, "gc", "pool exhausted", id="gc-releases-nothing"),
    pytest.param(GcDropsValid, "gc", "unknown", id="gc-drops-a-valid-attachment"),
    pytest.param(NeverExhausted, "exhaustion", "succeeded; a CNI error was expected", id="never-exhausted"),
]


async def _case(plugin_cls: type[Dummies], case: str, tmp: Path) -> tuple[str, str, list[str]]:
    server = await serve(plugin_cls(PluginContext("rkkit", str(tmp))), str(tmp / "cni.sock"))
    try:
        kit = Kit(server.socket_path, capacity=CAPACITY, parallel=CAPACITY, timeout=2.0)
        async with session(kit):
            result = await run_case(kit, case)
        return result.outcome, result.detail, kit.leftover_netns()
    finally:
        await server.stop()


@pytest.mark.parametrize(("plugin_cls", "case", "says"), CASES)
def test_kit_fails_a_broken_plugin(plugin_cls: type[Dummies], case: str, says: str, tmp_path: Path) -> None:
    require("root", root_missing())
    outcome, detail, left = asyncio.run(_case(plugin_cls, case, tmp_path))
    assert (outcome, left) == (FAIL, [])
    assert says in detail


@pytest.mark.parametrize("case", sorted({p.values[1] for p in CASES}))
def test_the_correct_plugin_passes(case: str, tmp_path: Path) -> None:
    require("root", root_missing())
    outcome, detail, left = asyncio.run(_case(Dummies, case, tmp_path))
    assert (outcome, detail, left) == (PASS, "", [])
