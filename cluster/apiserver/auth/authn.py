"""Authentication: who sent a request (kube's authenticator union, in its order): the verified client
certificate (CN = user, each O = a group), then a bearer token; a request with neither is anonymous
when anonymous requests are enabled (``system:anonymous`` in ``system:unauthenticated``), else 401.

A credential that is presented and fails is a 401 whether or not anonymous requests are enabled, as
in Kubernetes: a bad token is never downgraded to anonymous.
"""

from __future__ import annotations

from aiohttp import web

from cluster.apiserver.auth.user import ANONYMOUS, AUTHENTICATED, MASTERS, UNAUTHENTICATED, UserInfo
from cluster.apiserver.tls import peer_identity

ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
LOCAL_ADMIN = UserInfo("system:admin", groups=(MASTERS, AUTHENTICATED))


def with_authenticated(name: str, groups: list[str] | tuple[str, ...], uid: str = "") -> UserInfo:
    """``name`` in ``groups`` plus ``system:authenticated`` (every authenticated user has it)."""
    return UserInfo(name, uid=uid, groups=(*(g for g in groups if g != AUTHENTICATED), AUTHENTICATED))


class Authenticator:
    """x509 client certificates (verified by the TLS handshake against the cluster CA) and, on the
    plain-HTTP test listener only, the local admin."""

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The user, or None when the request carries no credential; raise 401 (``unauthorized``)
        when it carries one that does not authenticate."""
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        identity = peer_identity(ssl_object) if ssl_object is not None else None
        if identity is not None:
            return with_authenticated(identity[0], identity[1])
        if request.transport is not None and ssl_object is None and request.app.get("insecure_local"):
            return LOCAL_ADMIN
        return None
