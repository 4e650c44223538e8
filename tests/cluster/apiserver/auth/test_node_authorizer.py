"""The Node authorizer: a node reads only what the pods bound to it refer to (directly, or through a
bound claim's PersistentVolume), its own Lease and CSINode, and otherwise the static node rules."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.auth.authorizer import Decision
from cluster.apiserver.auth.node_authorizer import NodeAuthorizer
from cluster.apiserver.auth.request_info import attributes
from cluster.apiserver.auth.user import UserInfo

N1 = UserInfo("system:node:n1", groups=("system:nodes", "system:authenticated"))
RELATION = "no relationship found between node 'n1' and this object"


def pod(name: str, node: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "app"}, "spec": {"nodeName": node, **spec}}


def authorizer() -> NodeAuthorizer:
    authz = NodeAuthorizer()
    g = authz.graph
    g.put_pod(
        "/registry/pods/app/web",
        pod(
            "web",
            "n1",
            serviceAccountName="web-sa",
            imagePullSecrets=[{"name": "pull"}],
            volumes=[
                {"name": "s", "secret": {"secretName": "tls"}},
                {"name": "p", "projected": {"sources": [{"configMap": {"name": "proj-cm"}}]}},
                {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            containers=[
                {
                    "name": "c",
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}}],
                    "envFrom": [{"configMapRef": {"name": "env-cm"}}],
                }
            ],
        ),
    )
    g.put_pod(
        "/registry/pods/app/other",
        pod("other", "n2", volumes=[{"name": "s", "secret": {"secretName": "theirs"}}]),
    )
    g.put_pod(
        "/registry/pods/app/pending",
        pod("pending", "", volumes=[{"name": "s", "secret": {"secretName": "later"}}]),
    )
    g.put_pv(
        {
            "metadata": {"name": "pv-data"},
            "spec": {
                "claimRef": {"namespace": "app", "name": "data"},
                "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-creds", "namespace": "storage"}},
            },
        }
    )
    g.put_pv({"metadata": {"name": "pv-else"}, "spec": {"claimRef": {"namespace": "app", "name": "else"}}})
    g.put_attachment({"metadata": {"name": "va-1"}, "spec": {"nodeName": "n1"}})
    return authz


@pytest.mark.parametrize(
    ("method", "path", "decision", "reason"),
    [
        ("GET", "/api/v1/namespaces/app/secrets/tls", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/secrets/pull", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/secrets/env-secret", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/configmaps/env-cm", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/configmaps/proj-cm", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/persistentvolumeclaims/data", Decision.ALLOW, ""),
        ("GET", "/api/v1/persistentvolumes/pv-data", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/storage/secrets/csi-creds", Decision.ALLOW, ""),
        ("GET", "/apis/storage.k8s.io/v1/volumeattachments/va-1", Decision.ALLOW, ""),
        ("POST", "/api/v1/namespaces/app/serviceaccounts/web-sa/token", Decision.ALLOW, ""),
        ("GET", "/api/v1/namespaces/app/secrets/theirs", Decision.NO_OPINION, RELATION),
        ("GET", "/api/v1/namespaces/app/secrets/later", Decision.NO_OPINION, RELATION),
        ("GET", "/api/v1/persistentvolumes/pv-else", Decision.NO_OPINION, RELATION),
        ("POST", "/api/v1/namespaces/app/serviceaccounts/default/token", Decision.NO_OPINION, RELATION),
        (
            "DELETE",
            "/api/v1/namespaces/app/secrets/tls",
            Decision.NO_OPINION,
            "can only read resources of this type",
        ),
        ("GET", "/api/v1/namespaces/app/secrets", Decision.NO_OPINION, "No Object name found"),
        (
            "PUT",
            "/api/v1/persistentvolumes/pv-data",
            Decision.NO_OPINION,
            "can only get individual resources of this type",
        ),
        ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", Decision.ALLOW, ""),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2",
            Decision.NO_OPINION,
            "can only access node lease with the same name as the requesting node",
        ),
        ("GET", "/apis/storage.k8s.io/v1/csinodes/n1", Decision.ALLOW, ""),
        ("GET", "/api/v1/pods", Decision.ALLOW, ""),  # static node rules
        ("PATCH", "/api/v1/nodes/n1/status", Decision.ALLOW, ""),
        ("DELETE", "/api/v1/namespaces/app/services/s", Decision.NO_OPINION, ""),
    ],
)
def test_node_requests(method: str, path: str, decision: Decision, reason: str) -> None:
    assert authorizer().authorize(attributes(method, path, {}, N1)) == (decision, reason)


def test_a_deleted_pod_takes_its_relations_with_it() -> None:
    authz = authorizer()
    asked = attributes("GET", "/api/v1/namespaces/app/secrets/tls", {}, N1)
    assert authz.authorize(asked)[0] is Decision.ALLOW
    authz.graph.remove_pod("/registry/pods/app/web")
    assert authz.authorize(asked) == (Decision.NO_OPINION, RELATION)


def test_other_users_and_impostors() -> None:
    authz = authorizer()
    not_in_group = UserInfo("system:node:n1", groups=("system:authenticated",))
    assert authz.authorize(attributes("GET", "/api/v1/namespaces/app/secrets/tls", {}, not_in_group)) == (
        Decision.NO_OPINION,
        "",
    )
    assert authz.rules_for(N1, "app").incomplete is True
    assert authz.rules_for(not_in_group, "app").incomplete is False


def test_the_chain_joins_the_reasons_of_every_authorizer_by_line() -> None:
    from cluster.apiserver.auth.authorization import build_authorizer
    from cluster.apiserver.auth.options import SecurityOptions
    from cluster.apiserver.auth.rbac import RBACAuthorizer

    rbac = RBACAuthorizer()
    rbac.index.put(
        "clusterrolebindings",
        {
            "metadata": {"name": "ghost"},
            "roleRef": {"kind": "ClusterRole", "name": "ghost"},
            "subjects": [{"kind": "Group", "name": "system:nodes"}],
        },
    )
    chain = build_authorizer(SecurityOptions(), rbac_authorizer=rbac, node=authorizer())
    decision, reason = chain.authorize(attributes("GET", "/api/v1/namespaces/app/secrets/theirs", {}, N1))
    assert decision is Decision.NO_OPINION
    assert reason == f'{RELATION}\nRBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found'
    rules = chain.rules_for(N1, "app")
    assert rules.incomplete is True
    assert rules.error == (
        "[node authorizer does not support user rule resolution, "
        'clusterrole.rbac.authorization.k8s.io "ghost" not found]'
    )
