"""ClusterRoles and bindings for raykube's own components beyond Kubernetes' bootstrap policy (the DNS
and Ingress add-ons, the network plugin, controllers Kubernetes does not have). The RBAC bootstrap
(``bootstrap_policy``) reconciles these with Kubernetes' own at every API server start.

Who is who is decided by ``cluster.identities`` (the certificates the bootstrap issues); this module
grants each of them what its code does and nothing more:

* ``kube-system/kube-dns`` (cluster DNS): Kubernetes' ``system:kube-dns`` lets it watch Services and
  Endpoints; ours reads EndpointSlices and (with ``pods verified``) Pods, and keeps its own Service
  ``kube-dns`` and EndpointSlice ``kube-dns-raykube`` in ``kube-system``;
* ``kube-system/raykube-ingress`` (the Ingress controller, our nginx): what ingress-nginx's chart
  grants (watch Ingresses, IngressClasses, Services, EndpointSlices and the TLS Secrets; publish
  Ingress status; events), plus keeping its IngressClass ``raykube`` and its Service and
  EndpointSlice ``raykube-ingress`` in ``kube-system``;
* controllers Kubernetes runs out of tree or not at all: the CSI provisioner (the writes of the
  external-provisioner sidecar), the control-plane pods controller (the ``kube-system`` pods
  that show the control-plane actors), the Ray autoscaler loop (the cluster-autoscaler chart's node
  and eviction rules);
* controllers that do more than Kubernetes' of the same name: the attach/detach controller also
  does the CSI external-attacher's work (VolumeAttachment status and finalizers), the expander writes
  the claim's storage-resizer annotation itself; and some of ours PATCH where Kubernetes' UPDATE
  (the status of ReplicaSets, DaemonSets, StatefulSets and Namespaces, a Deployment's revision
  annotation, a StatefulSet claim's owner references): the same fields, another verb.

Namespaced rules (``kube-system`` only) are Roles (``roles``/``role_bindings``), as Kubernetes'
own ``namespace_policy`` does. Every object carries the bootstrap label and the autoupdate
annotation, so the reconciler treats them as its own.
"""

from __future__ import annotations

from typing import Any

RBAC = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC}/v1"
KUBE_SYSTEM = "kube-system"
PREFIX = "system:raykube:"

DNS_ACCOUNT = "kube-dns"
INGRESS_ACCOUNT = "raykube-ingress"
CSI_PROVISIONER_ACCOUNT = "csi-provisioner"
CONTROL_PLANE_PODS_ACCOUNT = "control-plane-pods"
AUTOSCALER_ACCOUNT = "cluster-autoscaler"
ATTACHER_ACCOUNT = "attachdetach-controller"
EXPANDER_ACCOUNT = "expand-controller"

Rule = dict[str, Any]


def _rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] | None = None) -> Rule:
    rule: Rule = {"verbs": verbs, "apiGroups": groups, "resources": resources}
    if names:
        rule["resourceNames"] = names
    return rule


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
        "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def _events() -> Rule:
    return _rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])


