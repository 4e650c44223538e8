"""Escalation prevention through the real kubectl: a user allowed to create Roles and RoleBindings
cannot grant more than they hold (kube's 403 text, missing rules listed), until given ``escalate``
on roles or ``bind`` on the referenced ClusterRole."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from tests.integration.conftest import Kubectl, RaykubeCluster
from tests.integration.test_access_reviews_kubectl import SETTLE, as_user

pytestmark = pytest.mark.integration


def role(name: str, verbs: str) -> str:
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: {name}}}
rules: [{{apiGroups: [""], resources: [pods], verbs: [{verbs}]}}]
"""


def binding(name: str, kind: str, ref: str, user: str) -> str:
    return f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: {name}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: {kind}, name: {ref}}}
subjects: [{{kind: User, name: {user}, apiGroup: rbac.authorization.k8s.io}}]
"""


def retry_until_created(k: Kubectl, manifest: str) -> str:
    """Apply until it succeeds (a grant just made reaches the authorizer through a watch)."""
    deadline = time.monotonic() + SETTLE
    while True:
        proc = k.run("create", "-f", "-", input=manifest, check=False)
        if proc.returncode == 0 or time.monotonic() > deadline:
            return proc.stdout + proc.stderr
        time.sleep(0.3)


def test_no_granting_what_one_does_not_hold(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    ns = kubectl.namespace
    erin = f"erin-{secrets.token_hex(3)}"
    kubectl.apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: delegator}}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [create, get, list]
---
{binding("erin-delegates", "Role", "delegator", erin)}
"""
    )
    erin_k = as_user(raykube_cluster, tmp_path, erin, ("system:authenticated",), str(ns))
    groups = '(groups=["system:authenticated"])'
    held = retry_until_created(erin_k, role("reader", "get"))
    more = erin_k.run("create", "-f", "-", input=role("deleter", "get, delete"), check=False)
    bind = erin_k.run(
        "create", "-f", "-", input=binding("erin-edits", "ClusterRole", "edit", erin), check=False
    )
    kubectl.apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: escalator}}
rules:
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles]
  verbs: [escalate]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [clusterroles]
  resourceNames: [edit]
  verbs: [bind]
---
{binding("erin-escalates", "Role", "escalator", erin)}
"""
    )
    escalated = retry_until_created(erin_k, role("deleter", "get, delete"))
    bound = retry_until_created(erin_k, binding("erin-edits", "ClusterRole", "edit", erin))

    assert "role.rbac.authorization.k8s.io/reader created" in held
    assert more.returncode != 0
    assert more.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": '
        f'roles.rbac.authorization.k8s.io "deleter" is forbidden: user "{erin}" {groups} '
        "is attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}'
    )
    assert bind.returncode != 0
    assert (
        f'rolebindings.rbac.authorization.k8s.io "erin-edits" is forbidden: user "{erin}" {groups} '
        "is attempting to grant RBAC permissions not currently held:\n"
    ) in bind.stderr
    assert "role.rbac.authorization.k8s.io/deleter created" in escalated
    assert "rolebinding.rbac.authorization.k8s.io/erin-edits created" in bound
