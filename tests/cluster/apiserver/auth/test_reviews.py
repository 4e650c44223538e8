"""Access reviews through the server's routes: the answers (allowed, reason, rules, incomplete,
evaluationError) come from the authorizer chain, and kube's refusals of malformed reviews."""

from __future__ import annotations

from typing import Any

from cluster.apiserver.server import ApiServer
from cluster.client.errors import ApiError
from cluster.client.rest import ApiClient
from tests.cluster.apiserver.auth.test_rbac_server import RBAC, run

AUTHZ = "authorization.k8s.io/v1"


async def bind_alice(client: ApiClient) -> None:
    await client.create("v1", "namespaces", {"metadata": {"name": "dev"}})
    await client.create(
        RBAC,
        "roles",
        {
            "metadata": {"name": "cm"},
            "rules": [
                {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["app"], "verbs": ["get"]}
            ],
        },
        "dev",
    )
    for name, ref in (
        ("alice-cm", ("Role", "cm")),
        ("alice-view", ("ClusterRole", "system:aggregate-to-view")),
        ("ghost", ("Role", "nope")),
    ):
        await client.create(
            RBAC,
            "rolebindings",
            {
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref[0], "name": ref[1]},
                "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
            },
            "dev",
        )
    await client.list(RBAC, "rolebindings", "dev")


def sar(user: str, verb: str, resource: str, namespace: str = "dev", name: str = "") -> dict[str, Any]:
    attrs = {"verb": verb, "resource": resource, "namespace": namespace, **({"name": name} if name else {})}
    return {
        "kind": "SubjectAccessReview",
        "apiVersion": AUTHZ,
        "spec": {"user": user, "resourceAttributes": attrs},
    }


def test_reviews_answer_from_the_authorizers() -> None:
    async def scenario(api: ApiServer, client: ApiClient) -> dict[str, Any]:
        await bind_alice(client)
        out: dict[str, Any] = {}
        out["self"] = await client.create(
            AUTHZ,
            "selfsubjectaccessreviews",
            {"spec": {"resourceAttributes": {"verb": "delete", "resource": "nodes"}}},
        )
        out["named"] = await client.create(
            AUTHZ, "subjectaccessreviews", sar("alice", "get", "secrets", name="app")
        )
        out["other-name"] = await client.create(
            AUTHZ, "subjectaccessreviews", sar("alice", "get", "secrets", name="db")
        )
        out["log"] = await client.create(
            AUTHZ,
            "localsubjectaccessreviews",
            {
                "spec": {
                    "user": "alice",
                    "resourceAttributes": {
                        "verb": "get",
                        "resource": "pods",
                        "subresource": "log",
                        "namespace": "dev",
                    },
                }
            },
            "dev",
        )
        out["url"] = await client.create(
            AUTHZ,
            "subjectaccessreviews",
            {
                "spec": {
                    "user": "alice",
                    "groups": ["system:authenticated"],
                    "nonResourceAttributes": {"verb": "get", "path": "/logs"},
                }
            },
        )
        out["rules"] = await client.create(AUTHZ, "selfsubjectrulesreviews", {"spec": {"namespace": "dev"}})
        for bad, body in (
            ("no-subject", {"spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}),
            (
                "both",
                {
                    "spec": {
                        "user": "a",
                        "resourceAttributes": {"verb": "get"},
                        "nonResourceAttributes": {"verb": "get", "path": "/logs"},
                    }
                },
            ),
            ("neither", {"spec": {}}),
        ):
            try:
                await client.create(AUTHZ, "subjectaccessreviews", body)
            except ApiError as err:
                out[bad] = (err.status, err.message)
        try:  # a LocalSubjectAccessReview asks about its own namespace only
            lsar = {"spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods"}}}
            await client.create(AUTHZ, "localsubjectaccessreviews", lsar, "dev")
        except ApiError as err:
            out["local-elsewhere"] = (err.status, err.message)
        try:
            await client.create(AUTHZ, "selfsubjectrulesreviews", {"spec": {}})
        except ApiError as err:
            out["no-namespace"] = (err.status, err.message)
        return out

    got = run(scenario)
    assert got["self"]["status"]["allowed"] is True
    assert got["self"]["status"]["reason"] == (
        'RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
        'to Group "system:masters"'
    )
    assert got["named"]["status"]["allowed"] is True
    assert got["other-name"]["status"]["allowed"] is False
    # a binding to a missing Role is named in the reason of a denial
    assert got["other-name"]["status"]["reason"] == 'RBAC: role.rbac.authorization.k8s.io "nope" not found'
    # a ClusterRole bound in the namespace grants pods/log there
    assert got["log"]["status"]["allowed"] is True
    assert got["log"]["metadata"]["namespace"] == "dev"
    assert got["url"]["status"]["allowed"] is False
    status = got["rules"]["status"]
    assert status["incomplete"] is False
    assert {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]} in status["resourceRules"]
    assert {"verbs": ["*"], "nonResourceURLs": ["*"]} in status["nonResourceRules"]
    assert got["no-subject"] == (
        422,
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid value: "": '
        "at least one of user or group must be specified",
    )
    assert got["both"] == (
        422,
        'SubjectAccessReview.authorization.k8s.io "" is invalid: spec.nonResourceAttributes: Invalid value: '
        'authorization.NonResourceAttributes{Path:"/logs", Verb:"get"}: '
        "cannot be specified in combination with resourceAttributes",
    )
    assert got["neither"] == (
        422,
        'SubjectAccessReview.authorization.k8s.io "" is invalid: [spec.resourceAttributes: Invalid value: '
        '"null": exactly one of nonResourceAttributes or resourceAttributes must be specified, '
        'spec.user: Invalid value: "": at least one of user or group must be specified]',
    )
    assert got["local-elsewhere"] == (
        422,
        'LocalSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes.namespace: '
        'Invalid value: "": must match metadata.namespace',
    )
    assert got["no-namespace"] == (400, "no namespace on request")
