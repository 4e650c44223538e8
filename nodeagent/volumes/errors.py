"""The one error the node agent's volume code raises: what the pod's ``FailedMount`` event says.

``VolumeError(reason, message)``: ``reason`` is the event reason (``FailedMount``,
``FailedAttachVolume``, ``FailedMapVolume``...), ``message`` the text a user reads in
``kubectl describe pod``, written to say what is wrong and what to do. The pod worker records it as a
Warning event on the pod, leaves the containers waiting (``ContainerCreating``) and retries later.
"""

from __future__ import annotations

FAILED_MOUNT = "FailedMount"
FAILED_ATTACH = "FailedAttachVolume"


class VolumeError(Exception):
    def __init__(self, message: str, reason: str = FAILED_MOUNT) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
