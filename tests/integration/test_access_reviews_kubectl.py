"""`kubectl auth can-i` (SelfSubjectAccessReview, SubjectAccessReview through --as) and
`kubectl auth can-i --list` (SelfSubjectRulesReview) against the session cluster, for users bound
through a Role, a ClusterRole bound in one namespace, a group, an aggregated role and a
ServiceAccount: the answers Kubernetes gives for the same bindings."""

from __future__ import annotations

import secrets
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest

from cluster.apiserver.kubeconfig import kubeconfig_for_user
from cluster.apiserver.tls import Pki, issue_client_cert
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

SETTLE = 30.0  # bound on waiting for RBAC's watch to see a new binding (never a threshold)


def as_user(
    cluster: RaykubeCluster, tmp: Path, name: str, groups: tuple[str, ...], namespace: str
) -> Kubectl:
    pki = Pki.in_dir(cluster.data_dir / "pki")
    cert, key = issue_client_cert(pki, name, list(groups), days=1)
    path = kubeconfig_for_user(
        tmp / f"{name}.kubeconfig", server=cluster.server, pki=pki, user=name, cert_pem=cert, key_pem=key
    )
    return Kubectl(replace(cluster, kubeconfig=path), "1.33", namespace)


def can_i(k: Kubectl, *args: str) -> tuple[int, str]:
    proc = k.run("auth", "can-i", *args, check=False)
    return proc.returncode, proc.stdout.strip()


def settle(k: Kubectl, *args: str) -> None:
    """Wait until the authorizer has seen the bindings just made (one answer flips to yes)."""
    deadline = time.monotonic() + SETTLE
    while can_i(k, *args)[1] != "yes" and time.monotonic() < deadline:
        time.sleep(0.3)


def test_can_i_answers_as_kubernetes(
    raykube_cluster: RaykubeCluster, kubectl: Kubectl, tmp_path: Path
) -> None:
    ns = kubectl.namespace
    assert ns is not None
    carol = f"carol-{secrets.token_hex(3)}"
    group = f"viewers-{secrets.token_hex(3)}"
    widget_role = f"leases-view-{secrets.token_hex(3)}"
    kubectl.apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: pod-reader}}
rules:
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list]
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [settings]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: carol-reads}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}}
subjects: [{{kind: User, name: {carol}, apiGroup: rbac.authorization.k8s.io}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: viewers}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}}
subjects: [{{kind: Group, name: {group}, apiGroup: rbac.authorization.k8s.io}}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: robot}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: robot-edits}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}}
subjects: [{{kind: ServiceAccount, name: robot}}]
"""
    )
    admin = Kubectl(raykube_cluster, "1.33", None)
    admin.apply(
        f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {widget_role}
  labels: {{rbac.authorization.k8s.io/aggregate-to-view: "true"}}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list]
- apiGroups: [example.com]
  resources: [widgets]
  verbs: [get, list]
"""
    )
    try:
        c = as_user(raykube_cluster, tmp_path, carol, ("system:authenticated",), ns)
        v = as_user(raykube_cluster, tmp_path, "dora", (group,), ns)
        settle(c, "list", "pods")
        settle(v, "list", "leases.coordination.k8s.io")
        answers = {
            "carol list pods": can_i(c, "list", "pods"),
            "carol get pods/log": can_i(c, "get", "pods/log"),
            "carol get pods/exec": can_i(c, "create", "pods/exec"),
            "carol delete pods": can_i(c, "delete", "pods"),
            "carol list pods elsewhere": can_i(c, "list", "pods", "-n", "default"),
            "carol get configmap settings": can_i(c, "get", "configmaps/settings"),
            "carol get configmap other": can_i(c, "get", "configmaps/other"),
            "carol get configmaps": can_i(c, "get", "configmaps"),
            "carol get /logs": can_i(c, "get", "/logs"),
            "carol get /version": can_i(c, "get", "/version"),
            "dora get deployments": can_i(v, "get", "deployments.apps"),
            "dora get secrets": can_i(v, "get", "secrets"),
            "dora list leases (aggregated)": can_i(v, "list", "leases.coordination.k8s.io"),
            # kubectl sends a resource it cannot find in discovery as is, group and all, in the
            # resource field ("widgets.example.com" in the core group): no rule names that
            "dora list widgets (not served)": can_i(v, "list", "widgets.example.com"),
            "robot create deployments": can_i(
                admin, "create", "deployments.apps", "-n", ns, f"--as=system:serviceaccount:{ns}:robot"
            ),
            "robot create roles": can_i(
                admin,
                "create",
                "roles.rbac.authorization.k8s.io",
                "-n",
                ns,
                f"--as=system:serviceaccount:{ns}:robot",
            ),
            "carol via --as": can_i(admin, "list", "pods", "-n", ns, f"--as={carol}"),
            "admin anything": can_i(admin, "*", "*"),
        }
        listing = c.out("auth", "can-i", "--list")
    finally:
        admin.run("delete", "clusterrole", widget_role, check=False)

    yes, no = (0, "yes"), (1, "no")
    assert answers == {
        "carol list pods": yes,
        "carol get pods/log": yes,
        "carol get pods/exec": no,
        "carol delete pods": no,
        "carol list pods elsewhere": no,
        "carol get configmap settings": yes,
        "carol get configmap other": no,
        "carol get configmaps": no,
        "carol get /logs": no,
        "carol get /version": yes,
        "dora get deployments": yes,
        "dora get secrets": no,
        "dora list leases (aggregated)": yes,
        "dora list widgets (not served)": no,
        "robot create deployments": yes,
        "robot create roles": no,
        "carol via --as": yes,
        "admin anything": yes,
    }
    rows = {tuple(line.split()) for line in listing.splitlines()[1:]}
    assert listing.split()[:4] == ["Resources", "Non-Resource", "URLs", "Resource"]
    assert ("pods/log", "[]", "[]", "[get", "list]") in rows
    assert ("pods", "[]", "[]", "[get", "list]") in rows
    assert ("configmaps", "[]", "[settings]", "[get]") in rows
    assert ("selfsubjectaccessreviews.authorization.k8s.io", "[]", "[]", "[create]") in rows
    assert ("[/version]", "[]", "[get]") in rows or any(r[:2] == ("[/version]", "[]") for r in rows)
    assert not any(r[0] == "secrets" for r in rows)


def test_can_i_list_for_a_node_is_incomplete(raykube_cluster: RaykubeCluster, tmp_path: Path) -> None:
    """A node's permissions depend on its pods: the rules review says incomplete, with the Node
    authorizer's evaluation error, and kubectl still prints what RBAC lists."""
    node = as_user(raykube_cluster, tmp_path, "system:node:no-such-node", ("system:nodes",), "default")
    proc: subprocess.CompletedProcess[str] = node.run("auth", "can-i", "--list", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "selfsubjectaccessreviews.authorization.k8s.io" in proc.stdout
    code, answer = can_i(node, "get", "secrets/anything")
    assert (code, answer.splitlines()[0]) == (
        1,
        "no - no relationship found between node 'no-such-node' and this object",
    )
