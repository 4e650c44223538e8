"""rbac.authorization.k8s.io/v1: Roles, ClusterRoles, RoleBindings and ClusterRoleBindings.

Names follow path-segment rules (':' allowed). A binding's roleRef never changes after creation.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    dicts,
    go_quote,
    index,
    invalid,
    not_supported,
    required,
)

RBAC_GROUP = "rbac.authorization.k8s.io"


def _rule(rule: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not as_list(rule.get("verbs")):
        causes.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = as_list(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            causes.append(
                invalid(
                    child(path, "nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"
                )
            )
        if any(as_list(rule.get(f)) for f in ("apiGroups", "resources", "resourceNames")):
            causes.append(
                invalid(
                    child(path, "nonResourceURLs"),
                    urls,
                    "rules cannot apply to both regular resources and non-resource URLs",
                )
            )
        return causes
    if not as_list(rule.get("apiGroups")):
        causes.append(required(child(path, "apiGroups"), "resource rules must supply at least one api group"))
    if not as_list(rule.get("resources")):
        causes.append(required(child(path, "resources"), "resource rules must supply at least one resource"))
    return causes


def validate_role(role: dict[str, Any]) -> list[Cause]:
    return [c for i, r in enumerate(dicts(role.get("rules"))) for c in _rule(r, True, index("rules", i))]


def validate_cluster_role(role: dict[str, Any]) -> list[Cause]:
    causes = [c for i, r in enumerate(dicts(role.get("rules"))) for c in _rule(r, False, index("rules", i))]
    agg = role.get("aggregationRule")
    if agg is not None and not as_list(as_dict(agg).get("clusterRoleSelectors")):
        causes.append(
            required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            )
        )
    return causes


def _subject(subject: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    name, kind, group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        causes.append(required(child(path, "name")))
    if kind == "ServiceAccount":
        if name:
            causes.extend(invalid(child(path, "name"), name, m) for m in names.subdomain_name(name))
        if group:
            causes.append(not_supported(child(path, "apiGroup"), group, ("",)))
        if not namespaced and not subject.get("namespace"):
            causes.append(required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if group != RBAC_GROUP:
            causes.append(not_supported(child(path, "apiGroup"), group, (RBAC_GROUP,)))
    else:
        causes.append(not_supported(child(path, "kind"), kind, ("ServiceAccount", "User", "Group")))
    return causes


def _binding(binding: dict[str, Any], namespaced: bool) -> list[Cause]:
    ref = as_dict(binding.get("roleRef"))
    causes: list[Cause] = []
    if ref.get("apiGroup", "") != RBAC_GROUP:
        causes.append(not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), (RBAC_GROUP,)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind", "") not in kinds:
        causes.append(not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    rname = ref.get("name") or ""
    if not rname:
        causes.append(required("roleRef.name"))
    else:
        causes.extend(invalid("roleRef.name", rname, m) for m in names.path_segment_name(rname))
    for i, s in enumerate(dicts(binding.get("subjects"))):
        causes += _subject(s, namespaced, index("subjects", i))
    return causes


def validate_role_binding(binding: dict[str, Any]) -> list[Cause]:
    return _binding(binding, True)


def validate_cluster_role_binding(binding: dict[str, Any]) -> list[Cause]:
    return _binding(binding, False)


def validate_binding_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    nr, orf = as_dict(new.get("roleRef")), as_dict(old.get("roleRef"))
    if nr == orf:
        return []
    literal = GoLiteral(
        f"rbac.RoleRef{{APIGroup:{go_quote(str(nr.get('apiGroup', '')))}, "
        f"Kind:{go_quote(str(nr.get('kind', '')))}, Name:{go_quote(str(nr.get('name', '')))}}}"
    )
    return [invalid("roleRef", literal, "cannot change roleRef")]
