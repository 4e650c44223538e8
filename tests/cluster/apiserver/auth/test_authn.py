"""Bearer-token authentication through the real API server in process (in-memory store, plain HTTP):
the static token file, ServiceAccount JWTs from TokenRequest, bootstrap tokens, TokenReview and
SelfSubjectReview. A request without credential on this test listener is the local admin, who sets
the objects up; every other request carries ``Authorization: Bearer``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from cluster.apiserver import tokens
from cluster.apiserver.auth import sa_tokens, token_file
from cluster.apiserver.auth.authn import bearer_token
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.server import ApiServer
from cluster.security import security_options
from tests.cluster.controllers.local_apiserver import WatchableStore

POD_CONTAINER = {"name": "c", "image": "busybox"}
TOKENS_CSV = 'admintoken,alice,1001,"devs,ops"\nbobtoken,bob,1002\n# a comment\n\n'
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
REVIEW = "/apis/authentication.k8s.io/v1/tokenreviews"


class Api:
    def __init__(self, session: aiohttp.ClientSession, base: str, pki: Path) -> None:
        self.session, self.base, self.pki = session, base, pki

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = dict(headers)
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        async with self.session.request(method, self.base + path, json=body, headers=hdrs) as resp:
            return resp.status, await resp.json(content_type=None)

    async def sync(self, plural: str) -> None:
        """Wait until the watch cache of ``plural`` has seen every write so far (a list is served at
        the store's current revision), as kubectl's delete does by watching until the object is gone:
        authentication reads the cache, which lags a write by the watch's delivery time."""
        status, _ = await self.call("GET", f"/api/v1/{plural}")
        assert status == 200

    async def whoami(self, token: str | None = None, **headers: str) -> tuple[int, Any]:
        status, body = await self.call("POST", WHOAMI, {"kind": "SelfSubjectReview"}, token, **headers)
        return status, body["status"]["userInfo"] if status == 201 else body

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        status, body = await self.call("POST", path, obj)
        assert status == 201, body
        return body  # type: ignore[no-any-return]

    async def token_for(self, sa: str, **spec: Any) -> str:
        status, body = await self.call(
            "POST", f"/api/v1/namespaces/default/serviceaccounts/{sa}/token", {"spec": spec}
        )
        assert status == 201, body
        return str(body["status"]["token"])


@asynccontextmanager
async def served(tmp_path: Path, **security: Any) -> AsyncIterator[Api]:
    (tmp_path / "tokens.csv").write_text(TOKENS_CSV)
    options = SecurityOptions(token_auth_file="tokens.csv", **security)
    api_server = ApiServer(WatchableStore(), pki_dir=tmp_path, security=options)  # type: ignore[arg-type]
    server = TestServer(api_server.app(insecure_local=True))
    await server.start_server()
    session = aiohttp.ClientSession()
    try:
        yield Api(session, str(server.make_url("")).rstrip("/"), tmp_path)
    finally:
        await session.close()
        await server.close()


def run(tmp_path: Path, scenario: Callable[[Api], Awaitable[None]], **security: Any) -> None:
    async def main() -> None:
        async with served(tmp_path, **security) as api:
            await scenario(api)

    asyncio.run(main())


async def _sa_and_pod(api: Api, pod: str = "p") -> tuple[dict[str, Any], dict[str, Any]]:
    sa = await api.create("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "robot"}})
    created = await api.create(
        "/api/v1/namespaces/default/pods",
        {
            "metadata": {"name": pod},
            "spec": {"serviceAccountName": "robot", "containers": [{"name": "c", "image": "busybox"}]},
        },
    )
    return sa, created


# ---------------------------------------------------------------------------- static token file


def test_static_tokens(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        status, user = await api.whoami("admintoken")
        assert status == 201
        assert user == {"username": "alice", "uid": "1001", "groups": ["devs", "ops", "system:authenticated"]}
        status, user = await api.whoami("bobtoken")
        assert user == {"username": "bob", "uid": "1002", "groups": ["system:authenticated"]}
        status, body = await api.whoami("nosuchtoken")
        assert (status, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
        # Another scheme is no credential: the local admin on this listener, as anonymous elsewhere.
        status, user = await api.whoami(Authorization="Basic YWxpY2U6cHc=")
        assert user["username"] == "system:admin"

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("tok,alice\n", "line 1: want at least 3 fields", id="two fields"),
        pytest.param(
            "a,b,c\n,bob,2\n", "line 2: the token and the user name must not be empty", id="no token"
        ),
        pytest.param("a,b,c\na,d,e\n", "line 2: the token is listed twice", id="twice"),
    ],
)
def test_a_malformed_token_file_stops_the_start(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "tokens.csv").write_text(text)
    with pytest.raises(token_file.TokenFileError, match=error):
        ApiServer(WatchableStore(), pki_dir=tmp_path, security=SecurityOptions(token_auth_file="tokens.csv"))  # type: ignore[arg-type]


def test_a_missing_token_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(token_file.TokenFileError, match="cannot read --token-auth-file"):
        ApiServer(WatchableStore(), pki_dir=tmp_path, security=SecurityOptions(token_auth_file="gone.csv"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("Bearer abc extra", "abc"),
        ("Bearer ", None),
        ("Basic abc", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


# ---------------------------------------------------------------------------- ServiceAccount tokens


def test_service_account_token_bound_to_a_pod(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        sa, pod = await _sa_and_pod(api)
        token = await api.token_for("robot", boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "p"})
        status, user = await api.whoami(token)
        assert status == 201, user
        assert user["username"] == "system:serviceaccount:default:robot"
        assert user["uid"] == sa["metadata"]["uid"]
        assert user["groups"] == [
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated",
        ]
        assert user["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
        assert user["extra"]["authentication.kubernetes.io/pod-uid"] == [pod["metadata"]["uid"]]
        assert user["extra"]["authentication.kubernetes.io/credential-id"][0].startswith("JTI=")
        # The pod goes: the next request with its token is refused, though the signature was cached.
        status, _ = await api.call("DELETE", "/api/v1/namespaces/default/pods/p?gracePeriodSeconds=0")
        assert status == 200
        await api.sync("pods")
        status, body = await api.whoami(token)
        assert (status, body["message"]) == (401, "Unauthorized")
        # A pod of the same name made again has another uid: still refused.
        await _recreate_pod(api)
        await api.sync("pods")
        status, _ = await api.whoami(token)
        assert status == 401
        status, review = await api.call("POST", REVIEW, {"spec": {"token": token}})
        assert review["status"]["authenticated"] is False
        assert review["status"]["error"].startswith("pod UID (")

    run(tmp_path, scenario)


async def _recreate_pod(api: Api) -> None:
    for _ in range(100):  # the deletion may still be finishing (finalizers)
        status, _ = await api.call(
            "POST",
            "/api/v1/namespaces/default/pods",
            {
                "metadata": {"name": "p"},
                "spec": {"serviceAccountName": "robot", "containers": [POD_CONTAINER]},
            },
        )
        if status == 201:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("pod p could not be made again")


def test_service_account_token_refused_once_the_account_is_gone(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        await _sa_and_pod(api)
        token = await api.token_for("robot")
        assert (await api.whoami(token))[0] == 201
        status, _ = await api.call("DELETE", "/api/v1/namespaces/default/serviceaccounts/robot")
        assert status == 200
        await api.sync("serviceaccounts")
        assert (await api.whoami(token))[0] == 401
        # The same name again is another account (another uid).
        await api.create("/api/v1/namespaces/default/serviceaccounts", {"metadata": {"name": "robot"}})
        await api.sync("serviceaccounts")
        assert (await api.whoami(token))[0] == 401

    run(tmp_path, scenario)


def test_token_request_checks_the_bound_object(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        await _sa_and_pod(api)
        path = "/api/v1/namespaces/default/serviceaccounts/robot/token"
        status, body = await api.call(
            "POST", path, {"spec": {"boundObjectRef": {"kind": "Pod", "name": "nope"}}}
        )
        assert (status, body["message"]) == (404, 'pods "nope" not found')
        ref = {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "not-the-uid"}
        status, body = await api.call("POST", path, {"spec": {"boundObjectRef": ref}})
        assert status == 409
        assert "the UID in the bound object reference (not-the-uid) does not match" in body["message"]
        ref = {"kind": "ConfigMap", "apiVersion": "v1", "name": "p"}
        status, body = await api.call("POST", path, {"spec": {"boundObjectRef": ref}})
        assert (status, body["message"]) == (400, "cannot bind token to object of type /v1, Kind=ConfigMap")

    run(tmp_path, scenario)


def _sign(pki: Path, claims: dict[str, Any]) -> str:
    return jwt.encode(claims, tokens.signing_key(pki), algorithm="ES256")


def test_expired_wrong_audience_and_foreign_tokens(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        sa, _ = await _sa_and_pod(api)
        long_ago = datetime.now(UTC) - timedelta(hours=3)
        expired, _, _ = tokens.issue(tokens.signing_key(api.pki), sa, {}, now=long_ago)
        other_aud = await api.token_for("robot", audiences=["foo"])
        foreign = tmp_path / "foreign"
        foreign.mkdir()
        forged, _, _ = tokens.issue(tokens.signing_key(foreign), sa, {})
        not_ours = jwt.encode({"iss": "someone-else", "sub": "x"}, "k" * 32, algorithm="HS256")
        for token in (expired, other_aud, forged, not_ours):
            status, body = await api.whoami(token)
            assert (status, body["message"]) == (401, "Unauthorized")
        errors = {}
        for name, token in {"expired": expired, "aud": other_aud, "forged": forged}.items():
            _, review = await api.call("POST", REVIEW, {"spec": {"token": token}})
            assert review["status"]["authenticated"] is False
            errors[name] = review["status"]["error"]
        assert errors == {
            "expired": "service account token has expired",
            "aud": 'token audiences ["foo"] is invalid for the target audiences ["https://kubernetes.default.svc.cluster.local"]',
            "forged": "go-jose/go-jose: error in cryptographic primitive",
        }  # fmt: skip
        # TokenReview for the token's own audience authenticates it, for that audience only.
        _, review = await api.call(
            "POST", REVIEW, {"spec": {"token": other_aud, "audiences": ["foo", "bar"]}}
        )
        assert review["status"]["authenticated"] is True
        assert review["status"]["audiences"] == ["foo"]
        assert review["status"]["user"]["username"] == "system:serviceaccount:default:robot"
        status, body = await api.call("POST", REVIEW, {"spec": {}})
        assert (status, body["message"]) == (400, "token is required for TokenReview in authentication")

    run(tmp_path, scenario)


def test_legacy_secret_tokens(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        sa, _ = await _sa_and_pod(api)
        claims = {
            "iss": sa_tokens.LEGACY_ISSUER,
            "sub": "system:serviceaccount:default:robot",
            "kubernetes.io/serviceaccount/namespace": "default",
            "kubernetes.io/serviceaccount/secret.name": "robot-token",
            "kubernetes.io/serviceaccount/service-account.name": "robot",
            "kubernetes.io/serviceaccount/service-account.uid": sa["metadata"]["uid"],
        }
        token = _sign(api.pki, claims)
        assert (await api.whoami(token))[0] == 401  # no Secret holds it
        secret = {
            "metadata": {
                "name": "robot-token",
                "annotations": {"kubernetes.io/service-account.name": "robot"},
            },
            "type": "kubernetes.io/service-account-token",
            "data": {"token": base64.b64encode(token.encode()).decode()},
        }
        await api.create("/api/v1/namespaces/default/secrets", secret)
        status, user = await api.whoami(token)
        assert status == 201, user
        assert user["username"] == "system:serviceaccount:default:robot"
        status, _ = await api.call("DELETE", "/api/v1/namespaces/default/secrets/robot-token")
        assert status == 200
        await api.sync("secrets")
        assert (await api.whoami(token))[0] == 401

    run(tmp_path, scenario)


# ---------------------------------------------------------------------------- bootstrap tokens


def _bootstrap_secret(token_id: str, secret: str, **data: str) -> dict[str, Any]:
    fields = {"token-id": token_id, "token-secret": secret, "usage-bootstrap-authentication": "true", **data}
    return {
        "metadata": {"name": f"bootstrap-token-{token_id}"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in fields.items()},
    }


def test_bootstrap_tokens(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        ns = "/api/v1/namespaces/kube-system/secrets"
        extra = {"auth-extra-groups": "system:bootstrappers:workers"}
        await api.create(ns, _bootstrap_secret("abcdef", "0123456789abcdef", **extra))
        past = (datetime.now(UTC) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        await api.create(ns, _bootstrap_secret("oldone", "0123456789abcdef", expiration=past))
        unused = {"usage-bootstrap-authentication": "false"}
        await api.create(ns, _bootstrap_secret("nouse1", "0123456789abcdef", **unused))
        status, user = await api.whoami("abcdef.0123456789abcdef")
        assert status == 201, user
        assert user == {
            "username": "system:bootstrap:abcdef",
            "groups": ["system:bootstrappers", "system:bootstrappers:workers", "system:authenticated"],
        }
        for refused in ("abcdef.0123456789abcdee", "oldone.0123456789abcdef", "nouse1.0123456789abcdef"):
            assert (await api.whoami(refused))[0] == 401, refused

    run(tmp_path, scenario)


# ---------------------------------------------------------------------------- anonymous


def test_anonymous_off_still_lets_credentials_in(tmp_path: Path) -> None:
    async def scenario(api: Api) -> None:
        assert (await api.whoami("bobtoken"))[0] == 201
        assert (await api.whoami("wrong"))[0] == 401

    run(tmp_path, scenario, anonymous_auth=False)


def test_raykube_up_refuses_a_malformed_token_file(tmp_path: Path) -> None:
    bad = tmp_path / "tokens.csv"
    bad.write_text("tok,alice\n")
    pki = tmp_path / "pki"
    pki.mkdir()
    with pytest.raises(ValueError, match="line 1: want at least 3 fields"):
        security_options(pki, None, token_auth_file=bad)
