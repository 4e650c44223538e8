"""Bootstrap tokens (kube's ``bootstrap.TokenAuthenticator``): ``<id>.<secret>`` where a Secret
``kube-system/bootstrap-token-<id>`` of type ``bootstrap.kubernetes.io/token`` holds ``token-id``,
``token-secret``, ``usage-bootstrap-authentication: "true"``, an optional ``expiration``
(RFC 3339) and optional ``auth-extra-groups`` (each ``system:bootstrappers:...``).

The user is ``system:bootstrap:<id>`` in ``system:bootstrappers`` and the extra groups; nodes that
join with such a token use it to ask for their client certificate (a CertificateSigningRequest).
A token in this format that does not match a usable Secret does not authenticate (401).
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cluster.apiserver.auth.objects import ObjectGetter
from cluster.apiserver.auth.user import AUTHENTICATED, BOOTSTRAP_PREFIX, BOOTSTRAPPERS, UserInfo

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
NAMESPACE = "kube-system"
EXTRA_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")


def _data(secret: dict[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return str((secret.get("stringData") or {}).get(key, ""))
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def expired(secret: dict[str, Any], now: float) -> bool:
    stamp = _data(secret, "expiration")
    if not stamp:
        return False
    try:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() < now
    except ValueError:
        return True  # kube treats an unparseable expiration as expired


class BootstrapTokens:
    def __init__(self, objects: ObjectGetter, clock: Callable[[], float] = time.time) -> None:
        self.objects = objects
        self.clock = clock

    async def authenticate(self, token: str) -> UserInfo | None:
        """The user, or None: not a bootstrap token, or no usable Secret for it."""
        m = TOKEN_RE.match(token)
        if m is None:
            return None
        token_id, token_secret = m.groups()
        secret = await self.objects.get("secrets", NAMESPACE, SECRET_PREFIX + token_id)
        if secret is None or (secret.get("metadata") or {}).get("deletionTimestamp"):
            return None
        if secret.get("type") != SECRET_TYPE:
            return None
        if not hmac.compare_digest(_data(secret, "token-secret").encode(), token_secret.encode()):
            return None
        if _data(secret, "token-id") != token_id:
            return None
        if expired(secret, self.clock()) or _data(secret, "usage-bootstrap-authentication") != "true":
            return None
        extra = [g.strip() for g in _data(secret, "auth-extra-groups").split(",") if g.strip()]
        if any(not EXTRA_GROUP_RE.match(g) for g in extra):
            return None
        return UserInfo(BOOTSTRAP_PREFIX + token_id, groups=(BOOTSTRAPPERS, *extra, AUTHENTICATED))
