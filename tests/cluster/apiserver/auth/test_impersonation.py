"""Impersonation through the real API server in process, with an authorizer that allows every
request except the ``impersonate`` checks it was not told to allow: who the request then acts as
(SelfSubjectReview), and kube's 403 for each refused part."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy

from cluster.apiserver.auth.authorizer import Decision, RequestAttributes
from cluster.apiserver.auth.impersonation import impersonate
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.server import ApiServer
from tests.cluster.controllers.local_apiserver import WatchableStore

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
ALICE = UserInfo("alice", groups=("system:authenticated",))


class Allowing:
    """Allows everything but ``impersonate``, which it allows only for the (resource, name) pairs
    given (name "*": any), and records every impersonate check."""

    def __init__(self, *allowed: tuple[str, str]) -> None:
        self.allowed = set(allowed)
        self.asked: list[RequestAttributes] = []

    def authorize(self, attrs: RequestAttributes) -> tuple[Decision, str]:
        if attrs.verb != "impersonate":
            return Decision.ALLOW, ""
        self.asked.append(attrs)
        resource = attrs.resource + (f"/{attrs.subresource}" if attrs.subresource else "")
        if (resource, attrs.name) in self.allowed or (resource, "*") in self.allowed:
            return Decision.ALLOW, ""
        return Decision.NO_OPINION, ""


def headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    ("pairs", "allowed", "want"),
    [
        pytest.param(
            [("Impersonate-User", "bob")],
            [("users", "bob")],
            UserInfo("bob", groups=("system:authenticated",)),
            id="user",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Group", "devs"), ("Impersonate-Group", "ops")],
            [("users", "bob"), ("groups", "*")],
            UserInfo("bob", groups=("devs", "ops", "system:authenticated")),
            id="user and groups",
        ),
        pytest.param(
            [("Impersonate-User", "system:serviceaccount:team:robot")],
            [("serviceaccounts", "robot")],
            UserInfo(
                "system:serviceaccount:team:robot",
                groups=("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"),
            ),
            id="service account gets its groups",
        ),
        pytest.param(
            [("Impersonate-User", "system:anonymous")],
            [("users", "system:anonymous")],
            UserInfo("system:anonymous", groups=("system:unauthenticated",)),
            id="anonymous is unauthenticated",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Group", "system:unauthenticated")],
            [("users", "bob"), ("groups", "*")],
            UserInfo("bob", groups=("system:unauthenticated",)),
            id="explicit unauthenticated",
        ),
        pytest.param(
            [
                ("Impersonate-User", "bob"),
                ("Impersonate-Uid", "u-7"),
                ("Impersonate-Extra-Scopes%2Fa", "view"),
            ],
            [("users", "bob"), ("uids", "u-7"), ("userextras/scopes/a", "view")],
            UserInfo("bob", uid="u-7", groups=("system:authenticated",), extra={"scopes/a": ("view",)}),
            id="uid and extra",
        ),
    ],
)
def test_who_the_request_acts_as(
    pairs: list[tuple[str, str]], allowed: list[tuple[str, str]], want: UserInfo
) -> None:
    got = impersonate(ALICE, headers(*pairs), Allowing(*allowed))
    assert got == want
    assert got is not None and dict(got.extra) == dict(want.extra)


@pytest.mark.parametrize(
    ("pairs", "allowed", "message"),
    [
        pytest.param(
            [("Impersonate-User", "bob")],
            [],
            'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" '
            "at the cluster scope",
            id="user",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")],
            [("users", "bob")],
            'groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups" in '
            'API group "" at the cluster scope',
            id="group",
        ),
        pytest.param(
            [("Impersonate-User", "system:serviceaccount:team:robot")],
            [("users", "*")],
            'serviceaccounts "robot" is forbidden: User "alice" cannot impersonate resource '
            '"serviceaccounts" in API group "" in the namespace "team"',
            id="service account",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Uid", "u-7")],
            [("users", "bob")],
            'uids.authentication.k8s.io "u-7" is forbidden: User "alice" cannot impersonate resource '
            '"uids" in API group "authentication.k8s.io" at the cluster scope',
            id="uid",
        ),
        pytest.param(
            [("Impersonate-User", "bob"), ("Impersonate-Extra-scopes", "admin")],
            [("users", "bob")],
            'userextras.authentication.k8s.io "admin" is forbidden: User "alice" cannot impersonate '
            'resource "userextras/scopes" in API group "authentication.k8s.io" at the cluster scope',
            id="extra",
        ),
    ],
)
def test_refused(pairs: list[tuple[str, str]], allowed: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(StatusError) as err:
        impersonate(ALICE, headers(*pairs), Allowing(*allowed))
    assert (err.value.code, err.value.reason, err.value.message) == (403, "Forbidden", message)


def test_groups_without_a_user() -> None:
    with pytest.raises(StatusError) as err:
        impersonate(ALICE, headers(("Impersonate-Group", "devs")), Allowing(("groups", "*")))
    assert err.value.code == 500
    assert "without impersonating a user" in err.value.message


def test_no_headers_no_checks() -> None:
    authorizer = Allowing()
    assert impersonate(ALICE, headers(("Accept", "application/json")), authorizer) is None
    assert authorizer.asked == []


def test_through_the_server(tmp_path: Path) -> None:
    (tmp_path / "tokens.csv").write_text("alicetoken,alice,1\n")
    authorizer = Allowing(("users", "bob"), ("groups", "devs"))
    server = ApiServer(
        WatchableStore(),  # type: ignore[arg-type]
        pki_dir=tmp_path,
        security=SecurityOptions(token_auth_file="tokens.csv"),
        authorizer=authorizer,
    )

    async def main() -> None:
        test_server = TestServer(server.app(insecure_local=True))
        await test_server.start_server()
        base = str(test_server.make_url("")).rstrip("/")
        try:
            async with aiohttp.ClientSession() as session:

                async def whoami(*pairs: tuple[str, str]) -> tuple[int, Any]:
                    hdrs = CIMultiDict([("Authorization", "Bearer alicetoken"), *pairs])
                    async with session.post(base + WHOAMI, json={}, headers=hdrs) as resp:
                        return resp.status, await resp.json()

                status, body = await whoami(("Impersonate-User", "bob"), ("Impersonate-Group", "devs"))
                assert status == 201, body
                assert body["status"]["userInfo"] == {
                    "username": "bob",
                    "groups": ["devs", "system:authenticated"],
                }
                status, body = await whoami(("Impersonate-User", "carol"))
                assert (status, body["reason"]) == (403, "Forbidden")
                assert body["details"] == {"kind": "users", "name": "carol"}
                status, body = await whoami()
                assert body["status"]["userInfo"]["username"] == "alice"
        finally:
            await test_server.close()

    asyncio.run(main())
