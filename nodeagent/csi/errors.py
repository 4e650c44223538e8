"""The one error type of the CSI layer: a gRPC status code and a message, as the spec defines them.

A Python plugin raises ``CSIError(grpc.StatusCode.NOT_FOUND, "volume 'x' not found")``; the server
sends exactly that status; the client, the volume plugin actor and the controllers' CSI caller all
hand the same ``CSIError`` back to whoever called. The spec gives each code a meaning per RPC (e.g.
``ALREADY_EXISTS`` from CreateVolume: same name, incompatible size), so callers branch on ``.code``.
"""

from __future__ import annotations

import grpc


class CSIError(Exception):
    """A CSI call failed with ``code`` (``grpc.StatusCode``) and ``message``. Picklable, so it crosses
    Ray unchanged."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_code_name(cls, name: str, message: str) -> CSIError:
        """From a status code's name (``"NOT_FOUND"``); an unknown name becomes UNKNOWN."""
        code = getattr(grpc.StatusCode, name, None)
        if not isinstance(code, grpc.StatusCode):
            return cls(grpc.StatusCode.UNKNOWN, f"{name}: {message}")
        return cls(code, message)
