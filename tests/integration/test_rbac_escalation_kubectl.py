"""Issue 16's escalation prevention and impersonation with the real kubectl and raw requests:
a user allowed to write Roles and bindings cannot grant what it does not hold (kube's "attempting to
grant RBAC permissions not currently held" 403, naming the missing rules) unless it has ``escalate``
or ``bind``; ``kubectl --as`` works for admins and is refused to others with kube's impersonation
403. Users are client certificates from the session cluster's CA.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.auth_support import (
    NO,
    YES,
    admin,
    answer,
    can_i,
    eventually,
    forbidden_list,
    settled_answer,
    unique,
    user,
)
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def cluster_scoped(raykube_cluster: RaykubeCluster) -> Iterator[list[str]]:
    """Cluster-scoped objects a test makes (``kind/name``), deleted afterwards."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        admin(raykube_cluster).run("delete", ref, "--ignore-not-found", check=False)


def apply(kubectl: Kubectl, manifest: str) -> None:
    kubectl.out("apply", "-f", "-", input=manifest)


# ------------------------------------------------------------------------------------ escalation


def _escalation_message(resource: str, name: str, who: str, groups: list[str], missing: str) -> str:
    quoted = " ".join(json.dumps(g) for g in groups)
    return (
        f'{resource}.{RBAC} "{name}" is forbidden: user "{who}" (groups=[{quoted}]) is attempting to grant '
        f"RBAC permissions not currently held:\n{missing}"
    )


