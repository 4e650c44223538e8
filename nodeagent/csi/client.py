"""Async client of a CSI socket: a Python plugin's (``nodeagent.csi.server``) or a real driver's.

``CSIClient(socket_path)`` opens one grpc.aio channel to ``unix://<socket_path>``. ``call(method,
request)`` sends any RPC by its spec name; the snake_case methods are the common calls with keyword
fields (``await csi.create_volume(name="pvc-1", capacity_range=...)``). A failed call raises
``CSIError`` with the status the driver sent (UNAVAILABLE when nothing answers on the socket,
DEADLINE_EXCEEDED after ``timeout``).

Invariants: safe to use concurrently from one event loop; ``close()`` is idempotent; never retries
(CSI calls are idempotent, so the caller may).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

import grpc
import grpc.aio

from nodeagent.csi import csi_pb2, rpc
from nodeagent.csi.errors import CSIError

DEFAULT_TIMEOUT = 60.0


def error_from_rpc(e: grpc.aio.AioRpcError, socket_path: str) -> CSIError:
    code = e.code()
    details = e.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE:
        details = f"CSI plugin at {socket_path} is not answering: {details}"
    return CSIError(code, details)


class CSIClient:
    """See the module docstring. Use as ``async with CSIClient(path) as csi: ...``."""

    def __init__(self, socket_path: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._channel: grpc.aio.Channel | None = grpc.aio.insecure_channel(f"unix://{socket_path}")
        self._calls: dict[str, Any] = {}

    async def __aenter__(self) -> CSIClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    async def call(self, method: str, request: Any = None, timeout: float | None = None) -> Any:
        """RPC ``method`` (``"CreateVolume"``) with ``request`` (its csi_pb2 request; None: empty)."""
        m = rpc.method(method)
        if self._channel is None:
            raise CSIError(grpc.StatusCode.CANCELLED, f"CSI client of {self.socket_path} is closed")
        stub = self._calls.get(method)
        if stub is None:
            stub = self._channel.unary_unary(
                m.path,
                request_serializer=m.request.SerializeToString,
                response_deserializer=m.response.FromString,
            )
            self._calls[method] = stub
        try:
            return await stub(
                request if request is not None else m.request(), timeout=timeout or self.timeout
            )
        except grpc.aio.AioRpcError as e:
            raise error_from_rpc(e, self.socket_path) from None

    async def call_bytes(self, method: str, request: bytes, timeout: float | None = None) -> bytes:
        """``call`` with a serialized request, returning the serialized response (the actor's path)."""
        response = await self.call(method, rpc.parse_request(method, request), timeout)
        data: bytes = response.SerializeToString()
        return data

    async def wait_ready(self, timeout: float = 30.0) -> csi_pb2.GetPluginInfoResponse:
        """Wait until the socket answers GetPluginInfo and Probe says ready (or leaves it unset)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                info = await self.get_plugin_info(timeout=min(5.0, max(0.1, deadline - loop.time())))
                try:
                    probe = await self.probe(timeout=min(5.0, max(0.1, deadline - loop.time())))
                except CSIError as e:
                    if e.code != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                else:
                    if probe.HasField("ready") and not probe.ready.value:
                        raise CSIError(grpc.StatusCode.UNAVAILABLE, f"CSI plugin {info.name} says not ready")
                return info
            except CSIError:
                if loop.time() >= deadline:
                    raise
                await asyncio.sleep(0.1)

    # ---- Identity ----

    async def get_plugin_info(self, timeout: float | None = None) -> csi_pb2.GetPluginInfoResponse:
        response: csi_pb2.GetPluginInfoResponse = await self.call("GetPluginInfo", None, timeout)
        return response

    async def get_plugin_capabilities(
        self, timeout: float | None = None
    ) -> csi_pb2.GetPluginCapabilitiesResponse:
        response: csi_pb2.GetPluginCapabilitiesResponse = await self.call(
            "GetPluginCapabilities", None, timeout
        )
        return response

    async def probe(self, timeout: float | None = None) -> csi_pb2.ProbeResponse:
        response: csi_pb2.ProbeResponse = await self.call("Probe", None, timeout)
        return response

    # ---- Controller ----

    async def create_volume(self, **fields: Any) -> csi_pb2.CreateVolumeResponse:
        response: csi_pb2.CreateVolumeResponse = await self.call(
            "CreateVolume", csi_pb2.CreateVolumeRequest(**fields)
        )
        return response

    async def delete_volume(self, volume_id: str, **fields: Any) -> csi_pb2.DeleteVolumeResponse:
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id, **fields)
        response: csi_pb2.DeleteVolumeResponse = await self.call("DeleteVolume", request)
        return response

    async def controller_publish_volume(self, **fields: Any) -> csi_pb2.ControllerPublishVolumeResponse:
        request = csi_pb2.ControllerPublishVolumeRequest(**fields)
        response: csi_pb2.ControllerPublishVolumeResponse = await self.call(
            "ControllerPublishVolume", request
        )
        return response

    async def controller_unpublish_volume(self, **fields: Any) -> csi_pb2.ControllerUnpublishVolumeResponse:
        request = csi_pb2.ControllerUnpublishVolumeRequest(**fields)
        response: csi_pb2.ControllerUnpublishVolumeResponse = await self.call(
            "ControllerUnpublishVolume", request
        )
        return response

    async def validate_volume_capabilities(self, **fields: Any) -> csi_pb2.ValidateVolumeCapabilitiesResponse:
        request = csi_pb2.ValidateVolumeCapabilitiesRequest(**fields)
        response: csi_pb2.ValidateVolumeCapabilitiesResponse = await self.call(
            "ValidateVolumeCapabilities", request
        )
        return response

    async def list_volumes(self, **fields: Any) -> csi_pb2.ListVolumesResponse:
        response: csi_pb2.ListVolumesResponse = await self.call(
            "ListVolumes", csi_pb2.ListVolumesRequest(**fields)
        )
        return response

    async def get_capacity(self, **fields: Any) -> csi_pb2.GetCapacityResponse:
        response: csi_pb2.GetCapacityResponse = await self.call(
            "GetCapacity", csi_pb2.GetCapacityRequest(**fields)
        )
        return response

    async def controller_get_capabilities(self) -> csi_pb2.ControllerGetCapabilitiesResponse:
        response: csi_pb2.ControllerGetCapabilitiesResponse = await self.call("ControllerGetCapabilities")
        return response

    async def controller_expand_volume(self, **fields: Any) -> csi_pb2.ControllerExpandVolumeResponse:
        request = csi_pb2.ControllerExpandVolumeRequest(**fields)
        response: csi_pb2.ControllerExpandVolumeResponse = await self.call("ControllerExpandVolume", request)
        return response

    # ---- Node ----

    async def node_stage_volume(self, **fields: Any) -> csi_pb2.NodeStageVolumeResponse:
        request = csi_pb2.NodeStageVolumeRequest(**fields)
        response: csi_pb2.NodeStageVolumeResponse = await self.call("NodeStageVolume", request)
        return response

    async def node_unstage_volume(
        self, volume_id: str, staging_target_path: str
    ) -> csi_pb2.NodeUnstageVolumeResponse:
        request = csi_pb2.NodeUnstageVolumeRequest(
            volume_id=volume_id, staging_target_path=staging_target_path
        )
        response: csi_pb2.NodeUnstageVolumeResponse = await self.call("NodeUnstageVolume", request)
        return response

    async def node_publish_volume(self, **fields: Any) -> csi_pb2.NodePublishVolumeResponse:
        request = csi_pb2.NodePublishVolumeRequest(**fields)
        response: csi_pb2.NodePublishVolumeResponse = await self.call("NodePublishVolume", request)
        return response

    async def node_unpublish_volume(
        self, volume_id: str, target_path: str
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        request = csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target_path)
        response: csi_pb2.NodeUnpublishVolumeResponse = await self.call("NodeUnpublishVolume", request)
        return response

    async def node_get_volume_stats(
        self, volume_id: str, volume_path: str
    ) -> csi_pb2.NodeGetVolumeStatsResponse:
        request = csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=volume_path)
        response: csi_pb2.NodeGetVolumeStatsResponse = await self.call("NodeGetVolumeStats", request)
        return response

    async def node_expand_volume(self, **fields: Any) -> csi_pb2.NodeExpandVolumeResponse:
        request = csi_pb2.NodeExpandVolumeRequest(**fields)
        response: csi_pb2.NodeExpandVolumeResponse = await self.call("NodeExpandVolume", request)
        return response

    async def node_get_capabilities(self) -> csi_pb2.NodeGetCapabilitiesResponse:
        response: csi_pb2.NodeGetCapabilitiesResponse = await self.call("NodeGetCapabilities")
        return response

    async def node_get_info(self) -> csi_pb2.NodeGetInfoResponse:
        response: csi_pb2.NodeGetInfoResponse = await self.call("NodeGetInfo")
        return response
