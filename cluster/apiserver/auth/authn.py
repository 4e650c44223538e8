"""Authentication: who sent a request (kube's authenticator union, in its order): the verified client
certificate (CN = user, each O = a group), then a bearer token (``Authorization: Bearer <token>``:
the static token file, bootstrap tokens, ServiceAccount JWTs); a request with neither is anonymous
when anonymous requests are enabled (``system:anonymous`` in ``system:unauthenticated``), else 401.

A credential that is presented and fails is a 401 whether or not anonymous requests are enabled, as
in Kubernetes: a bad token is never downgraded to anonymous.

A client certificate from another CA never reaches this code: Python's ``ssl`` cannot ask for a
certificate without verifying it, so the TLS handshake refuses it (kubectl reports the TLS alert)
where kube-apiserver would complete the handshake and answer 401.

Cost per request: a certificate is read from the TLS session (no crypto); a static token is a dict
lookup; a ServiceAccount token's signature is verified once per ``sa_tokens.VERIFIED_TTL``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from cluster.apiserver import tokens
from cluster.apiserver.auth import token_file
from cluster.apiserver.auth.bootstrap_tokens import BootstrapTokens
from cluster.apiserver.auth.objects import ObjectGetter
from cluster.apiserver.auth.sa_tokens import ServiceAccountTokens, TokenInvalid, public_key
from cluster.apiserver.auth.user import ANONYMOUS, AUTHENTICATED, MASTERS, UNAUTHENTICATED, UserInfo
from cluster.apiserver.errors import unauthorized
from cluster.apiserver.tls import peer_identity

log = logging.getLogger("raykube.apiserver")

ANONYMOUS_USER = UserInfo(ANONYMOUS, groups=(UNAUTHENTICATED,))
LOCAL_ADMIN = UserInfo("system:admin", groups=(MASTERS, AUTHENTICATED))


def with_authenticated(name: str, groups: list[str] | tuple[str, ...], uid: str = "") -> UserInfo:
    """``name`` in ``groups`` plus ``system:authenticated`` (every authenticated user has it)."""
    return UserInfo(name, uid=uid, groups=(*(g for g in groups if g != AUTHENTICATED), AUTHENTICATED))


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """What a token authenticates as (TokenReview's status): ``user`` None when it does not, with
    ``error`` saying why when the authenticator that owns the token knows."""

    user: UserInfo | None
    audiences: tuple[str, ...] = ()
    error: str = ""


def bearer_token(header: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (scheme case-insensitive), else None."""
    parts = header.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer":
        return None
    return parts[1] or None


class Authenticator:
    """Client certificates (verified by the TLS handshake against the cluster CA), bearer tokens and,
    on the plain-HTTP test listener only, the local admin for a request without credential.

    ``static`` maps static tokens to users (``token_file.load``); ``sa_key`` is the service-account
    signing key (PEM; None: no ServiceAccount tokens); ``objects`` reads ServiceAccounts, pods and
    Secrets (None: no ServiceAccount or bootstrap tokens)."""

    def __init__(
        self,
        *,
        static: dict[str, UserInfo] | None = None,
        sa_key: bytes | None = None,
        objects: ObjectGetter | None = None,
        audiences: Sequence[str] = (tokens.ISSUER,),
    ) -> None:
        self.static = static or {}
        self.audiences = tuple(audiences)
        self.service_accounts = (
            ServiceAccountTokens(public_key(sa_key), objects, self.audiences)
            if sa_key is not None and objects is not None
            else None
        )
        self.bootstrap = BootstrapTokens(objects) if objects is not None else None

    @classmethod
    def for_server(
        cls, pki_dir: Path | None, token_auth_file: str | None, objects: ObjectGetter
    ) -> Authenticator:
        """The API server's authenticator: the token file named in the PKI directory (a malformed
        one raises ``token_file.TokenFileError``) and the service-account key there."""
        static = token_file.load(pki_dir / token_auth_file) if pki_dir and token_auth_file else None
        if token_auth_file and pki_dir is None:
            raise token_file.TokenFileError("--token-auth-file needs the PKI directory")
        sa_key = tokens.signing_key(pki_dir) if pki_dir is not None else None
        return cls(static=static, sa_key=sa_key, objects=objects)

    async def authenticate(self, request: web.Request) -> UserInfo | None:
        """The user, or None when the request carries no credential; raise 401 (``unauthorized``)
        when it carries one that does not authenticate."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        if ssl_object is not None:
            identity = peer_identity(ssl_object)
            if identity is not None:
                return with_authenticated(identity[0], identity[1])
        # As kube: another scheme (Basic) or an empty token is no credential at all.
        token = bearer_token(request.headers.get("Authorization", ""))
        if token is not None:
            answer = await self.authenticate_token(token)
            if answer.user is None:
                if answer.error:
                    log.info("bearer token refused: %s", answer.error)
                raise unauthorized()
            return answer.user
        if transport is not None and ssl_object is None and request.app.get("insecure_local"):
            return LOCAL_ADMIN
        return None

    async def authenticate_token(self, token: str, audiences: Sequence[str] | None = None) -> TokenAnswer:
        """What ``token`` authenticates as, for ``audiences`` (default: the API server's)."""
        wanted = tuple(audiences) if audiences else self.audiences
        # Static and bootstrap tokens carry no audience: they count for the API server's own only.
        implicit = tuple(a for a in wanted if a in self.audiences)
        user = self.static.get(token)
        if user is not None:
            return TokenAnswer(user, implicit) if implicit else TokenAnswer(None)
        if self.bootstrap is not None and implicit:
            user = await self.bootstrap.authenticate(token)
            if user is not None:
                return TokenAnswer(user, implicit)
        if self.service_accounts is not None:
            try:
                found = await self.service_accounts.authenticate(token, wanted)
            except TokenInvalid as err:
                return TokenAnswer(None, error=str(err))
            if found is not None:
                return TokenAnswer(found.user, found.audiences)
        return TokenAnswer(None)
