"""RBAC's rule language: matching requests (table of Kubernetes' cases), subjects, and coverage
(escalation), with a property: whatever a set of rules allows, rules covering it allow too."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cluster.apiserver.auth.authorizer import Decision
from cluster.apiserver.auth.rbac import PolicyIndex, RBACAuthorizer
from cluster.apiserver.auth.rbac_rules import applies_to, compact, compile_rule, rule_string, uncovered
from cluster.apiserver.auth.request_info import attributes
from cluster.apiserver.auth.user import UserInfo

ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))


def rule(
    verbs: str, groups: str = "", resources: str = "", names: str = "", urls: str = ""
) -> dict[str, Any]:
    out: dict[str, Any] = {"verbs": verbs.split()}
    if resources:
        out["apiGroups"] = ["" if g == "core" else g for g in groups.split()]
        out["resources"] = resources.split()
    if names:
        out["resourceNames"] = names.split()
    if urls:
        out["nonResourceURLs"] = urls.split()
    return out


@pytest.mark.parametrize(
    ("raw", "method", "path", "allowed"),
    [
        pytest.param(rule("get", "core", "pods"), "GET", "/api/v1/namespaces/d/pods/p", True, id="get"),
        pytest.param(
            rule("get", "core", "pods"), "GET", "/api/v1/namespaces/d/pods", False, id="get-not-list"
        ),
        pytest.param(
            rule("get", "core", "pods"), "GET", "/api/v1/namespaces/d/pods/p/log", False, id="no-sub"
        ),
        pytest.param(
            rule("get", "core", "pods/log"), "GET", "/api/v1/namespaces/d/pods/p/log", True, id="sub"
        ),
        pytest.param(
            rule("get", "core", "pods/log"), "GET", "/api/v1/namespaces/d/pods/p", False, id="sub-only"
        ),
        pytest.param(
            rule("*", "*", "*"), "DELETE", "/apis/apps/v1/namespaces/d/deployments/x", True, id="all"
        ),
        pytest.param(
            rule("get", "*", "*/scale"),
            "GET",
            "/apis/apps/v1/namespaces/d/deployments/x/scale",
            True,
            id="scale",
        ),
        pytest.param(
            rule("get", "*", "*/scale"),
            "GET",
            "/apis/apps/v1/namespaces/d/deployments/x",
            False,
            id="scale-only",
        ),
        pytest.param(rule("get", "apps", "pods"), "GET", "/api/v1/namespaces/d/pods/p", False, id="group"),
        pytest.param(
            rule("get", "core", "secrets", "a"), "GET", "/api/v1/namespaces/d/secrets/a", True, id="name"
        ),
        pytest.param(
            rule("get", "core", "secrets", "a"),
            "GET",
            "/api/v1/namespaces/d/secrets/b",
            False,
            id="other-name",
        ),
        pytest.param(
            rule("list", "core", "secrets", "a"), "GET", "/api/v1/namespaces/d/secrets", False, id="name-list"
        ),
        pytest.param(
            rule("create", "core", "secrets", "a"),
            "POST",
            "/api/v1/namespaces/d/secrets",
            False,
            id="name-create",
        ),
        pytest.param(rule("get", urls="/healthz"), "GET", "/healthz", True, id="url"),
        pytest.param(rule("get", urls="/healthz"), "GET", "/healthz/etcd", False, id="url-exact"),
        pytest.param(rule("get", urls="/apis/*"), "GET", "/apis/apps/v1", True, id="url-star"),
        pytest.param(rule("get", urls="/apis/*"), "GET", "/apis", False, id="url-star-needs-slash"),
        pytest.param(rule("get", urls="*"), "GET", "/logs", True, id="url-all"),
        pytest.param(rule("get", urls="/logs"), "POST", "/logs", False, id="url-verb"),
        pytest.param(rule("get", "core", "pods"), "GET", "/logs", False, id="resource-rule-no-url"),
    ],
)
def test_rule_matching(raw: dict[str, Any], method: str, path: str, allowed: bool) -> None:
    assert compile_rule(raw).allows(attributes(method, path, {}, ALICE)) is allowed


@pytest.mark.parametrize(
    ("query", "allowed"),
    [
        pytest.param({"fieldSelector": "metadata.name=a"}, True, id="list-of-one-named"),
        pytest.param({"fieldSelector": "metadata.name==a", "watch": "true"}, True, id="watch-of-one-named"),
        pytest.param({"fieldSelector": "metadata.name=b"}, False, id="another-name"),
        pytest.param({"fieldSelector": "metadata.name!=b"}, False, id="not-an-exact-match"),
        pytest.param({}, False, id="the-whole-list"),
    ],
)
def test_a_list_restricted_to_one_name_is_authorised_for_that_name(
    query: dict[str, str], allowed: bool
) -> None:
    raw = rule("list watch", "core", "secrets", "a")
    assert (
        compile_rule(raw).allows(attributes("GET", "/api/v1/namespaces/d/secrets", query, ALICE)) is allowed
    )


@pytest.mark.parametrize(
    ("subject", "namespace", "applies"),
    [
        ({"kind": "User", "name": "alice"}, "", True),
        ({"kind": "Group", "name": "devs"}, "", True),
        ({"kind": "Group", "name": "ops"}, "", False),
        ({"kind": "ServiceAccount", "name": "sa"}, "dev", False),
    ],
)
def test_subjects(subject: dict[str, Any], namespace: str, applies: bool) -> None:
    assert applies_to(ALICE, subject, namespace) is applies


def test_service_account_subject_defaults_to_the_binding_namespace() -> None:
    sa = UserInfo("system:serviceaccount:dev:robot", groups=("system:serviceaccounts",))
    assert applies_to(sa, {"kind": "ServiceAccount", "name": "robot"}, "dev")
    assert not applies_to(sa, {"kind": "ServiceAccount", "name": "robot"}, "")  # in a ClusterRoleBinding
    assert applies_to(sa, {"kind": "ServiceAccount", "name": "robot", "namespace": "dev"}, "")


def test_coverage_and_kube_text() -> None:
    held = [rule("get list", "core", "pods"), rule("get", "*", "*/scale"), rule("get", urls="/apis/*")]
    assert uncovered(held, [rule("get", "core", "pods")]) == []
    assert uncovered(held, [rule("get", "apps", "deployments/scale")]) == []
    assert uncovered(held, [rule("get", urls="/apis/apps")]) == []
    missing = uncovered(held, [rule("get list delete watch", "core", "pods secrets")])
    assert sorted(rule_string(r) for r in compact(missing)) == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete" "watch"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete" "watch"]}',
    ]
    assert uncovered([rule("get", "core", "secrets", "a")], [rule("get", "core", "secrets")]) != []


def _index(*objects: tuple[str, dict[str, Any]]) -> RBACAuthorizer:
    index = PolicyIndex()
    for kind, obj in objects:
        index.put(kind, obj)
    return RBACAuthorizer(index)


def test_role_binding_to_cluster_role_grants_only_in_its_namespace() -> None:
    authz = _index(
        ("clusterroles", {"metadata": {"name": "reader"}, "rules": [rule("get list", "core", "pods")]}),
        (
            "rolebindings",
            {
                "metadata": {"name": "b", "namespace": "dev"},
                "roleRef": {"kind": "ClusterRole", "name": "reader"},
                "subjects": [{"kind": "Group", "name": "devs"}],
            },
        ),
    )
    decision, reason = authz.authorize(attributes("GET", "/api/v1/namespaces/dev/pods", {}, ALICE))
    assert (decision, reason) == (
        Decision.ALLOW,
        'RBAC: allowed by RoleBinding "b/dev" of ClusterRole "reader" to Group "devs"',
    )
    assert (
        authz.authorize(attributes("GET", "/api/v1/namespaces/prod/pods", {}, ALICE))[0]
        is Decision.NO_OPINION
    )
    assert authz.authorize(attributes("GET", "/api/v1/pods", {}, ALICE))[0] is Decision.NO_OPINION
    authz.index.remove("rolebindings", {"metadata": {"name": "b", "namespace": "dev"}})
    assert (
        authz.authorize(attributes("GET", "/api/v1/namespaces/dev/pods", {}, ALICE))[0] is Decision.NO_OPINION
    )


VERBS = st.sampled_from(["get", "list", "watch", "create", "delete", "*"])
GROUPS = st.sampled_from(["", "apps", "*"])
RESOURCES = st.sampled_from(["pods", "pods/log", "deployments", "deployments/scale", "*/scale", "*"])
RULES = st.builds(
    lambda v, g, r, n: {
        "verbs": v,
        "apiGroups": g,
        "resources": r,
        **({"resourceNames": n} if n else {}),
    },
    st.lists(VERBS, min_size=1, max_size=3, unique=True),
    st.lists(GROUPS, min_size=1, max_size=2, unique=True),
    st.lists(RESOURCES, min_size=1, max_size=2, unique=True),
    st.lists(st.sampled_from(["a", "b"]), max_size=1),
)
REQUESTS = st.tuples(
    st.sampled_from(["GET", "DELETE", "POST"]),
    st.sampled_from(
        [
            "/api/v1/namespaces/d/pods/a",
            "/api/v1/namespaces/d/pods/b/log",
            "/apis/apps/v1/namespaces/d/deployments/a/scale",
            "/apis/apps/v1/namespaces/d/deployments",
        ]
    ),
)


@given(st.lists(RULES, min_size=1, max_size=3), st.lists(RULES, max_size=3), REQUESTS)
def test_what_covered_rules_allow_the_holder_may_do(
    granted: list[dict[str, Any]], held: list[dict[str, Any]], request: tuple[str, str]
) -> None:
    """If ``held`` covers ``granted``, every request ``granted`` allows, ``held`` allows too (no
    escalation through a role that passes the check)."""
    attrs = attributes(request[0], request[1], {}, ALICE)
    if uncovered(held, granted) or not any(compile_rule(r).allows(attrs) for r in granted):
        return
    assert any(compile_rule(r).allows(attrs) for r in held)
    assert uncovered(granted, granted) == []
