"""A node's CSI plugin called from anywhere in the cluster: messages in, messages out, CSIError on failure.

``RemoteCSI(send)`` is a ``ControllerOptions.csi`` caller (``await csi(node, "CreateVolume",
request) -> response``) over a transport ``send(node, method, request_bytes) -> response_bytes``;
the controller manager's Ray glue gives it one that calls the node's ``csi-<node>`` actor
(``nodeagent.csi.actor.csi_caller``). Here: the message types, and turning whatever the transport
raised into a ``CSIError`` the volume controllers branch on: the plugin's own error as it was sent
(Ray wraps it; ``.cause`` is the original), anything else (no such actor, a dead node) as
UNAVAILABLE, which CSI callers treat as "try again later".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from nodeagent.csi import rpc
from nodeagent.csi.errors import CSIError

Send = Callable[[str, str, bytes], Awaitable[bytes]]


def as_csi_error(e: BaseException, node: str, method: str) -> CSIError:
    """The CSIError a failed remote call stands for."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, CSIError):
        return CSIError(cause.code, cause.message)
    if isinstance(e, CSIError):
        return CSIError(e.code, e.message)
    return CSIError(
        grpc.StatusCode.UNAVAILABLE,
        f"volume plugin of node {node!r} did not answer {method}: {type(e).__name__}: {e}",
    )


class RemoteCSI:
    """See the module docstring."""

    def __init__(self, send: Send) -> None:
        self.send = send

    async def __call__(self, node: str, method: str, request: Any) -> Any:
        m = rpc.method(method)
        if not isinstance(request, m.request):
            raise TypeError(f"{method} takes a csi_pb2.{m.request.__name__}, not {type(request).__name__}")
        try:
            data = await self.send(node, method, request.SerializeToString())
        except Exception as e:
            raise as_csi_error(e, node, method) from None
        return m.response.FromString(data)
