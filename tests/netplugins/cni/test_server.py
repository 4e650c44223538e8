"""A NetworkPlugin behind the gRPC server, driven by CNIClient over a real unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from netplugins.cni.client import CNIClient
from netplugins.cni.plugin import NetworkPlugin, PluginContext, PluginLoadError, load_plugin
from netplugins.cni.server import serve, status_for
from netplugins.cni.types import (
    Attachment,
    CNIError,
    IOFailure,
    IPConfig,
    NetRequest,
    PluginNotAvailable,
    Result,
    TryAgainLater,
    UnknownContainer,
)


class Recorder(NetworkPlugin):
    """Hands out 10.0.0.N, records every call, fails on demand."""

    NAME: ClassVar[str] = "recorder"

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.calls: list[tuple[str, Any]] = []
        self.attached: dict[Attachment, str] = {}
        self.ready = True
        self.in_add: dict[str, int] = {}  # ADDs in flight, per container and overall
        self.max_in_add: dict[str, int] = {}
        self.overall = self.max_overall = 0
        self.stopped: bool | None = None

    async def add(self, req: NetRequest) -> Result:
        self.calls.append(("add", req))
        if req.args.get("FAIL") == "bug":
            raise KeyError("boom")
        if req.args.get("FAIL") == "custom":
            raise CNIError(117, "hostPort 80/TCP is already used by pod ns/a")
        cid = req.container_id
        self.in_add[cid] = self.in_add.get(cid, 0) + 1
        self.overall += 1
        self.max_in_add[cid] = max(self.max_in_add.get(cid, 0), self.in_add[cid])
        self.max_overall = max(self.max_overall, self.overall)
        await asyncio.sleep(0.02)
        self.in_add[cid] -= 1
        self.overall -= 1
        ip = f"10.0.0.{len(self.attached) + 2}"
        self.attached[req.attachment] = ip
        return Result(ips=(IPConfig(f"{ip}/24", "10.0.0.1"),))

    async def delete(self, req: NetRequest) -> None:
        self.calls.append(("del", req))
        self.attached.pop(req.attachment, None)

    async def check(self, req: NetRequest) -> None:
        self.calls.append(("check", req))
        if req.attachment not in self.attached:
            raise UnknownContainer(f"{req.container_id} is not attached")

    async def status(self) -> None:
        if not self.ready:
            raise PluginNotAvailable("node has no podCIDR yet")

    async def gc(self, valid: list[Attachment]) -> None:
        self.calls.append(("gc", valid))
        for a in list(self.attached):
            if a not in valid:
                del self.attached[a]

    async def stop(self, purge: bool = False) -> None:
        self.stopped = purge


Body = Callable[[CNIClient, Recorder], Awaitable[Any]]


def run(tmp_path: Path, body: Body) -> Any:
    async def main() -> Any:
        plugin = Recorder(PluginContext("node-a", str(tmp_path / "state")))
        server = await serve(plugin, str(tmp_path / "cni.sock"))
        try:
            async with CNIClient(server.socket_path, timeout=10) as cni:
                return await body(cni, plugin)
        finally:
            await server.stop(purge=True)
            assert plugin.stopped is True

    return asyncio.run(main())


def req(cid: str, **args: str) -> NetRequest:
    return NetRequest(cid, f"/proc/1/ns/{cid}", args={"K8S_POD_NAME": cid, **args})


def test_add_check_del_gc_round_trip(tmp_path: Path) -> None:
    async def body(cni: CNIClient, plugin: Recorder) -> None:
        first = await cni.add(req("a"))
        second = await cni.add(req("b"))
        assert first.pod_ips() == ["10.0.0.2"] and second.pod_ips() == ["10.0.0.3"]
        await cni.check(NetRequest("a", "/x", prev_result=first))
        check = next(c for c in plugin.calls if c[0] == "check")[1]
        assert check.prev_result == first  # prevResult crosses the wire intact
        await cni.delete(req("a"))
        with pytest.raises(UnknownContainer) as err:
            await cni.check(req("a"))
        assert err.value.code == 3 and "not attached" in err.value.msg
        await cni.gc([Attachment("c")])
        assert plugin.attached == {}
        info = await cni.version()
        assert info.plugin == "recorder" and not info.node_network and "1.1.0" in info.supported_versions

    run(tmp_path, body)


def test_status_and_error_codes_reach_the_caller(tmp_path: Path) -> None:
    async def body(cni: CNIClient, plugin: Recorder) -> None:
        await cni.status()
        plugin.ready = False
        with pytest.raises(PluginNotAvailable, match="no podCIDR"):
            await cni.status()
        with pytest.raises(CNIError) as custom:
            await cni.add(req("x", FAIL="custom"))
        assert type(custom.value) is CNIError and custom.value.code == 117
        with pytest.raises(IOFailure, match="KeyError"):  # a plugin bug is code 5, not a hang
            await cni.add(req("y", FAIL="bug"))

    run(tmp_path, body)


def test_calls_for_one_container_are_serialised(tmp_path: Path) -> None:
    async def body(cni: CNIClient, plugin: Recorder) -> None:
        await asyncio.gather(
            *(cni.add(req("same")) for _ in range(4)), *(cni.add(req(f"o{i}")) for i in range(4))
        )
        assert plugin.max_in_add["same"] == 1
        assert plugin.max_overall > 1  # different containers overlap

    run(tmp_path, body)


def test_a_missing_plugin_is_not_available(tmp_path: Path) -> None:
    async def main() -> None:
        async with CNIClient(str(tmp_path / "nobody.sock"), timeout=2) as cni:
            with pytest.raises((PluginNotAvailable, TryAgainLater)):
                await cni.status()

    asyncio.run(main())


def test_status_codes_and_plugin_loading() -> None:
    assert status_for(3).name == "NOT_FOUND" and status_for(50).name == "UNAVAILABLE"
    assert status_for(120).name == "UNKNOWN"
    assert load_plugin("tests.netplugins.cni.test_server:Recorder") is Recorder
    with pytest.raises(PluginLoadError, match="choose one of bridge, host"):
        load_plugin("nonsense")
    with pytest.raises(PluginLoadError, match="cannot import"):
        load_plugin("no_such_pkg.mod:Thing")
    with pytest.raises(PluginLoadError, match="not a NetworkPlugin"):
        load_plugin("netplugins.cni.types:Result")
