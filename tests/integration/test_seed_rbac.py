"""The seed document's RBAC chapter (kubernetes-concepts.zh.md: "Role 和 ClusterRole的区别",
"Subject", "RoleBinding 和 ClusterRoleBinding"), each sentence as manifests applied with kubectl and
checked twice: with `kubectl auth can-i` and with real requests made as the subjects.

- A Role's rules apply in its own namespace only; a ClusterRole's are not tied to a namespace.
- Subjects are of three kinds: users, groups and ServiceAccounts.
- A RoleBinding grants in its namespace only (also when it names a ClusterRole); a
  ClusterRoleBinding grants in every namespace.

The manifests follow Kubernetes' RBAC documentation (pod-reader, secret-reader, read-pods, ...),
with unique names for the cluster-scoped ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.auth_support import (
    NO,
    YES,
    admin,
    answer,
    create_token,
    eventually,
    forbidden_list,
    settled_answer,
    token_kubeconfig,
    unique,
    user,
)
from tests.integration.conftest import RaykubeCluster

pytestmark = pytest.mark.integration


@pytest.fixture
def namespaces(raykube_cluster: RaykubeCluster) -> Iterator[tuple[str, str]]:
    """Two fresh namespaces: "development" and "production" of the documentation."""
    names = (unique("t-dev"), unique("t-prod"))
    for name in names:
        admin(raykube_cluster).out("create", "namespace", name)
    yield names
    for name in names:
        admin(raykube_cluster).run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def cluster_scoped(raykube_cluster: RaykubeCluster) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for ref in reversed(made):
        admin(raykube_cluster).run("delete", ref, "--ignore-not-found", check=False)


def test_role_applies_in_its_namespace_and_a_role_binding_binds_there_only(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespaces: tuple[str, str]
) -> None:
    dev, prod = namespaces
    jane = user(raykube_cluster, tmp_path, unique("jane"))
    admin(raykube_cluster).apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  namespace: {dev}
  name: pod-reader
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: {dev}
subjects:
- kind: User
  name: {jane.name}
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"""
    )
    kubectl = jane.kubectl()
    assert settled_answer(kubectl, YES, "list", "pods", "-n", dev) == YES
    assert answer(kubectl, "list", "pods", "-n", prod) == NO
    assert answer(kubectl, "list", "pods", "--all-namespaces") == NO
    assert kubectl.run("get", "pods", "-n", dev, namespaced=False).returncode == 0
    err = kubectl.fails("get", "pods", "-n", prod, namespaced=False)
    assert f"Error from server (Forbidden): {forbidden_list(jane.name, 'pods', namespace=prod)}" in err

    # A RoleBinding in the other namespace naming the Role finds no Role there: a Role belongs to
    # its namespace, so still nothing is granted in prod (RBAC's reason names the missing Role).
    admin(raykube_cluster).apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: {prod}
subjects:
- kind: User
  name: {jane.name}
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"""
    )
    expected = (
        f"{forbidden_list(jane.name, 'pods', namespace=prod)}: "
        'RBAC: role.rbac.authorization.k8s.io "pod-reader" not found'
    )
    reply = eventually(
        lambda: jane.caller.get(f"/api/v1/namespaces/{prod}/pods"), lambda r: r.status_fields()[2] == expected
    )
    assert reply.status_fields() == (403, "Forbidden", expected)
    assert answer(kubectl, "list", "pods", "-n", prod) == NO


def test_cluster_role_by_role_binding_is_namespaced_and_by_cluster_role_binding_is_global(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespaces: tuple[str, str], cluster_scoped: list[str]
) -> None:
    dev, prod = namespaces
    secret_reader = unique("secret-reader")
    manager_group = unique("manager")
    dave = user(raykube_cluster, tmp_path, unique("dave"))
    boss = user(raykube_cluster, tmp_path, unique("boss"), (manager_group,))
    for namespace in (dev, prod):
        admin(raykube_cluster, namespace).out("create", "secret", "generic", "s", "--from-literal=k=v")
    admin(raykube_cluster).apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {secret_reader}
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-secrets
  namespace: {dev}
subjects:
- kind: User
  name: {dave.name}
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: {secret_reader}
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {secret_reader}-global
subjects:
- kind: Group
  name: {manager_group}
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: {secret_reader}
  apiGroup: rbac.authorization.k8s.io
"""
    )
    cluster_scoped += [f"clusterrole/{secret_reader}", f"clusterrolebinding/{secret_reader}-global"]

    # dave: the ClusterRole's rules, through a RoleBinding, in dev only.
    dk = dave.kubectl()
    assert settled_answer(dk, YES, "get", "secrets", "-n", dev) == YES
    assert answer(dk, "get", "secrets", "-n", prod) == NO
    assert answer(dk, "list", "secrets", "--all-namespaces") == NO
    assert dk.out("get", "secret", "s", "-n", dev, "-o", "jsonpath={.data.k}", namespaced=False) == "dg=="
    err = dk.fails("get", "secrets", "-n", prod, namespaced=False)
    assert forbidden_list(dave.name, "secrets", namespace=prod) in err
    err = dk.fails("get", "secrets", "-A", namespaced=False)
    assert forbidden_list(dave.name, "secrets") in err

    # The manager group: through a ClusterRoleBinding, everywhere.
    bk = boss.kubectl()
    assert settled_answer(bk, YES, "list", "secrets", "--all-namespaces") == YES
    assert answer(bk, "get", "secrets", "-n", dev) == YES
    assert answer(bk, "get", "secrets", "-n", prod) == YES
    assert answer(bk, "delete", "secrets", "-n", prod) == NO
    listed = bk.out("get", "secrets", "-A", "-o", "name", namespaced=False).split()
    assert listed.count("secret/s") >= 2
    assert bk.run("get", "secret", "s", "-n", prod, namespaced=False).returncode == 0
    # A user outside the group gets none of it.
    assert answer(dk, "get", "secrets", "-n", prod) == NO


def test_service_account_subject(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespaces: tuple[str, str]
) -> None:
    """The third kind of subject: a ServiceAccount of one namespace, bound in another."""
    dev, prod = namespaces
    admin(raykube_cluster, prod).out("create", "serviceaccount", "robot")
    admin(raykube_cluster).apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: robot-views
  namespace: {dev}
subjects:
- kind: ServiceAccount
  name: robot
  namespace: {prod}
roleRef:
  kind: ClusterRole
  name: view
  apiGroup: rbac.authorization.k8s.io
"""
    )
    robot = f"system:serviceaccount:{prod}:robot"
    assert settled_answer(admin(raykube_cluster), YES, "list", "pods", "-n", dev, "--as", robot) == YES
    assert answer(admin(raykube_cluster), "list", "pods", "-n", prod, "--as", robot) == NO
    kubectl = token_kubeconfig(raykube_cluster, tmp_path, create_token(raykube_cluster, prod, "robot"))
    assert answer(kubectl, "list", "pods", "-n", dev) == YES
    assert answer(kubectl, "list", "pods", "-n", prod) == NO
    assert kubectl.run("get", "pods", "-n", dev, namespaced=False).returncode == 0
    err = kubectl.fails("get", "pods", "-n", prod, namespaced=False)
    assert forbidden_list(robot, "pods", namespace=prod) in err
