"""Kubernetes ``Status`` errors: every failure at the API edge becomes one of these.

Handlers raise ``StatusError``; the server's middleware turns it (and any unexpected exception,
as a 500 without a stack trace) into a ``v1.Status`` body with the right HTTP code and reason, which
kubectl prints as ``Error from server (<Reason>): <message>``.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.resources import ResourceInfo


class StatusError(Exception):
    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success_status(info: ResourceInfo, name: str, uid: str = "") -> dict[str, Any]:
    details: dict[str, Any] = {"name": name, "kind": info.plural}
    if info.group:
        details["group"] = info.group
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def qualified_resource(info: ResourceInfo) -> str:
    """How Kubernetes names a resource in messages: ``pods``, ``deployments.apps``."""
    return f"{info.plural}.{info.group}" if info.group else info.plural


def _details(info: ResourceInfo, name: str) -> dict[str, Any]:
    d: dict[str, Any] = {"name": name, "kind": info.plural}
    if info.group:
        d["group"] = info.group
    return d


def not_found(info: ResourceInfo, name: str) -> StatusError:
    return StatusError(
        404, "NotFound", f'{qualified_resource(info)} "{name}" not found', details=_details(info, name)
    )


def already_exists(info: ResourceInfo, name: str) -> StatusError:
    return StatusError(
        409,
        "AlreadyExists",
        f'{qualified_resource(info)} "{name}" already exists',
        details=_details(info, name),
    )


def conflict(info: ResourceInfo, name: str, why: str | None = None) -> StatusError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return StatusError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified_resource(info)} "{name}": {why}',
        details=_details(info, name),
    )


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def forbidden(message: str, info: ResourceInfo | None = None, name: str = "") -> StatusError:
    return StatusError(403, "Forbidden", message, details=_details(info, name) if info else None)


def method_not_allowed(
    message: str = "the server does not allow this method on the requested resource",
) -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def expired(message: str) -> StatusError:
    return StatusError(410, "Expired", message)


def gone(message: str) -> StatusError:
    return StatusError(410, "Gone", message)


def too_large(limit: int) -> StatusError:
    return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def unsupported_media_type(content_type: str) -> StatusError:
    return StatusError(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: "
        f'application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{content_type}")',
    )


def too_many_requests(message: str, retry_after: int = 1) -> StatusError:
    return StatusError(429, "TooManyRequests", message, retry_after=retry_after)


def unauthorized() -> StatusError:
    return StatusError(401, "Unauthorized", "Unauthorized")


def internal(message: str) -> StatusError:
    return StatusError(500, "InternalError", f"Internal error occurred: {message}")


def service_unavailable(message: str) -> StatusError:
    return StatusError(503, "ServiceUnavailable", message)


def timeout(message: str, retry_after: int | None = None) -> StatusError:
    """Kubernetes' ``NewTimeoutError``: 504, reason ``Timeout`` (kubectl: ``Error from server (Timeout)``)."""
    return StatusError(504, "Timeout", f"Timeout: {message}", retry_after=retry_after)
