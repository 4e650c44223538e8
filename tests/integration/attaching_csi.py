"""A volume plugin that needs attaching, for the attach/detach end-to-end test: the example tmpfs
driver (examples/tmpfs_csi.py) plus the controller's PUBLISH_UNPUBLISH_VOLUME capability.

``ControllerPublishVolume`` records the attachment as a file ``<root>/attached/<volume id>`` holding the
node id (and answers a publish context naming it); ``ControllerUnpublishVolume`` removes the file. The
test reads those files to see what the attacher did on the node, as one would look at a cloud
provider's disk attachments.
"""

from __future__ import annotations

import grpc

from examples.tmpfs_csi import TmpfsPlugin
from nodeagent.csi import csi_pb2
from nodeagent.csi.errors import CSIError

ATTACHED_DIR = "attached"


class AttachingTmpfs(TmpfsPlugin):
    """TmpfsPlugin whose volumes must be ControllerPublished before a node stages them."""

    async def ControllerGetCapabilities(
        self, request: csi_pb2.ControllerGetCapabilitiesRequest
    ) -> csi_pb2.ControllerGetCapabilitiesResponse:
        response = await super().ControllerGetCapabilities(request)
        rpc = csi_pb2.ControllerServiceCapability.RPC
        response.capabilities.add(rpc=rpc(type=rpc.PUBLISH_UNPUBLISH_VOLUME))
        return response

    async def ControllerPublishVolume(
        self, request: csi_pb2.ControllerPublishVolumeRequest
    ) -> csi_pb2.ControllerPublishVolumeResponse:
        if self._load(request.volume_id) is None:
            raise CSIError(grpc.StatusCode.NOT_FOUND, f"volume {request.volume_id!r} not found")
        attached = self.root / ATTACHED_DIR
        attached.mkdir(parents=True, exist_ok=True)
        (attached / request.volume_id).write_text(request.node_id)
        return csi_pb2.ControllerPublishVolumeResponse(publish_context={"attached-to": request.node_id})

    async def ControllerUnpublishVolume(
        self, request: csi_pb2.ControllerUnpublishVolumeRequest
    ) -> csi_pb2.ControllerUnpublishVolumeResponse:
        (self.root / ATTACHED_DIR / request.volume_id).unlink(missing_ok=True)
        return csi_pb2.ControllerUnpublishVolumeResponse()
