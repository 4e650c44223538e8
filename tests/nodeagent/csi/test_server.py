"""A CSIPlugin behind nodeagent.csi.server, driven by CSIClient over a real unix socket."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from nodeagent.csi import csi_pb2
from nodeagent.csi.client import CSIClient
from nodeagent.csi.errors import CSIError
from nodeagent.csi.plugin import CSIContext, CSIPlugin, PluginLoadError, load_plugin_class, load_volume_plugin
from nodeagent.csi.server import serve, stop_serving


class Tiny(CSIPlugin):
    """Volumes are names in a dict; only a few RPCs exist, one of them has a bug."""

    def __init__(self, ctx: CSIContext) -> None:
        super().__init__(ctx)
        self.volumes: dict[str, int] = {}
        self.started = False
        self.stopped: bool | None = None

    async def start(self) -> None:
        self.started = True

    async def stop(self, purge: bool = False) -> None:
        self.stopped = purge

    async def GetPluginInfo(self, request: csi_pb2.GetPluginInfoRequest) -> csi_pb2.GetPluginInfoResponse:
        return csi_pb2.GetPluginInfoResponse(name="tiny.csi.test", vendor_version="0.1")

    async def Probe(self, request: csi_pb2.ProbeRequest) -> csi_pb2.ProbeResponse:
        return csi_pb2.ProbeResponse()

    async def CreateVolume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        size = request.capacity_range.required_bytes
        if self.volumes.setdefault(request.name, size) != size:
            raise CSIError(
                grpc.StatusCode.ALREADY_EXISTS, f"volume {request.name!r} exists with another size"
            )
        return csi_pb2.CreateVolumeResponse(
            volume=csi_pb2.Volume(volume_id=request.name, capacity_bytes=size, volume_context={"node": "n1"})
        )

    async def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest) -> None:
        # Returning nothing is accepted for an empty response.
        self.volumes.pop(request.volume_id, None)

    async def NodeGetInfo(self, request: csi_pb2.NodeGetInfoRequest) -> csi_pb2.NodeGetInfoResponse:
        raise KeyError("boom")


Body = Callable[[CSIClient, Tiny], Awaitable[Any]]


def run(tmp_path: Path, body: Body) -> Any:
    async def main() -> Any:
        plugin = Tiny(CSIContext("n1", str(tmp_path / "state")))
        socket = str(tmp_path / "csi.sock")
        server = await serve(plugin, socket)
        assert plugin.started
        try:
            async with CSIClient(socket, timeout=10) as csi:
                return await body(csi, plugin)
        finally:
            await stop_serving(server, plugin, socket, purge=True)
            assert plugin.stopped is True
            assert not Path(socket).exists()

    return asyncio.run(main())


def test_round_trip_and_idempotent_create(tmp_path: Path) -> None:
    async def body(csi: CSIClient, plugin: Tiny) -> None:
        info = await csi.wait_ready(timeout=10)
        assert (info.name, info.vendor_version) == ("tiny.csi.test", "0.1")
        cap = csi_pb2.CapacityRange(required_bytes=1 << 20)
        first = await csi.create_volume(name="pvc-1", capacity_range=cap)
        again = await csi.call("CreateVolume", csi_pb2.CreateVolumeRequest(name="pvc-1", capacity_range=cap))
        assert first == again
        assert first.volume.volume_context["node"] == "n1"
        with pytest.raises(CSIError) as err:
            await csi.create_volume(name="pvc-1", capacity_range=csi_pb2.CapacityRange(required_bytes=5))
        assert err.value.code == grpc.StatusCode.ALREADY_EXISTS
        assert err.value.message == "volume 'pvc-1' exists with another size"
        assert isinstance(await csi.delete_volume("pvc-1"), csi_pb2.DeleteVolumeResponse)
        assert plugin.volumes == {}

    run(tmp_path, body)


def test_missing_rpc_is_unimplemented_and_bug_is_internal(tmp_path: Path) -> None:
    async def body(csi: CSIClient, plugin: Tiny) -> None:
        with pytest.raises(CSIError) as err:
            await csi.node_stage_volume(volume_id="v", staging_target_path="/x")
        assert err.value.code == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(CSIError) as err:
            await csi.controller_get_capabilities()
        assert err.value.code == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(CSIError) as err:
            await csi.node_get_info()
        assert err.value.code == grpc.StatusCode.INTERNAL
        assert err.value.message == "KeyError: 'boom'"

    run(tmp_path, body)


def test_bytes_path_as_the_actor_uses_it(tmp_path: Path) -> None:
    async def body(csi: CSIClient, plugin: Tiny) -> None:
        request = csi_pb2.CreateVolumeRequest(name="pvc-2").SerializeToString()
        data = await csi.call_bytes("CreateVolume", request)
        assert csi_pb2.CreateVolumeResponse.FromString(data).volume.volume_id == "pvc-2"

    run(tmp_path, body)


def test_nobody_on_the_socket_is_unavailable(tmp_path: Path) -> None:
    async def main() -> None:
        async with CSIClient(str(tmp_path / "none.sock"), timeout=5) as csi:
            with pytest.raises(CSIError) as err:
                await csi.get_plugin_info()
        assert err.value.code == grpc.StatusCode.UNAVAILABLE
        assert "none.sock is not answering" in err.value.message

    asyncio.run(main())


def test_errors_pickle_and_load_errors() -> None:
    import pickle

    e = pickle.loads(pickle.dumps(CSIError(grpc.StatusCode.NOT_FOUND, "volume 'x' not found")))
    assert (e.code, e.message, str(e)) == (
        grpc.StatusCode.NOT_FOUND,
        "volume 'x' not found",
        "NOT_FOUND: volume 'x' not found",
    )
    assert CSIError.from_code_name("RESOURCE_EXHAUSTED", "full").code == grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(PluginLoadError, match="choose one of hostpath"):
        load_plugin_class("nope")
    with pytest.raises(PluginLoadError, match="not a CSIPlugin subclass"):
        load_plugin_class("nodeagent.csi.errors:CSIError")
    assert load_plugin_class("tests.nodeagent.csi.test_server:Tiny") is Tiny


def test_volume_plugin_kinds() -> None:
    assert load_volume_plugin("socket:/run/csi/driver.sock") is None
    assert load_volume_plugin("tests.nodeagent.csi.test_server:Tiny") is Tiny
    with pytest.raises(PluginLoadError, match="absolute socket path"):
        load_volume_plugin("socket:relative.sock")
    with pytest.raises(PluginLoadError, match="or socket:/path"):
        load_volume_plugin("nfs")