def test_escalation_needs_escalate_or_bind(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, cluster_scoped: list[str]
) -> None:
    esc = user(raykube_cluster, tmp_path, unique("esc"), ("escalators",))
    groups = ["escalators", "system:authenticated"]
    ns = admin(raykube_cluster, namespace)
    apply(
        ns,
        f"""
apiVersion: {RBAC}/v1
kind: Role
metadata: {{name: delegator}}
rules:
- apiGroups: [{RBAC}]
  resources: [roles, rolebindings]
  verbs: [create, get, list, update, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list]
""",
    )
    ns.out("create", "rolebinding", "delegator", "--role=delegator", f"--user={esc.name}")
    secret_reader = unique("secret-reader")
    admin(raykube_cluster).out("create", "clusterrole", secret_reader, "--verb=get", "--resource=secrets")
    cluster_scoped.append(f"clusterrole/{secret_reader}")
    kubectl = esc.kubectl(namespace)
    assert settled_answer(kubectl, YES, "create", "roles", "-n", namespace) == YES

    # What esc holds it may hand on.
    kubectl.out("create", "role", "subset", "--verb=get", "--resource=pods")
    kubectl.out("create", "rolebinding", "subset", "--role=subset", "--user=friend")

    # More than it holds: refused, with kube's message naming the missing rule.
    missing = '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    role = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "Role",
        "metadata": {"name": "too-much"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    }
    roles_path = f"/apis/{RBAC}/v1/namespaces/{namespace}/roles"
    refused = esc.caller.request("POST", roles_path, role)
    assert refused.status_fields() == (
        403,
        "Forbidden",
        _escalation_message("roles", "too-much", esc.name, groups, missing),
    )
    err = kubectl.fails("create", "role", "too-much", "--verb=get", "--resource=secrets")
    assert _escalation_message("roles", "too-much", esc.name, groups, missing) in err

    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "hand-out"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": secret_reader},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": "friend"}],
    }
    bindings_path = f"/apis/{RBAC}/v1/namespaces/{namespace}/rolebindings"
    refused = esc.caller.request("POST", bindings_path, binding)
    assert refused.status_fields() == (
        403,
        "Forbidden",
        _escalation_message("rolebindings", "hand-out", esc.name, groups, missing),
    )
    err = kubectl.fails(
        "create", "rolebinding", "hand-out", f"--clusterrole={secret_reader}", "--user=friend"
    )
    assert _escalation_message("rolebindings", "hand-out", esc.name, groups, missing) in err
    # Updating its own Role to more than it holds is refused the same way.
    subset = json.loads(kubectl.out("get", "role", "subset", "-o", "json"))
    subset["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    refused = esc.caller.request("PUT", f"{roles_path}/subset", subset)
    assert refused.status_fields() == (
        403,
        "Forbidden",
        _escalation_message("roles", "subset", esc.name, groups, missing),
    )

    # `bind` on that ClusterRole (by name) lets esc bind it, without holding its rules.
    apply(
        ns,
        f"""
apiVersion: {RBAC}/v1
kind: Role
metadata: {{name: may-bind}}
rules:
- apiGroups: [{RBAC}]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [{secret_reader}]
""",
    )
    ns.out("create", "rolebinding", "may-bind", "--role=may-bind", f"--user={esc.name}")
    # The grant is a Role in the namespace, so the question names it (kubectl warns, and asks).
    out, code, err = eventually(
        lambda: can_i(kubectl, "bind", f"clusterroles.{RBAC}/{secret_reader}", "-n", namespace),
        lambda got: got[1] == 0,
    )
    assert (out, code) == YES
    assert err.strip() == f"Warning: resource 'clusterroles' is not namespace scoped in group '{RBAC}'"
    created = esc.caller.request("POST", bindings_path, binding)
    assert created.status == 201, created.body[:500]
    # ... but `escalate` is still needed to write the rules themselves.
    assert esc.caller.request("POST", roles_path, role).status == 403

    # `escalate` on roles lets esc write rules it does not hold.
    apply(
        ns,
        f"""
apiVersion: {RBAC}/v1
kind: Role
metadata: {{name: may-escalate}}
rules:
- apiGroups: [{RBAC}]
  resources: [roles]
  verbs: [escalate]
""",
    )
    ns.out("create", "rolebinding", "may-escalate", "--role=may-escalate", f"--user={esc.name}")
    assert settled_answer(kubectl, YES, "escalate", f"roles.{RBAC}", "-n", namespace) == YES
    kubectl.out("create", "role", "too-much", "--verb=get", "--resource=secrets")
    assert ns.json("get", "role", "too-much")["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]
    # esc still cannot read Secrets itself: writing a rule is not holding it.
    assert answer(esc.kubectl(), "get", "secrets", "-n", namespace) == NO


def test_binding_cluster_admin_needs_bind(
    raykube_cluster: RaykubeCluster, tmp_path: Path, cluster_scoped: list[str]
) -> None:
    """A user allowed to create ClusterRoleBindings cannot make itself cluster-admin, until it holds
    ``bind`` on that ClusterRole: the missing rules are cluster-admin's two wildcard rules."""
    mallory = user(raykube_cluster, tmp_path, unique("mallory"))
    boss = admin(raykube_cluster)
    binder = unique("crb-writer")
    boss.out(
        "create", "clusterrole", binder, "--verb=create,get,list", f"--resource=clusterrolebindings.{RBAC}"
    )
    cluster_scoped.append(f"clusterrole/{binder}")
    boss.out("create", "clusterrolebinding", binder, f"--clusterrole={binder}", f"--user={mallory.name}")
    cluster_scoped.append(f"clusterrolebinding/{binder}")
    name = unique("mallory-admin")
    cluster_scoped.append(f"clusterrolebinding/{name}")
    kubectl = mallory.kubectl()
    # -A: cluster-scoped questions without a namespace (kubectl would warn about "default").
    assert settled_answer(kubectl, YES, "create", f"clusterrolebindings.{RBAC}", "-A") == YES
    binding = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": RBAC, "kind": "User", "name": mallory.name}],
    }
    path = f"/apis/{RBAC}/v1/clusterrolebindings"
    missing = '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}'
    expected = _escalation_message(
        "clusterrolebindings", name, mallory.name, ["system:authenticated"], missing
    )
    assert mallory.caller.request("POST", path, binding).status_fields() == (403, "Forbidden", expected)
    err = kubectl.fails(
        "create", "clusterrolebinding", name, "--clusterrole=cluster-admin", f"--user={mallory.name}"
    )
    assert expected in err
    assert answer(kubectl, "list", "secrets", "--all-namespaces") == NO

    may_bind = unique("bind-cluster-admin")
    apply(
        boss,
        f"""
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: {may_bind}}}
rules:
- apiGroups: [{RBAC}]
  resources: [clusterroles]
  verbs: [bind]
  resourceNames: [cluster-admin]
""",
    )
    cluster_scoped.append(f"clusterrole/{may_bind}")
    boss.out("create", "clusterrolebinding", may_bind, f"--clusterrole={may_bind}", f"--user={mallory.name}")
    cluster_scoped.append(f"clusterrolebinding/{may_bind}")
    assert settled_answer(kubectl, YES, "bind", f"clusterroles.{RBAC}/cluster-admin", "-A") == YES
    created = mallory.caller.request("POST", path, binding)
    assert created.status == 201, created.body[:500]
    assert settled_answer(kubectl, YES, "list", "secrets", "--all-namespaces") == YES


# ------------------------------------------------------------------------------------ impersonation


def test_impersonation_is_for_admins_only(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, cluster_scoped: list[str]
) -> None:
    alice = user(raykube_cluster, tmp_path, unique("alice"))
    bob_name = unique("bob")
    ns = admin(raykube_cluster, namespace)
    ns.out("create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    ns.out("create", "rolebinding", "alice", "--role=pod-reader", f"--user={alice.name}")
    ns.out("create", "serviceaccount", "robot")
    boss = admin(raykube_cluster)

    # The admin, as alice, gets alice's answers and alice's refusals.
    assert settled_answer(boss, YES, "list", "pods", "-n", namespace, "--as", alice.name) == YES
    assert answer(boss, "get", "secrets", "-n", namespace, "--as", alice.name) == NO
    assert boss.run("get", "pods", "-n", namespace, "--as", alice.name).returncode == 0
    err = boss.fails("get", "configmaps", "-n", namespace, "--as", alice.name)
    assert forbidden_list(alice.name, "configmaps", namespace=namespace) in err

    # alice may not impersonate anyone: kube's impersonation 403, from kubectl and as a Status.
    as_bob = (
        f'users "{bob_name}" is forbidden: User "{alice.name}" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    )
    err = alice.kubectl(namespace).fails("get", "pods", "--as", bob_name)
    assert f"Error from server (Forbidden): {as_bob}" in err
    out, code, err = can_i(alice.kubectl(), "list", "pods", "-n", namespace, "--as", bob_name)
    assert code == 1 and as_bob in err, (out, err)
    reply = alice.caller.request(
        "GET", f"/api/v1/namespaces/{namespace}/pods", headers={"Impersonate-User": bob_name}
    )
    assert reply.status_fields() == (403, "Forbidden", as_bob)
    assert reply.json()["details"] == {"name": bob_name, "kind": "users"}
    err = alice.kubectl(namespace).fails("get", "pods", "--as", f"system:serviceaccount:{namespace}:robot")
    assert (
        f'serviceaccounts "robot" is forbidden: User "{alice.name}" cannot impersonate resource '
        f'"serviceaccounts" in API group "" in the namespace "{namespace}"'
    ) in err
    reply = alice.caller.request(
        "GET",
        "/api/v1/nodes",
        headers={"Impersonate-User": alice.name, "Impersonate-Group": "system:masters"},
    )
    assert reply.status == 403, reply.body[:300]
    # Impersonating oneself needs the grant as well (kube checks every impersonated name).
    assert reply.json()["message"].startswith(
        f'users "{alice.name}" is forbidden: User "{alice.name}" cannot impersonate'
    )

    # Granted `impersonate` on bob alone, alice acts as bob (who may do nothing) and as no one else.
    role = unique("impersonate-bob")
    apply(
        boss,
        f"""
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- apiGroups: [""]
  resources: [users]
  verbs: [impersonate]
  resourceNames: [{bob_name}]
""",
    )
    cluster_scoped.append(f"clusterrole/{role}")
    boss.out("create", "clusterrolebinding", role, f"--clusterrole={role}", f"--user={alice.name}")
    cluster_scoped.append(f"clusterrolebinding/{role}")
    err = eventually(
        lambda: alice.kubectl(namespace).fails("get", "pods", "--as", bob_name),
        lambda e: "impersonate" not in e,
    )
    assert f"Error from server (Forbidden): {forbidden_list(bob_name, 'pods', namespace=namespace)}" in err
    err = alice.kubectl(namespace).fails("get", "pods", "--as", "carol")
    assert 'users "carol" is forbidden' in err
