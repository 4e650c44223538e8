"""RemoteCSI, the controllers' caller of a node's plugin, over a fake transport (no Ray here)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError
from nodeagent.csi.remote import RemoteCSI


class Wrapped(Exception):
    """What Ray raises for an actor method's exception: the original is ``.cause``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def test_messages_cross_as_bytes_and_come_back_typed() -> None:
    seen: list[tuple[str, str, bytes]] = []

    async def send(node: str, method: str, data: bytes) -> bytes:
        seen.append((node, method, data))
        name = csi_pb2.CreateVolumeRequest.FromString(data).name
        return csi_pb2.CreateVolumeResponse(volume=csi_pb2.Volume(volume_id=f"id-{name}")).SerializeToString()

    csi = RemoteCSI(send)
    response = asyncio.run(csi("n1", "CreateVolume", csi_pb2.CreateVolumeRequest(name="pvc-1")))
    assert isinstance(response, csi_pb2.CreateVolumeResponse)
    assert response.volume.volume_id == "id-pvc-1"
    assert seen == [("n1", "CreateVolume", csi_pb2.CreateVolumeRequest(name="pvc-1").SerializeToString())]
    with pytest.raises(TypeError, match=r"takes a csi_pb2\.DeleteVolumeRequest"):
        asyncio.run(csi("n1", "DeleteVolume", csi_pb2.CreateVolumeRequest()))


@pytest.mark.parametrize(
    ("raised", "code", "message"),
    [
        (
            Wrapped(CSIError(grpc.StatusCode.RESOURCE_EXHAUSTED, "node full")),
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "node full",
        ),
        (CSIError(grpc.StatusCode.NOT_FOUND, "gone"), grpc.StatusCode.NOT_FOUND, "gone"),
        (
            RuntimeError("actor died"),
            grpc.StatusCode.UNAVAILABLE,
            "volume plugin of node 'n1' did not answer DeleteVolume: RuntimeError: actor died",
        ),
    ],
)
def test_errors_become_csi_errors(raised: Exception, code: grpc.StatusCode, message: str) -> None:
    async def send(node: str, method: str, data: bytes) -> bytes:
        raise raised

    with pytest.raises(CSIError) as err:
        asyncio.run(RemoteCSI(send)("n1", "DeleteVolume", csi_pb2.DeleteVolumeRequest(volume_id="v")))
    assert type(err.value) is CSIError
    assert (err.value.code, err.value.message) == (code, message)
