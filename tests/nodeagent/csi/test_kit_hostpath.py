"""The conformance kit against the hostpath driver, with loop filesystems and with plain
directories, over a real socket with real mounts (root); and against broken drivers, to show the
kit fails them with a message that says what is wrong."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from nodeagent.csi import csi_pb2, kit
from nodeagent.csi.errors import CSIError
from nodeagent.csi.hostpath import HostPathPlugin
from nodeagent.csi.hostpath.records import VolumeRecord
from tests.capabilities import not_root, require
from tests.nodeagent.csi.served import run_kit

ALL = list(kit.CHECKS)
# What each endpoint does not advertise or claim; every other check must pass.
SKIPS = {
    "hostpath-loop": set(),
    "hostpath-plain": {"node.capacity_enforced"},
}


@pytest.fixture(autouse=True)
def _root() -> None:
    require("root", not_root())


@pytest.mark.parametrize("name", ALL)
def test_hostpath_loop(tmp_path: Path, name: str) -> None:
    (result,) = run_kit(tmp_path, HostPathPlugin, [name], enforce_capacity="true")
    want = "skip" if name in SKIPS["hostpath-loop"] else "pass"
    assert (result.status, result.message) == (want, result.message if want == "skip" else "")


@pytest.mark.parametrize("name", ALL)
def test_hostpath_plain(tmp_path: Path, name: str) -> None:
    (result,) = run_kit(tmp_path, HostPathPlugin, [name], enforce_capacity="false")
    want = "skip" if name in SKIPS["hostpath-plain"] else "pass"
    assert (result.status, result.message) == (want, result.message if want == "skip" else "")


# ---- the kit can fail ----


class NotIdempotent(HostPathPlugin):
    """Makes a new volume for every CreateVolume, even under a known name."""

    calls = 0

    async def CreateVolume(self, request: csi_pb2.CreateVolumeRequest) -> csi_pb2.CreateVolumeResponse:
        NotIdempotent.calls += 1
        renamed = csi_pb2.CreateVolumeRequest()
        renamed.CopyFrom(request)
        renamed.name = f"{request.name}-{NotIdempotent.calls}"
        return await super().CreateVolume(renamed)


class DeleteUnknownFails(HostPathPlugin):
    async def DeleteVolume(self, request: csi_pb2.DeleteVolumeRequest) -> csi_pb2.DeleteVolumeResponse:
        if request.volume_id and request.volume_id not in self.records:
            raise CSIError(grpc.StatusCode.NOT_FOUND, f"no volume {request.volume_id}")
        return await super().DeleteVolume(request)


class IgnoresReadonly(HostPathPlugin):
    async def NodePublishVolume(
        self, request: csi_pb2.NodePublishVolumeRequest
    ) -> csi_pb2.NodePublishVolumeResponse:
        writable = csi_pb2.NodePublishVolumeRequest()
        writable.CopyFrom(request)
        writable.readonly = False
        return await super().NodePublishVolume(writable)


class UnpublishKeepsMount(HostPathPlugin):
    """Answers NodeUnpublishVolume OK without unmounting (its stop still cleans up)."""

    async def NodeUnpublishVolume(
        self, request: csi_pb2.NodeUnpublishVolumeRequest
    ) -> csi_pb2.NodeUnpublishVolumeResponse:
        return csi_pb2.NodeUnpublishVolumeResponse()


class ForgetsData(HostPathPlugin):
    """Wipes the volume every time it is staged."""

    async def NodeStageVolume(
        self, request: csi_pb2.NodeStageVolumeRequest
    ) -> csi_pb2.NodeStageVolumeResponse:
        rec: VolumeRecord | None = self.records.get(request.volume_id)
        if rec is not None and not rec.in_use:
            await self.storage.delete(rec)
            await self.storage.create(rec)
        return await super().NodeStageVolume(request)


class NoExpansion(HostPathPlugin):
    """Says the node must expand, then does nothing."""

    async def NodeExpandVolume(
        self, request: csi_pb2.NodeExpandVolumeRequest
    ) -> csi_pb2.NodeExpandVolumeResponse:
        if request.volume_id not in self.records:  # the errors stay right
            return await super().NodeExpandVolume(request)
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=self.records[request.volume_id].capacity_bytes)


@pytest.mark.parametrize(
    ("plugin", "name", "says"),
    [
        pytest.param(
            NotIdempotent, "controller.create.idempotent", "the same name must give the same volume"
        ),
        pytest.param(DeleteUnknownFails, "controller.delete.idempotent", "DeleteVolume failed: NOT_FOUND"),
        pytest.param(IgnoresReadonly, "node.readonly", "published readonly, succeeded"),
        pytest.param(UnpublishKeepsMount, "node.lifecycle", "still visible at"),
        pytest.param(ForgetsData, "node.data_persists", "reads None after staging and publishing again"),
        pytest.param(NoExpansion, "node.expand", "after expanding to"),
    ],
)
def test_kit_fails_a_broken_driver(
    tmp_path: Path, plugin: type[HostPathPlugin], name: str, says: str
) -> None:
    (result,) = run_kit(tmp_path, plugin, [name], enforce_capacity="true")
    assert result.status == "fail"
    assert says in result.message, result.message
