"""Errors of the client: :class:`ApiError` built from a Kubernetes ``Status``, and
:class:`TransportError` for failures below HTTP.

Invariant: every failed call of :class:`cluster.client.rest.ApiClient` raises an ``ApiError``;
``status`` is the HTTP code (0 for a transport failure) and ``body`` the Status dict when there was one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed API call, built from the Kubernetes ``Status`` the server returned."""

    def __init__(self, status: int, reason: str, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.body: dict[str, Any] = body if body is not None else {}

    @classmethod
    def from_status(cls, status: Mapping[str, Any], http_status: int | None = None) -> ApiError:
        """From a ``Status`` dict (an error reply or a watch ``ERROR`` event's object)."""
        code = int(status.get("code") or http_status or 500)
        reason = status.get("reason") or _REASONS.get(code, "Unknown")
        return cls(code, reason, status.get("message") or "", dict(status))

    @classmethod
    def from_response(cls, http_status: int, raw: bytes) -> ApiError:
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        if isinstance(body, dict) and body.get("kind") == "Status":
            return cls.from_status(body, http_status)
        message = raw.decode("utf-8", "replace").strip()[:1000] or f"HTTP {http_status}"
        return cls(http_status, _REASONS.get(http_status, "Unknown"), message, {})

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def already_exists(self) -> bool:
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def expired(self) -> bool:
        return self.status == 410


class TransportError(ApiError):
    """The server could not be reached or the connection broke (no HTTP status; ``status == 0``)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "TransportError", message, {})
