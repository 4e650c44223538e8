"""Escalation prevention: a Role with more than the requester holds, or a binding of such a role,
is refused with kube's 403 text unless the requester may ``escalate``/``bind`` it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.admission.interfaces import Attributes, Operation
from cluster.apiserver.auth.authorization import build_authorizer
from cluster.apiserver.auth.escalation import RBACEscalationCheck
from cluster.apiserver.auth.options import SecurityOptions
from cluster.apiserver.auth.rbac import RBACAuthorizer
from cluster.apiserver.auth.user import UserInfo
from cluster.apiserver.errors import StatusError
from cluster.apiserver.resources import lookup

GROUP = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("system:authenticated",))
PODS_READ = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


def rbac_with(*extra_rules: dict[str, Any]) -> RBACAuthorizer:
    rbac = RBACAuthorizer()
    rbac.index.put(
        "roles",
        {"metadata": {"name": "alice", "namespace": "dev"}, "rules": [PODS_READ, *extra_rules]},
    )
    rbac.index.put(
        "rolebindings",
        {
            "metadata": {"name": "alice", "namespace": "dev"},
            "roleRef": {"kind": "Role", "name": "alice"},
            "subjects": [{"kind": "User", "name": "alice"}],
        },
    )
    rbac.index.put(
        "clusterroles",
        {
            "metadata": {"name": "cluster-admin"},
            "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
        },
    )
    return rbac


def check(
    rbac: RBACAuthorizer, plural: str, obj: dict[str, Any], user: UserInfo = ALICE, old: Any = None
) -> None:
    info = lookup(GROUP, "v1", plural)
    assert info is not None
    authorizer = build_authorizer(SecurityOptions(authorization_modes=("RBAC",)), rbac_authorizer=rbac)
    plugin = RBACEscalationCheck(authorizer, rbac)
    op = Operation.UPDATE if old is not None else Operation.CREATE
    attrs = Attributes(
        op, info, "dev", obj["metadata"]["name"], obj, datetime.now(UTC), old_object=old, user=user
    )
    asyncio.run(plugin.validate(attrs))


def role(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "r", "namespace": "dev"}, "rules": list(rules)}


def binding(kind: str, name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "b", "namespace": "dev"},
        "roleRef": {"apiGroup": GROUP, "kind": kind, "name": name},
        "subjects": [{"kind": "User", "name": "bob"}],
    }


def test_a_role_within_what_one_holds_is_allowed() -> None:
    check(rbac_with(), "roles", role({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}))


def test_a_role_with_more_is_refused_with_kubes_text() -> None:
    with pytest.raises(StatusError) as err:
        check(
            rbac_with(),
            "roles",
            role({"apiGroups": [""], "resources": ["pods", "secrets"], "verbs": ["get", "delete"]}),
        )
    assert err.value.code == 403
    assert err.value.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}'
    )


def test_escalate_and_bind_and_masters_are_exempt() -> None:
    escalate = {"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["escalate"]}
    check(rbac_with(escalate), "roles", role({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}))
    bind = {
        "apiGroups": [GROUP],
        "resources": ["clusterroles"],
        "resourceNames": ["cluster-admin"],
        "verbs": ["bind"],
    }
    check(rbac_with(bind), "rolebindings", binding("ClusterRole", "cluster-admin"))
    admin = UserInfo("root", groups=("system:masters",))
    check(rbac_with(), "rolebindings", binding("ClusterRole", "cluster-admin"), user=admin)


def test_binding_a_role_one_does_not_hold_is_refused() -> None:
    with pytest.raises(StatusError) as err:
        check(rbac_with(), "rolebindings", binding("ClusterRole", "cluster-admin"))
    assert err.value.code == 403
    assert err.value.message.startswith(
        'rolebindings.rbac.authorization.k8s.io "b" is forbidden: user "alice" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
    )
    check(rbac_with(), "rolebindings", binding("Role", "alice"))  # binding what one holds is fine


def test_binding_a_missing_role_is_a_bad_request() -> None:
    with pytest.raises(StatusError) as err:
        check(rbac_with(), "rolebindings", binding("Role", "ghost"))
    assert (err.value.code, err.value.message) == (400, 'roles.rbac.authorization.k8s.io "ghost" not found')


def test_an_update_of_only_owner_references_is_not_checked() -> None:
    old = binding("ClusterRole", "cluster-admin")
    new = {**old, "metadata": {**old["metadata"], "ownerReferences": [{"name": "x"}], "finalizers": ["f"]}}
    check(rbac_with(), "rolebindings", new, old=old)
    with pytest.raises(StatusError):
        check(rbac_with(), "rolebindings", {**new, "subjects": [{"kind": "User", "name": "eve"}]}, old=old)
