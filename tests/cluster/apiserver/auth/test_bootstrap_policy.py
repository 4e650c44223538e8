"""The default RBAC policy's shape and its reconcile (kube's bootstrap-roles hook): missing pieces
added, an operator's additions kept, autoupdate false respected, aggregated rules left alone."""

from __future__ import annotations

import copy
from typing import Any

from cluster.apiserver.auth.bootstrap_policy import (
    AUTOUPDATE,
    cluster_role_bindings,
    cluster_roles,
    default_policy,
    reconciled,
)


def by_name(objs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objs}


def test_every_binding_refers_to_a_role_of_the_policy_and_names_are_unique() -> None:
    policy = default_policy()
    keys = [(plural, o["metadata"].get("namespace"), o["metadata"]["name"]) for plural, o in policy]
    assert len(keys) == len(set(keys))
    roles = {
        (o["metadata"].get("namespace"), o["metadata"]["name"])
        for p, o in policy
        if p in ("roles", "clusterroles")
    }
    for plural, obj in policy:
        if plural.endswith("bindings"):
            ref = obj["roleRef"]
            scope = obj["metadata"].get("namespace") if ref["kind"] == "Role" else None
            assert (scope, ref["name"]) in roles, obj["metadata"]["name"]


def test_controller_roles_are_bound_to_their_service_accounts() -> None:
    bindings = by_name(cluster_role_bindings())
    controllers = [n for n in by_name(cluster_roles()) if n.startswith("system:controller:")]
    assert "system:controller:clusterrole-aggregation-controller" in controllers
    for name in controllers:
        assert bindings[name]["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": name.removeprefix("system:controller:"),
                "namespace": "kube-system",
            }
        ]
    assert by_name(cluster_role_bindings())["cluster-admin"]["subjects"][0]["name"] == "system:masters"
    assert by_name(cluster_role_bindings())["system:node"]["subjects"] == []


def test_reconcile_adds_what_is_missing_and_keeps_the_rest() -> None:
    expected = by_name(cluster_roles())["system:basic-user"]
    mine = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}
    existing = copy.deepcopy(expected)
    existing["rules"] = [expected["rules"][0], mine]
    existing["metadata"]["labels"] = {"team": "x"}
    new = reconciled(existing, expected)
    assert new is not None
    assert new["rules"] == [expected["rules"][0], mine, expected["rules"][1]]
    assert new["metadata"]["labels"] == {"team": "x", "kubernetes.io/bootstrapping": "rbac-defaults"}
    assert reconciled(new, expected) is None  # nothing missing any more
    existing["metadata"]["annotations"] = {AUTOUPDATE: "false"}
    assert reconciled(existing, expected) is None


def test_aggregated_roles_keep_their_rules_and_bindings_gain_subjects() -> None:
    view = by_name(cluster_roles())["view"]
    existing = copy.deepcopy(view)
    existing["rules"] = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    existing["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    new = reconciled(existing, view)
    assert new is not None
    assert new["rules"] == existing["rules"]  # the aggregation controller owns them
    assert new["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"x": "y"}},
        *view["aggregationRule"]["clusterRoleSelectors"],
    ]
    binding = by_name(cluster_role_bindings())["system:public-info-viewer"]
    trimmed = copy.deepcopy(binding)
    trimmed["subjects"] = trimmed["subjects"][:1]
    again = reconciled(trimmed, binding)
    assert again is not None and again["subjects"] == binding["subjects"]
