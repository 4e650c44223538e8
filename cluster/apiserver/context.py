"""Per-request state every layer may read without it being passed through each call: who asks
(set by authentication, read by admission plugins) and the warnings the response carries (``Warning:
299`` headers, as PodSecurity's ``warn`` mode and deprecations send; kubectl prints each one).

Both are context variables: aiohttp runs every request in its own task, so a value set by a
middleware is seen by the handler and everything it awaits, and by no other request."""

from __future__ import annotations

from contextvars import ContextVar

from cluster.apiserver.auth.user import UserInfo

_USER: ContextVar[UserInfo | None] = ContextVar("raykube_request_user", default=None)
_WARNINGS: ContextVar[list[str] | None] = ContextVar("raykube_request_warnings", default=None)


def set_user(user: UserInfo | None) -> None:
    _USER.set(user)


def current_user() -> UserInfo | None:
    """The user of the request being served (after impersonation), or None outside a request."""
    return _USER.get()


def begin_warnings() -> list[str]:
    """Start collecting this request's warnings; the returned list fills as ``add_warning`` runs."""
    warnings: list[str] = []
    _WARNINGS.set(warnings)
    return warnings


def add_warning(text: str) -> None:
    """Send ``text`` to the client as a ``Warning`` header (once; dropped outside a request)."""
    warnings = _WARNINGS.get()
    if warnings is not None and text not in warnings:
        warnings.append(text)


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


_AUDIT_ANNOTATIONS: ContextVar[dict[str, str] | None] = ContextVar("raykube_audit_annotations", default=None)


def begin_audit_annotations() -> dict[str, str]:
    """Start collecting this request's audit annotations (the audit filter calls this)."""
    annotations: dict[str, str] = {}
    _AUDIT_ANNOTATIONS.set(annotations)
    return annotations


def add_audit_annotation(key: str, value: str) -> None:
    """Annotate this request's audit event (``pod-security.kubernetes.io/audit-violations``, the
    authorizer's ``authorization.k8s.io/decision``...); dropped when nothing audits the request."""
    annotations = _AUDIT_ANNOTATIONS.get()
    if annotations is not None:
        annotations.setdefault(key, value)
