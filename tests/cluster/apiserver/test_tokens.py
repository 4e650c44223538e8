"""ServiceAccount tokens: signed, with Kubernetes' claims and expiry rules."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from cluster.apiserver import tokens

SA = {"metadata": {"name": "robot", "namespace": "team-a", "uid": "u-1"}}
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def public_key(pki: Path) -> bytes:
    key = serialization.load_pem_private_key(tokens.signing_key(pki), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize(
    ("spec", "seconds"),
    [
        pytest.param({}, 3600, id="default one hour"),
        pytest.param({"expirationSeconds": 60}, 600, id="raised to the ten-minute minimum"),
        pytest.param({"expirationSeconds": 7200, "audiences": ["vault"]}, 7200, id="audience and expiry"),
    ],
)
def test_issue(tmp_path: Path, spec: dict[str, object], seconds: int) -> None:
    token, exp, got_seconds = tokens.issue(tokens.signing_key(tmp_path), SA, spec, now=NOW)
    assert got_seconds == seconds
    assert int(exp.timestamp()) == int(NOW.timestamp()) + seconds
    audience = list(spec.get("audiences") or [tokens.ISSUER])  # type: ignore[call-overload]
    claims = jwt.decode(
        token, public_key(tmp_path), algorithms=["ES256"], audience=audience[0], options={"verify_exp": False}
    )
    assert claims["sub"] == "system:serviceaccount:team-a:robot"
    assert claims["iss"] == tokens.ISSUER
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "robot", "uid": "u-1"}
    assert claims["exp"] - claims["iat"] == seconds


def test_key_is_made_once_and_private(tmp_path: Path) -> None:
    first = tokens.signing_key(tmp_path)
    assert tokens.signing_key(tmp_path) == first
    assert (tmp_path / "sa.key").stat().st_mode & 0o077 == 0


def test_a_foreign_key_does_not_verify(tmp_path: Path) -> None:
    token, _, _ = tokens.issue(tokens.signing_key(_mk(tmp_path / "a")), SA, {}, now=NOW)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(
            token,
            public_key(_mk(tmp_path / "b")),
            algorithms=["ES256"],
            options={"verify_aud": False, "verify_exp": False},
        )


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
