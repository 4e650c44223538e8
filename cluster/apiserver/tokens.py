"""ServiceAccount tokens (the ``serviceaccounts/token`` subresource, TokenRequest).

Tokens are JWTs signed with the cluster's service-account key (ES256, ``<pki>/sa.key``, made on first
use), with Kubernetes' claims: issuer, ``sub`` = ``system:serviceaccount:<ns>:<name>``, audiences,
expiry (default 1 h, at least 10 min), and the ``kubernetes.io`` claim naming the account (and the
bound object, if any, with its uid). ``auth.sa_tokens`` verifies them.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600


def signing_key(pki_dir: Path) -> bytes:
    path = pki_dir / "sa.key"
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)
    return path.read_bytes()


def issue(
    key_pem: bytes, sa: dict[str, Any], spec: dict[str, Any], now: datetime | None = None
) -> tuple[str, datetime, int]:
    now = now or datetime.now(UTC)
    seconds = max(MIN_EXPIRATION, int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION))
    exp = now + timedelta(seconds=seconds)
    meta = sa["metadata"]
    k8s: dict[str, Any] = {
        "namespace": meta["namespace"],
        "serviceaccount": {"name": meta["name"], "uid": meta.get("uid", "")},
    }
    bound = spec.get("boundObjectRef")
    if bound:
        k8s[str(bound.get("kind", "")).lower()] = {"name": bound.get("name"), "uid": bound.get("uid", "")}
    claims = {
        "iss": ISSUER,
        "sub": f"system:serviceaccount:{meta['namespace']}:{meta['name']}",
        "aud": list(spec.get("audiences") or [ISSUER]),
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(exp.timestamp()),
        # kube reports it as the user's extra authentication.kubernetes.io/credential-id
        "jti": str(uuid.uuid4()),
        "kubernetes.io": k8s,
    }
    return jwt.encode(claims, key_pem, algorithm="ES256"), exp, seconds
