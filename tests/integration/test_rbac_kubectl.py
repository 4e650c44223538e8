"""Issue 16's RBAC acceptance with the real kubectl: `kubectl auth can-i` (plain, ``--list``, ``-n``,
``--as``, ``--as-group``) answers as Kubernetes for users bound through Roles, ClusterRoles (by a
RoleBinding: that namespace only; by a ClusterRoleBinding: everywhere), groups, aggregated roles and
ServiceAccounts; escalation prevention (``escalate``/``bind``); impersonation for admins only; the
Node authorizer keeping one node's identity away from another node's pods' Secrets.

Users are client certificates issued from the session cluster's CA (CN user, O groups); kubectl
prints ``yes``/exit 0 or ``no``/exit 1. Refusals are checked against kube's exact texts, both as
kubectl prints them and as the Status the API server returns.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.integration.auth_support import (
    NO,
    YES,
    admin,
    answer,
    can_i,
    create_token,
    eventually,
    forbidden_list,
    list_rules,
    settled_answer,
    token_kubeconfig,
    unique,
    user,
    verbs_of,
)
from tests.integration.conftest import Kubectl, RaykubeCluster

pytestmark = pytest.mark.integration

RBAC = "rbac.authorization.k8s.io"


@pytest.fixture
def other_namespace(raykube_cluster: RaykubeCluster) -> Iterator[str]:
    name = unique("t-other")
    admin(raykube_cluster).out("create", "namespace", name)
    yield name
    admin(raykube_cluster).run("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def cluster_scoped(raykube_cluster: RaykubeCluster) -> Iterator[list[str]]:
    """Cluster-scoped objects a test makes (``kind/name``), deleted afterwards."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        admin(raykube_cluster).run("delete", ref, "--ignore-not-found", check=False)


def apply(kubectl: Kubectl, manifest: str) -> None:
    kubectl.out("apply", "-f", "-", input=manifest)


# ------------------------------------------------------------------------------------ can-i


def test_can_i_role_applies_in_its_namespace_only(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, other_namespace: str
) -> None:
    alice = user(raykube_cluster, tmp_path, unique("alice"), ("developers",))
    ns = admin(raykube_cluster, namespace)
    ns.out("create", "role", "pod-reader", "--verb=get,list,watch", "--resource=pods")
    ns.out("create", "rolebinding", "read-pods", "--role=pod-reader", f"--user={alice.name}")
    kubectl = alice.kubectl()
    assert settled_answer(kubectl, YES, "list", "pods", "-n", namespace) == YES
    assert answer(kubectl, "get", "pods", "-n", namespace) == YES
    assert answer(kubectl, "watch", "pods", "-n", namespace) == YES
    assert answer(kubectl, "get", "pods/mypod", "-n", namespace) == YES
    assert answer(kubectl, "delete", "pods", "-n", namespace) == NO
    # pods/NAME is a resource name to kubectl; a subresource is asked with --subresource.
    assert answer(kubectl, "get", "pods", "--subresource=log", "-n", namespace) == NO
    assert answer(kubectl, "get", "secrets", "-n", namespace) == NO
    assert answer(kubectl, "list", "pods", "-n", other_namespace) == NO
    assert answer(kubectl, "list", "pods", "--all-namespaces") == NO
    assert answer(kubectl, "list", "deployments.apps", "-n", namespace) == NO
    # kubectl 1.27 asks through the same SelfSubjectAccessReview and gets the same answers.
    old = alice.kubectl(version="1.27")
    assert answer(old, "list", "pods", "-n", namespace) == YES
    assert answer(old, "list", "pods", "-n", other_namespace) == NO

    here = list_rules(kubectl, "-n", namespace)
    assert verbs_of(here, "pods") == {"get", "list", "watch"}
    assert here["pods"] == [("[]", "[]", "[get list watch]")]
    # Every authenticated user may ask about itself (system:basic-user) and read discovery.
    for review in (
        "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io",
    ):
        assert verbs_of(here, review) == {"create"}, here
    assert "secrets" not in here
    there = list_rules(kubectl, "-n", other_namespace)
    assert "pods" not in there, there
    assert verbs_of(there, "selfsubjectaccessreviews.authorization.k8s.io") == {"create"}