# ClusterRole name -> (ServiceAccount of kube-system bound to it, rules)
_CLUSTER: dict[str, tuple[str, list[Rule]]] = {
    f"{PREFIX}kube-dns": (
        DNS_ACCOUNT,
        [
            _rule(["list", "watch"], [""], ["services", "endpoints", "pods"]),
            _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
        ],
    ),
    f"{PREFIX}ingress": (
        INGRESS_ACCOUNT,
        [
            _rule(["list", "watch"], [""], ["services", "secrets"]),
            _rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
            _rule(["get", "list", "watch"], ["networking.k8s.io"], ["ingresses", "ingressclasses"]),
            _rule(["update", "patch"], ["networking.k8s.io"], ["ingresses/status"]),
            _rule(["create"], ["networking.k8s.io"], ["ingressclasses"]),
            _events(),
        ],
    ),
    f"{PREFIX}csi-provisioner": (
        CSI_PROVISIONER_ACCOUNT,
        [
            _rule(["create", "delete", "patch"], [""], ["persistentvolumes"]),
            _rule(["patch"], [""], ["persistentvolumeclaims"]),
            _events(),
        ],
    ),
    f"{PREFIX}cluster-autoscaler": (
        AUTOSCALER_ACCOUNT,
        [
            _rule(["list", "patch"], [""], ["nodes"]),  # taints and cordon of nodes to release
            _rule(["list"], [""], ["pods"]),
            _rule(["create"], [""], ["pods/eviction"]),
            _events(),
        ],
    ),
    f"{PREFIX}csi-attacher": (
        ATTACHER_ACCOUNT,
        [
            _rule(["patch", "update"], ["storage.k8s.io"], ["volumeattachments", "volumeattachments/status"]),
        ],
    ),
    f"{PREFIX}expand-controller": (
        EXPANDER_ACCOUNT,
        [_rule(["update"], [""], ["persistentvolumeclaims"])],  # the storage-resizer annotation
    ),
    # Ours patch where kube's controllers update (the same fields, so no more power than kube grants):
    f"{PREFIX}deployment-controller": (
        "deployment-controller",
        [_rule(["patch"], ["apps"], ["deployments"])],  # the revision annotation
    ),
    f"{PREFIX}replicaset-controller": (
        "replicaset-controller",
        [_rule(["patch"], ["apps"], ["replicasets/status"])],
    ),
    f"{PREFIX}daemon-set-controller": (
        "daemon-set-controller",
        [_rule(["patch"], ["apps"], ["daemonsets/status"])],
    ),
    f"{PREFIX}statefulset-controller": (
        "statefulset-controller",
        [
            _rule(["patch"], ["apps"], ["statefulsets/status"]),
            _rule(["patch"], [""], ["persistentvolumeclaims"]),  # the retention policy's owner references
        ],
    ),
    f"{PREFIX}namespace-controller": (
        "namespace-controller",
        [_rule(["patch"], [""], ["namespaces/status"])],
    ),
}

# Role name in kube-system -> (ServiceAccount bound to it, rules): the objects a component keeps
# there itself (create cannot be limited to a name, so it is limited to the namespace).
_NAMESPACED: dict[str, tuple[str, list[Rule]]] = {
    f"{PREFIX}kube-dns": (
        DNS_ACCOUNT,
        [
            _rule(["create"], [""], ["services"]),
            _rule(["get", "update", "patch"], [""], ["services"], ["kube-dns"]),
            _rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
            _rule(["get", "update", "patch"], ["discovery.k8s.io"], ["endpointslices"], ["kube-dns-raykube"]),
        ],
    ),
    f"{PREFIX}ingress": (
        INGRESS_ACCOUNT,
        [
            _rule(["create"], [""], ["services"]),
            _rule(["get", "update", "patch"], [""], ["services"], ["raykube-ingress"]),
            _rule(["create"], ["discovery.k8s.io"], ["endpointslices"]),
            _rule(["get", "update", "patch"], ["discovery.k8s.io"], ["endpointslices"], ["raykube-ingress"]),
        ],
    ),
    f"{PREFIX}control-plane-pods": (
        CONTROL_PLANE_PODS_ACCOUNT,
        [
            _rule(["get", "create", "delete"], [""], ["pods"]),
            _rule(["patch"], [""], ["pods/status"]),
            _events(),
        ],
    ),
}


def _subject(account: str) -> dict[str, str]:
    return {"kind": "ServiceAccount", "name": account, "namespace": KUBE_SYSTEM}


def cluster_roles() -> list[dict[str, Any]]:
    return [
        {"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": _meta(name), "rules": rules}
        for name, (_, rules) in _CLUSTER.items()
    ]


def cluster_role_bindings() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": RBAC_V1,
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name),
            "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": name},
            "subjects": [_subject(account)],
        }
        for name, (account, _) in _CLUSTER.items()
    ]


def roles() -> list[dict[str, Any]]:
    """Roles in ``kube-system`` (each object names its namespace)."""
    return [
        {"apiVersion": RBAC_V1, "kind": "Role", "metadata": _meta(name, KUBE_SYSTEM), "rules": rules}
        for name, (_, rules) in _NAMESPACED.items()
    ]


def role_bindings() -> list[dict[str, Any]]:
    """RoleBindings in ``kube-system`` (each object names its namespace)."""
    return [
        {
            "apiVersion": RBAC_V1,
            "kind": "RoleBinding",
            "metadata": _meta(name, KUBE_SYSTEM),
            "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": name},
            "subjects": [_subject(account)],
        }
        for name, (account, _) in _NAMESPACED.items()
    ]
