"""The seed document's RBAC chapter (kubernetes-concepts.zh.md: "Role 和 ClusterRole的区别",
"Subject", "RoleBinding 和 ClusterRoleBinding"), each sentence as manifests applied with kubectl and
checked twice: with `kubectl auth can-i` and with real requests made as the subjects.

- A Role's rules apply in its own namespace only; a ClusterRole's are not tied to a namespace.
- Subjects are of three kinds: users, groups and ServiceAccounts.
- A RoleBinding grants in its namespace only (also when it names a ClusterRole); a
  ClusterRoleBinding grants in every namespace.

The manifests follow Kubernetes' RBAC documentation (pod-reader, secret-reader, read-pods, ...),
with unique names for the cluster-scoped ones; the users' kubeconfigs come from
`raykube kubeconfig --user NAME --group G`, as an operator makes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.integration.auth_support import (
    NO,
    YES,
    admin,
    anonymous,
    answer,
    cli_user,
    create_token,
    eventually,
    forbidden_list,
    settled_answer,
    token_kubeconfig,
    unique,
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
    jane = cli_user(raykube_cluster, tmp_path, unique("jane"))
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
    # The official Python client with jane's kubeconfig: the same answers.
    api = config.new_client_from_config(config_file=str(jane.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        assert core.list_namespaced_pod(dev).items == []
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_pod(prod)
        assert refused.value.status == 403
        status = json.loads(refused.value.body)
        assert (status["reason"], status["message"]) == (
            "Forbidden",
            forbidden_list(jane.name, "pods", namespace=prod),
        )
    finally:
        api.close()

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
    # kubectl prints the review's reason after its "no".
    assert answer(kubectl, "list", "pods", "-n", prod) == (
        'no - RBAC: role.rbac.authorization.k8s.io "pod-reader" not found\n',
        1,
    )


def test_cluster_role_by_role_binding_is_namespaced_and_by_cluster_role_binding_is_global(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespaces: tuple[str, str], cluster_scoped: list[str]
) -> None:
    dev, prod = namespaces
    secret_reader = unique("secret-reader")
    manager_group = unique("manager")
    dave = cli_user(raykube_cluster, tmp_path, unique("dave"))
    boss = cli_user(raykube_cluster, tmp_path, unique("boss"), (manager_group, "staff"))
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
    token = create_token(raykube_cluster, prod, "robot")
    kubectl = token_kubeconfig(raykube_cluster, tmp_path, token)
    assert answer(kubectl, "list", "pods", "-n", dev) == YES
    assert answer(kubectl, "list", "pods", "-n", prod) == NO
    assert kubectl.run("get", "pods", "-n", dev, namespaced=False).returncode == 0
    err = kubectl.fails("get", "pods", "-n", prod, namespaced=False)
    assert forbidden_list(robot, "pods", namespace=prod) in err
    # The official Python client with the bearer token only.
    configuration = client.Configuration()
    configuration.host = raykube_cluster.server
    configuration.ssl_ca_cert = str(anonymous(raykube_cluster, tmp_path / "ca").ca_file)
    configuration.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(configuration) as api:
        core = client.CoreV1Api(api)
        assert core.list_namespaced_pod(dev).items == []
        with pytest.raises(ApiException) as refused:
            core.list_namespaced_pod(prod)
        assert refused.value.status == 403
        assert json.loads(refused.value.body)["message"] == forbidden_list(robot, "pods", namespace=prod)