# What kubectl 1.33 prints for an authenticated user without bindings on a new Kubernetes cluster:
# system:basic-user (the three self reviews), system:discovery and system:public-info-viewer (both
# grant /healthz, /livez, /readyz, /version and /version/, so those rows come twice: kubectl compacts
# resource rules only), sorted by the rules' string form (verbs first).
FRESH_USER_LIST = """\
Resources                                       Non-Resource URLs   Resource Names   Verbs
selfsubjectreviews.authentication.k8s.io        []                  []               [create]
selfsubjectaccessreviews.authorization.k8s.io   []                  []               [create]
selfsubjectrulesreviews.authorization.k8s.io    []                  []               [create]
                                                [/api/*]            []               [get]
                                                [/api]              []               [get]
                                                [/apis/*]           []               [get]
                                                [/apis]             []               [get]
                                                [/healthz]          []               [get]
                                                [/healthz]          []               [get]
                                                [/livez]            []               [get]
                                                [/livez]            []               [get]
                                                [/openapi/*]        []               [get]
                                                [/openapi]          []               [get]
                                                [/readyz]           []               [get]
                                                [/readyz]           []               [get]
                                                [/version/]         []               [get]
                                                [/version/]         []               [get]
                                                [/version]          []               [get]
                                                [/version]          []               [get]
"""


def test_can_i_list_of_a_user_without_bindings_is_kubes(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str
) -> None:
    nobody = user(raykube_cluster, tmp_path, unique("nobody"))
    out = nobody.kubectl().out("auth", "can-i", "--list", "-n", namespace, namespaced=False)
    assert out == FRESH_USER_LIST


def test_can_i_cluster_role_by_role_binding_and_by_cluster_role_binding(
    raykube_cluster: RaykubeCluster,
    tmp_path: Path,
    namespace: str,
    other_namespace: str,
    cluster_scoped: list[str],
) -> None:
    bob = user(raykube_cluster, tmp_path, unique("bob"))
    cm_reader, svc_reader = unique("cm-reader"), unique("svc-reader")
    cluster = admin(raykube_cluster)
    cluster.out("create", "clusterrole", cm_reader, "--verb=get,list", "--resource=configmaps")
    cluster_scoped.append(f"clusterrole/{cm_reader}")
    cluster.out("create", "clusterrole", svc_reader, "--verb=list", "--resource=services")
    cluster_scoped.append(f"clusterrole/{svc_reader}")
    # A ClusterRole through a RoleBinding: its rules, in the binding's namespace only.
    admin(raykube_cluster, namespace).out(
        "create", "rolebinding", "cm", f"--clusterrole={cm_reader}", f"--user={bob.name}"
    )
    # Through a ClusterRoleBinding: in every namespace and at the cluster scope.
    cluster.out(
        "create", "clusterrolebinding", svc_reader, f"--clusterrole={svc_reader}", f"--user={bob.name}"
    )
    cluster_scoped.append(f"clusterrolebinding/{svc_reader}")

    kubectl = bob.kubectl()
    assert settled_answer(kubectl, YES, "list", "configmaps", "-n", namespace) == YES
    assert answer(kubectl, "list", "configmaps", "-n", other_namespace) == NO
    assert answer(kubectl, "list", "configmaps", "--all-namespaces") == NO
    assert settled_answer(kubectl, YES, "list", "services", "-n", namespace) == YES
    assert answer(kubectl, "list", "services", "-n", other_namespace) == YES
    assert answer(kubectl, "list", "services", "--all-namespaces") == YES
    assert answer(kubectl, "get", "services", "-n", namespace) == NO

    rows = list_rules(kubectl, "-n", namespace)
    assert verbs_of(rows, "configmaps") == {"get", "list"}
    assert verbs_of(rows, "services") == {"list"}
    rows = list_rules(kubectl, "-n", other_namespace)
    assert "configmaps" not in rows
    assert verbs_of(rows, "services") == {"list"}

    # The answers hold for real requests: listing services everywhere works, configmaps do not.
    assert kubectl.run("get", "services", "-A", namespaced=False).returncode == 0
    err = kubectl.fails("get", "configmaps", "-n", other_namespace, namespaced=False)
    assert forbidden_list(bob.name, "configmaps", namespace=other_namespace) in err


