"""raykube_policy: the roles of raykube's own components are well formed, each binding names a role
of the same module and a kube-system ServiceAccount, and nothing in them is a wildcard."""

from __future__ import annotations

from cluster.apiserver.auth import raykube_policy as policy


def test_every_binding_names_a_role_of_the_module_and_a_kube_system_account() -> None:
    cluster_roles = {r["metadata"]["name"] for r in policy.cluster_roles()}
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in policy.roles()}
    for binding in policy.cluster_role_bindings():
        assert binding["roleRef"] == {
            "apiGroup": policy.RBAC,
            "kind": "ClusterRole",
            "name": binding["metadata"]["name"],
        }
        assert binding["roleRef"]["name"] in cluster_roles
    for binding in policy.role_bindings():
        assert (binding["metadata"]["namespace"], binding["roleRef"]["name"]) in roles
        assert binding["roleRef"]["kind"] == "Role"
    for binding in [*policy.cluster_role_bindings(), *policy.role_bindings()]:
        assert binding["subjects"] and all(
            s["kind"] == "ServiceAccount" and s["namespace"] == "kube-system" for s in binding["subjects"]
        )


def test_least_privilege_no_wildcards_no_secret_writes() -> None:
    for role in [*policy.cluster_roles(), *policy.roles()]:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
            if "secrets" in rule["resources"]:
                assert set(rule["verbs"]) <= {"list", "watch"}, role["metadata"]["name"]
    # Names the ingress and DNS add-ons write in kube-system are pinned by resourceNames.
    for role in policy.roles():
        for rule in role["rules"]:
            if (
                set(rule["verbs"]) & {"update", "patch"}
                and role["metadata"]["name"] != "system:raykube:control-plane-pods"
            ):
                assert rule.get("resourceNames"), (role["metadata"]["name"], rule)
