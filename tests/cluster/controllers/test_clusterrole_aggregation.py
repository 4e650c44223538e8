"""The aggregation of ClusterRoles: union of the selected roles' rules, name order, no duplicates,
never the role itself; and the default admin/edit/view chain filled from the bootstrap policy."""

from __future__ import annotations

from typing import Any

from cluster.apiserver.auth.bootstrap_policy import cluster_roles
from cluster.controllers.clusterrole_aggregation import aggregated_rules


def role(
    name: str, labels: dict[str, str], rules: list[dict[str, Any]], agg: str | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"name": name, "labels": labels}, "rules": rules}
    if agg:
        out["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {agg: "true"}}]}
    return out


def test_union_in_name_order_without_duplicates_or_itself() -> None:
    get = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    watch = {"apiGroups": [""], "resources": ["pods"], "verbs": ["watch"]}
    roles = [
        role("b", {"x": "true"}, [watch, get]),
        role("a", {"x": "true"}, [get]),
        role("c", {"y": "true"}, [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]),
    ]
    agg = role("agg", {"x": "true"}, [{"verbs": ["stale"]}], agg="x")
    assert aggregated_rules(agg, [*roles, agg]) == [get, watch]


def test_default_admin_edit_view_chain() -> None:
    roles = {r["metadata"]["name"]: r for r in cluster_roles()}
    for _ in range(3):  # the controller reaches the fixed point in as many passes as the chain is long
        for name in ("view", "edit", "admin"):
            roles[name] = {**roles[name], "rules": aggregated_rules(roles[name], roles.values())}
    view = roles["view"]["rules"]
    edit = roles["edit"]["rules"]
    admin = roles["admin"]["rules"]
    assert view == roles["system:aggregate-to-view"]["rules"]
    assert all(rule in edit for rule in view) and all(rule in admin for rule in edit)
    assert any("secrets" in r.get("resources", []) and "get" in r["verbs"] for r in edit)
    assert not any("secrets" in r.get("resources", []) for r in view)
    assert any("rolebindings" in r.get("resources", []) for r in admin)
    assert not any("rolebindings" in r.get("resources", []) for r in edit)