def test_can_i_for_groups_and_as_group(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, other_namespace: str
) -> None:
    group = unique("readers")
    carol = user(raykube_cluster, tmp_path, unique("carol"), (group, "other-group"))
    dave = user(raykube_cluster, tmp_path, unique("dave"), ("other-group",))
    admin(raykube_cluster, namespace).out(
        "create", "rolebinding", "group-view", "--clusterrole=view", f"--group={group}"
    )
    assert settled_answer(carol.kubectl(), YES, "list", "pods", "-n", namespace) == YES
    assert answer(carol.kubectl(), "list", "pods", "-n", other_namespace) == NO
    assert answer(carol.kubectl(), "get", "secrets", "-n", namespace) == NO
    assert answer(dave.kubectl(), "list", "pods", "-n", namespace) == NO
    # The admin asks as dave, then as dave in the group.
    boss = admin(raykube_cluster)
    assert answer(boss, "list", "pods", "-n", namespace, "--as", dave.name) == NO
    assert answer(boss, "list", "pods", "-n", namespace, "--as", dave.name, "--as-group", group) == YES
    assert answer(boss, "create", "pods", "-n", namespace, "--as", dave.name, "--as-group", group) == NO


def test_aggregated_cluster_role_adds_to_view(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, cluster_scoped: list[str]
) -> None:
    erin = user(raykube_cluster, tmp_path, unique("erin"))
    admin(raykube_cluster, namespace).out(
        "create", "rolebinding", "view", "--clusterrole=view", f"--user={erin.name}"
    )
    kubectl = erin.kubectl()
    assert settled_answer(kubectl, YES, "list", "pods", "-n", namespace) == YES
    assert answer(kubectl, "list", "deployments.apps", "-n", namespace) == YES
    assert answer(kubectl, "get", "secrets", "-n", namespace) == NO
    assert answer(kubectl, "list", "leases.coordination.k8s.io", "-n", namespace) == NO

    extra = unique("leases-to-view")
    apply(
        admin(raykube_cluster),
        f"""
apiVersion: {RBAC}/v1
kind: ClusterRole
metadata:
  name: {extra}
  labels: {{rbac.authorization.k8s.io/aggregate-to-view: "true"}}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch]
""",
    )
    cluster_scoped.append(f"clusterrole/{extra}")
    assert settled_answer(kubectl, YES, "list", "leases.coordination.k8s.io", "-n", namespace) == YES
    assert answer(kubectl, "create", "leases.coordination.k8s.io", "-n", namespace) == NO
    view = admin(raykube_cluster).json("get", "clusterrole", "view")
    assert {
        "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"],
        "verbs": ["get", "list", "watch"],
    } in (view["rules"])
    # view is itself aggregated into edit (and edit into admin): the rule flows on.
    edit_rules = eventually(
        lambda: admin(raykube_cluster).json("get", "clusterrole", "edit")["rules"],
        lambda rules: any("leases" in r.get("resources", []) for r in rules),
    )
    assert any("leases" in r.get("resources", []) for r in edit_rules)
    assert verbs_of(list_rules(kubectl, "-n", namespace), "leases.coordination.k8s.io") == {
        "get",
        "list",
        "watch",
    }

    admin(raykube_cluster).out("delete", "clusterrole", extra)
    assert settled_answer(kubectl, NO, "list", "leases.coordination.k8s.io", "-n", namespace) == NO
    assert answer(kubectl, "list", "pods", "-n", namespace) == YES


def test_can_i_for_service_accounts(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str, other_namespace: str
) -> None:
    ns = admin(raykube_cluster, namespace)
    ns.out("create", "serviceaccount", "robot")
    ns.out("create", "serviceaccount", "bystander")
    ns.out("create", "role", "pod-lister", "--verb=list", "--resource=pods")
    ns.out("create", "rolebinding", "robot", "--role=pod-lister", f"--serviceaccount={namespace}:robot")
    # Every ServiceAccount of the namespace, through its group: may list configmaps.
    ns.out("create", "role", "cm-lister", "--verb=list", "--resource=configmaps")
    ns.out(
        "create", "rolebinding", "all-sas", "--role=cm-lister", f"--group=system:serviceaccounts:{namespace}"
    )
    boss = admin(raykube_cluster)
    robot, bystander = (
        f"system:serviceaccount:{namespace}:robot",
        f"system:serviceaccount:{namespace}:bystander",
    )
    assert settled_answer(boss, YES, "list", "pods", "-n", namespace, "--as", robot) == YES
    assert answer(boss, "list", "pods", "-n", other_namespace, "--as", robot) == NO
    assert answer(boss, "list", "pods", "-n", namespace, "--as", bystander) == NO
    assert settled_answer(boss, YES, "list", "configmaps", "-n", namespace, "--as", bystander) == YES
    assert answer(boss, "list", "configmaps", "-n", other_namespace, "--as", bystander) == NO
    # With the robot's own token (TokenRequest), from its own point of view.
    token = token_kubeconfig(raykube_cluster, tmp_path, create_token(raykube_cluster, namespace, "robot"))
    assert answer(token, "list", "pods", "-n", namespace) == YES
    assert answer(token, "list", "configmaps", "-n", namespace) == YES
    assert answer(token, "delete", "pods", "-n", namespace) == NO
    assert answer(token, "list", "pods", "-n", other_namespace) == NO
    rows = list_rules(token, "-n", namespace)
    assert verbs_of(rows, "pods") == {"list"} and verbs_of(rows, "configmaps") == {"list"}
    assert token.run("get", "pods", "-n", namespace, namespaced=False).returncode == 0


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


