"""ServiceAccount token authentication (kube's ``serviceaccount.JWTTokenAuthenticator``).

Two kinds of tokens verify with the cluster's service-account key (``<pki>/sa.key``, ES256):

- bound tokens from TokenRequest (``kubectl create token``, projected volumes; issuer
  ``tokens.ISSUER``): the audience must meet the API server's (or a TokenReview's) audiences; the
  ServiceAccount, and the pod or Secret the token is bound to, must still exist with the uid in the
  token (deleted more than a minute ago counts as gone, as in Kubernetes);
- legacy tokens kept in a Secret of type ``kubernetes.io/service-account-token`` (issuer
  ``kubernetes/serviceaccount``, no expiry): honoured only while that Secret exists, still holds this
  token, names the account, and is not marked ``kubernetes.io/legacy-token-invalid-since``.

Cost: the signature check (the expensive part) is remembered per token for ``VERIFIED_TTL`` seconds
(kube caches whole token answers 10 s); expiry, audience and the objects are checked on every request
from the watch cache, so a deleted pod's token fails on the next request.

A token whose issuer is not ours is "not mine" (None), so another authenticator may try it; a token
of ours that fails raises ``TokenInvalid`` with kube's message (shown in TokenReview's
``status.error``; a request gets a plain 401).
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from cluster.apiserver import tokens
from cluster.apiserver.auth.objects import ObjectGetter
from cluster.apiserver.auth.user import (
    AUTHENTICATED,
    UserInfo,
    service_account_groups,
    service_account_username,
)

LEGACY_ISSUER = "kubernetes/serviceaccount"
LEEWAY = 60  # go-jose's DefaultLeeway: exp, nbf, and "deleted before" all get a minute
VERIFIED_TTL = 10.0
MAX_CACHED = 4096
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
LEGACY_TOKEN_TYPE = "kubernetes.io/service-account-token"
LEGACY_INVALID_SINCE = "kubernetes.io/legacy-token-invalid-since"


class TokenInvalid(Exception):
    """A token this authenticator owns that does not authenticate (kube's error text)."""


@dataclass(frozen=True, slots=True)
class TokenUser:
    user: UserInfo
    audiences: tuple[str, ...]


def public_key(private_pem: bytes) -> Any:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key()


def go_quote(values: Sequence[str]) -> str:
    """Go's ``%q`` of a string slice: ``["a" "b"]``."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def _deleted_before(obj: dict[str, Any], limit: float) -> bool:
    stamp = (obj.get("metadata") or {}).get("deletionTimestamp")
    if not stamp:
        return False
    return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp() < limit


def _uid(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("uid", ""))


class ServiceAccountTokens:
    """Verifies ServiceAccount JWTs against ``key`` (the signing key's public half) and the objects
    ``objects`` returns. ``audiences`` are the API server's own (``--api-audiences``)."""

    def __init__(
        self,
        key: Any,
        objects: ObjectGetter,
        audiences: Sequence[str] = (tokens.ISSUER,),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.objects = objects
        self.audiences = tuple(audiences)
        self.clock = clock
        self._verified: dict[str, tuple[float, dict[str, Any]]] = {}

    async def authenticate(self, token: str, audiences: Sequence[str] | None = None) -> TokenUser | None:
        if token.count(".") != 2:
            return None
        now = self.clock()
        claims = self._claims(token, now)
        if claims is None:
            return None
        wanted = tuple(audiences) if audiences else self.audiences
        if claims.get("iss") == LEGACY_ISSUER:
            user = await self._legacy(token, claims)
            return TokenUser(user, tuple(a for a in wanted if a in self.audiences))
        aud = claims.get("aud")
        token_auds = [aud] if isinstance(aud, str) else list(aud or [])
        if not token_auds:
            token_auds = list(self.audiences)
        matched = tuple(a for a in token_auds if a in wanted)
        if not matched:
            raise TokenInvalid(
                f"token audiences {go_quote(token_auds)} is invalid for the target audiences "
                f"{go_quote(wanted)}"
            )
        if "exp" in claims and now > float(claims["exp"]) + LEEWAY:
            raise TokenInvalid("service account token has expired")
        if "nbf" in claims and now < float(claims["nbf"]) - LEEWAY:
            raise TokenInvalid("service account token is not valid yet")
        return TokenUser(await self._bound(claims, now), matched)

    def _claims(self, token: str, now: float) -> dict[str, Any] | None:
        """The token's claims once its signature verified (remembered ``VERIFIED_TTL`` s); None when
        it is not a token of ours (not a JWT, or another issuer)."""
        hit = self._verified.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            return None
        if unverified.get("iss") not in (tokens.ISSUER, LEGACY_ISSUER):
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.key,
                algorithms=["ES256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
            )
        except jwt.InvalidSignatureError as err:
            raise TokenInvalid("go-jose/go-jose: error in cryptographic primitive") from err
        except jwt.InvalidTokenError as err:
            raise TokenInvalid(f"failed to verify token: {err}") from err
        if len(self._verified) >= MAX_CACHED:
            self._verified = {t: v for t, v in self._verified.items() if v[0] > now}
            if len(self._verified) >= MAX_CACHED:
                self._verified.clear()
        self._verified[token] = (now + VERIFIED_TTL, claims)
        return claims

    async def _bound(self, claims: dict[str, Any], now: float) -> UserInfo:
        k8s = claims.get("kubernetes.io") or {}
        namespace = str(k8s.get("namespace") or "")
        sa_ref = k8s.get("serviceaccount") or {}
        if not namespace or not sa_ref.get("name"):
            raise TokenInvalid("service account token claims could not be validated")
        if claims.get("sub") != service_account_username(namespace, sa_ref["name"]):
            raise TokenInvalid("sub does not match service account")
        deleted_limit = now - LEEWAY
        sa = await self.objects.get("serviceaccounts", namespace, sa_ref["name"])
        if sa is None:
            raise TokenInvalid(f'serviceaccounts "{sa_ref["name"]}" not found')
        if _deleted_before(sa, deleted_limit):
            raise TokenInvalid(f"service account {namespace}/{sa_ref['name']} has been deleted")
        if _uid(sa) != sa_ref.get("uid", ""):
            raise TokenInvalid(
                f"service account UID ({_uid(sa)}) does not match claim ({sa_ref.get('uid', '')})"
            )
        extra: dict[str, tuple[str, ...]] = {}
        secret_ref = k8s.get("secret")
        if secret_ref:
            await self._check_bound("secret", namespace, secret_ref, deleted_limit)
        pod_ref = k8s.get("pod")
        if pod_ref:
            await self._check_bound("pod", namespace, pod_ref, deleted_limit)
            extra[POD_NAME] = (pod_ref["name"],)
            extra[POD_UID] = (pod_ref["uid"],)
        if claims.get("jti"):
            extra[CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
        return UserInfo(
            service_account_username(namespace, sa_ref["name"]),
            uid=sa_ref.get("uid", ""),
            groups=(*service_account_groups(namespace), AUTHENTICATED),
            extra=extra,
        )

    async def _check_bound(
        self, kind: str, namespace: str, ref: dict[str, Any], deleted_limit: float
    ) -> None:
        """The object a token is bound to (a ``pod`` or ``secret``) must still exist, not be deleted
        (beyond the leeway), and have the uid the token names; kube's texts otherwise."""
        obj = await self.objects.get(kind + "s", namespace, ref.get("name", ""))
        if obj is None or _deleted_before(obj, deleted_limit):
            raise TokenInvalid("service account token has been invalidated")
        if _uid(obj) != ref.get("uid", ""):
            raise TokenInvalid(
                f"{kind} UID ({_uid(obj)}) does not match service account {kind} ref claim "
                f"({ref.get('uid', '')})"
            )

    async def _legacy(self, token: str, claims: dict[str, Any]) -> UserInfo:
        namespace = str(claims.get("kubernetes.io/serviceaccount/namespace") or "")
        secret_name = str(claims.get("kubernetes.io/serviceaccount/secret.name") or "")
        sa_name = str(claims.get("kubernetes.io/serviceaccount/service-account.name") or "")
        sa_uid = str(claims.get("kubernetes.io/serviceaccount/service-account.uid") or "")
        if not namespace or not secret_name or not sa_name:
            raise TokenInvalid("service account token claims could not be validated")
        if claims.get("sub") != service_account_username(namespace, sa_name):
            raise TokenInvalid("sub does not match service account")
        secret = await self.objects.get("secrets", namespace, secret_name)
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            raise TokenInvalid("service account token has been invalidated")
        meta = secret.get("metadata") or {}
        if (
            secret.get("type") != LEGACY_TOKEN_TYPE
            or (meta.get("annotations") or {}).get("kubernetes.io/service-account.name") != sa_name
        ):
            raise TokenInvalid("service account token has been invalidated")
        if LEGACY_INVALID_SINCE in (meta.get("labels") or {}):
            raise TokenInvalid("service account token has been invalidated")
        try:
            stored = base64.b64decode((secret.get("data") or {}).get("token", ""))
        except ValueError:
            stored = b""
        if not hmac.compare_digest(stored, token.encode()):
            raise TokenInvalid("service account token does not match server's copy")
        sa = await self.objects.get("serviceaccounts", namespace, sa_name)
        if sa is None or (sa.get("metadata") or {}).get("deletionTimestamp"):
            raise TokenInvalid("service account token has been invalidated")
        if sa_uid and _uid(sa) != sa_uid:
            raise TokenInvalid(f"service account UID ({_uid(sa)}) does not match claim ({sa_uid})")
        return UserInfo(
            service_account_username(namespace, sa_name),
            uid=_uid(sa),
            groups=(*service_account_groups(namespace), AUTHENTICATED),
        )
