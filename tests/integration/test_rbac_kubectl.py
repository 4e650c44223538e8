"""Issue 16's RBAC acceptance with the real kubectl: `kubectl auth can-i` (plain, ``--list``, ``-n``,
``--as``, ``--as-group``) answers as Kubernetes for users bound through Roles, ClusterRoles (by a
RoleBinding: that namespace only; by a ClusterRoleBinding: everywhere), groups, aggregated roles and
ServiceAccounts; the Node authorizer keeping one node's identity away from another node's pods'
Secrets. Escalation and impersonation: test_rbac_escalation_kubectl.

Users are client certificates issued from the session cluster's CA (CN user, O groups); kubectl
prints ``yes``/exit 0 or ``no``/exit 1. Refusals are checked against kube's exact texts, both as
kubectl prints them and as the Status the API server returns.
"""

from __future__ import annotations

import base64
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