# ------------------------------------------------------------------------------------ node authorizer


def test_node_identity_reads_only_its_own_pods_secrets(
    raykube_cluster: RaykubeCluster, tmp_path: Path, namespace: str
) -> None:
    """Two (fake) nodes, a pod bound to each with a Secret and a ConfigMap of its own: each node's
    identity (``system:node:<name>`` in ``system:nodes``) reads its pod's objects and not the other's.
    No Node object is needed: kube's graph links pod and node by ``spec.nodeName``."""
    ns = admin(raykube_cluster, namespace)
    nodes = {side: unique(f"fake-node-{side}") for side in ("a", "b")}
    for side, node in nodes.items():
        ns.out("create", "secret", "generic", f"secret-{side}", f"--from-literal=k={side}")
        ns.out("create", "configmap", f"config-{side}", f"--from-literal=k={side}")
        apply(
            ns,
            f"""
apiVersion: v1
kind: Pod
metadata: {{name: pod-{side}}}
spec:
  nodeName: {node}
  containers:
  - name: c
    image: busybox
    command: [sleep, "3600"]
    envFrom: [{{configMapRef: {{name: config-{side}}}}}]
  volumes: [{{name: s, secret: {{secretName: secret-{side}}}}}]
""",
        )
    agent = {
        side: user(raykube_cluster, tmp_path, f"system:node:{node}", ("system:nodes",))
        for side, node in nodes.items()
    }
    base = f"/api/v1/namespaces/{namespace}"

    def refusal(side: str, resource: str, name: str) -> tuple[Any, ...]:
        return (
            403,
            "Forbidden",
            f'{resource} "{name}" is forbidden: User "system:node:{nodes[side]}" cannot get resource '
            f'"{resource}" '
            f'in API group "" in the namespace "{namespace}": no relationship found between node '
            f"'{nodes[side]}' and this object",
        )

    for side, other in (("a", "b"), ("b", "a")):
        mine = eventually(
            partial(agent[side].caller.get, f"{base}/secrets/secret-{side}"), lambda r: r.status == 200
        )
        assert mine.status == 200, mine.body[:300]
        assert base64.b64decode(mine.json()["data"]["k"]).decode() == side
        assert agent[side].caller.get(f"{base}/configmaps/config-{side}").status == 200
        assert agent[side].caller.get(f"{base}/secrets/secret-{other}").status_fields() == refusal(
            side, "secrets", f"secret-{other}"
        )
        assert agent[side].caller.get(f"{base}/configmaps/config-{other}").status_fields() == refusal(
            side, "configmaps", f"config-{other}"
        )
    # A Secret no pod uses is no node's, and listing Secrets names none: both refused.
    ns.out("create", "secret", "generic", "unused", "--from-literal=k=v")
    assert agent["a"].caller.get(f"{base}/secrets/unused").status_fields() == refusal(
        "a", "secrets", "unused"
    )
    listing = agent["a"].caller.get(f"{base}/secrets")
    assert listing.status_fields()[:2] == (403, "Forbidden")
    assert listing.status_fields()[2].startswith(
        f'secrets is forbidden: User "system:node:{nodes["a"]}" cannot list resource "secrets"'
    )
    # kubectl as node a: its own pod's Secret yes, the other's no.
    kubectl = agent["a"].kubectl(namespace)
    assert kubectl.run("get", "secret", "secret-a").returncode == 0
    err = kubectl.fails("get", "secret", "secret-b")
    assert "Error from server (Forbidden): " + refusal("a", "secrets", "secret-b")[2] in err
    # Once its pod is gone, node a loses the Secret too.
    ns.out("delete", "pod", "pod-a", "--grace-period=0", "--force")
    gone = eventually(lambda: agent["a"].caller.get(f"{base}/secrets/secret-a"), lambda r: r.status == 403)
    assert gone.status_fields() == refusal("a", "secrets", "secret-a")
