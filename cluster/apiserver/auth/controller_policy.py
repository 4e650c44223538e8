"""The ClusterRoles of kube-controller-manager's controllers (kube's ``controller_policy.go``): one
``system:controller:<name>`` role per controller, bound to the ServiceAccount ``kube-system/<name>``
it runs as, plus the kube-system and kube-public Roles of the bootstrap-signer, token-cleaner,
cloud-provider and the leader-locking identities (``namespace_policy.go``)."""

from __future__ import annotations

from typing import Any

CONTROLLER_PREFIX = "system:controller:"


def r(verbs: str, groups: str, resources: str, names: str = "") -> dict[str, Any]:
    """A PolicyRule from space-separated words; the core group is written ``core``."""
    rule: dict[str, Any] = {
        "apiGroups": ["" if g == "core" else g for g in groups.split()],
        "resources": resources.split(),
        "verbs": verbs.split(),
    }
    if names:
        rule["resourceNames"] = names.split()
    return rule


def events() -> dict[str, Any]:
    """kube's ``eventsRule``: create, update and patch events in the core and events.k8s.io groups."""
    return r("create update patch", "core events.k8s.io", "events")


CONTROLLER_RULES: dict[str, list[dict[str, Any]]] = {
    "attachdetach-controller": [
        r("list watch", "core", "persistentvolumes persistentvolumeclaims"),
        r("get list watch", "core", "nodes"),
        r("patch update", "core", "nodes/status"),
        r("list watch", "core", "pods"),
        events(),
        r("get create delete list watch", "storage.k8s.io", "volumeattachments"),
        r("get watch list", "storage.k8s.io", "csidrivers"),
        r("get watch list", "storage.k8s.io", "csinodes"),
    ],
    "certificate-controller": [
        r("get list watch delete", "certificates.k8s.io", "certificatesigningrequests"),
        r(
            "update",
            "certificates.k8s.io",
            "certificatesigningrequests/status certificatesigningrequests/approval",
        ),
        r("approve", "certificates.k8s.io", "signers", "kubernetes.io/kube-apiserver-client-kubelet"),
        r(
            "sign",
            "certificates.k8s.io",
            "signers",
            "kubernetes.io/legacy-unknown kubernetes.io/kube-apiserver-client "
            "kubernetes.io/kube-apiserver-client-kubelet kubernetes.io/kubelet-serving",
        ),
        r("create", "authorization.k8s.io", "subjectaccessreviews"),
        events(),
    ],
    "clusterrole-aggregation-controller": [
        r("escalate get list watch update patch", "rbac.authorization.k8s.io", "clusterroles"),
    ],
    "cronjob-controller": [
        r("get list watch update", "batch", "cronjobs"),
        r("get list watch create update delete patch", "batch", "jobs"),
        r("update", "batch", "cronjobs/status"),
        r("update", "batch", "cronjobs/finalizers"),
        r("list watch delete", "core", "pods"),
        events(),
    ],
    "daemon-set-controller": [
        r("get list watch", "extensions apps", "daemonsets"),
        r("update", "extensions apps", "daemonsets/status"),
        r("update", "extensions apps", "daemonsets/finalizers"),
        r("list watch", "core", "nodes"),
        r("list watch create delete patch", "core", "pods"),
        r("create", "core", "pods/binding"),
        r("get list watch create delete update patch", "apps", "controllerrevisions"),
        events(),
    ],
    "deployment-controller": [
        r("get list watch update", "extensions apps", "deployments"),
        r("update", "extensions apps", "deployments/status"),
        r("update", "extensions apps", "deployments/finalizers"),
        r("get list watch create update patch delete", "apps extensions", "replicasets"),
        r("get list watch update", "core", "pods"),
        events(),
    ],
    "disruption-controller": [
        r("get list watch", "extensions apps", "deployments"),
        r("get list watch", "apps extensions", "replicasets"),
        r("get list watch", "core", "replicationcontrollers"),
        r("get list watch", "policy", "poddisruptionbudgets"),
        r("get list watch", "apps", "statefulsets"),
        r("update", "policy", "poddisruptionbudgets/status"),
        r("patch update", "core", "pods/status"),
        r("get", "*", "*/scale"),
        events(),
    ],
    "endpoint-controller": [
        r("get list watch", "core", "services pods"),
        r("get list watch create update delete", "core", "endpoints"),
        r("create", "core", "endpoints/restricted"),
        events(),
    ],
    "endpointslice-controller": [
        r("get list watch", "core", "services pods nodes"),
        r("update", "core", "services/finalizers"),
        r("get list watch create update delete", "discovery.k8s.io", "endpointslices"),
        events(),
    ],
    "endpointslicemirroring-controller": [
        r("get list watch", "core", "services endpoints"),
        r("update", "core", "services/finalizers"),
        r("update", "core", "endpoints/finalizers"),
        r("get list watch create update delete", "discovery.k8s.io", "endpointslices"),
        events(),
    ],
    "ephemeral-volume-controller": [
        r("get list watch", "core", "pods"),
        r("update", "core", "pods/finalizers"),
        r("get list watch create", "core", "persistentvolumeclaims"),
        events(),
    ],
    "expand-controller": [
        r("get list watch update patch", "core", "persistentvolumes"),
        r("update patch", "core", "persistentvolumeclaims/status"),
        r("get list watch", "core", "persistentvolumeclaims"),
        events(),
        r("get", "core", "services"),
    ],
    "generic-garbage-collector": [
        r("get list watch patch update delete", "*", "*"),
        events(),
    ],
    "horizontal-pod-autoscaler": [
        r("get list watch", "autoscaling", "horizontalpodautoscalers"),
        r("update", "autoscaling", "horizontalpodautoscalers/status"),
        r("get update", "*", "*/scale"),
        r("list watch", "core", "pods"),
        r("list watch", "metrics.k8s.io", "pods"),
        r("get list watch", "custom.metrics.k8s.io", "*"),
        r("get list watch", "external.metrics.k8s.io", "*"),
        events(),
    ],
    "job-controller": [
        r("get list watch update patch", "batch", "jobs"),
        r("update", "batch", "jobs/status"),
        r("update", "batch", "jobs/finalizers"),
        r("list watch create delete patch", "core", "pods"),
        events(),
    ],
    "legacy-service-account-token-cleaner": [
        r("get", "core", "configmaps", "kube-apiserver-legacy-service-account-token-tracking"),
        r("patch delete", "core", "secrets"),
    ],
    "namespace-controller": [
        r("get list watch delete", "core", "namespaces"),
        r("update", "core", "namespaces/finalize namespaces/status"),
        r("get list watch delete deletecollection", "*", "*"),
    ],
    "node-controller": [
        r("get list watch update delete patch", "core", "nodes"),
        r("patch update", "core", "nodes/status"),
        r("patch update", "core", "pods/status"),
        r("list watch get delete", "core", "pods"),
        events(),
    ],
    "persistent-volume-binder": [
        r("get list watch update create delete", "core", "persistentvolumes"),
        r("update", "core", "persistentvolumes/status"),
        r("get list watch update", "core", "persistentvolumeclaims"),
        r("update", "core", "persistentvolumeclaims/status"),
        r("list watch get create delete", "core", "pods"),
        r("get list watch", "storage.k8s.io", "storageclasses"),
        r("list watch", "core", "nodes"),
        events(),
        r("watch", "core", "events"),
        r("get", "core", "services"),
    ],
    "pod-garbage-collector": [
        r("list watch delete", "core", "pods"),
        r("get list watch", "core", "nodes"),
        r("patch", "core", "pods/status"),
    ],
    "pv-protection-controller": [
        r("get list watch update", "core", "persistentvolumes"),
        events(),
    ],
    "pvc-protection-controller": [
        r("get list watch update", "core", "persistentvolumeclaims"),
        r("list watch get", "core", "pods"),
        events(),
    ],
    "replicaset-controller": [
        r("get list watch update", "apps extensions", "replicasets"),
        r("update", "apps extensions", "replicasets/status"),
        r("update", "apps extensions", "replicasets/finalizers"),
        r("list watch patch create delete", "core", "pods"),
        events(),
    ],
    "replication-controller": [
        r("get list watch update", "core", "replicationcontrollers"),
        r("update", "core", "replicationcontrollers/status"),
        r("update", "core", "replicationcontrollers/finalizers"),
        r("list watch patch create delete", "core", "pods"),
        events(),
    ],
    "resourcequota-controller": [
        r("list watch", "*", "*"),
        r("update", "core", "resourcequotas/status"),
        events(),
    ],
    "root-ca-cert-publisher": [
        r("create update", "core", "configmaps"),
        events(),
    ],
    "route-controller": [
        r("list watch", "core", "nodes"),
        r("patch", "core", "nodes/status"),
        events(),
    ],
    "service-account-controller": [
        r("create", "core", "serviceaccounts"),
        events(),
    ],
    "service-controller": [
        r("get list watch", "core", "services"),
        r("patch update", "core", "services/status"),
        r("list watch", "core", "nodes"),
        events(),
    ],
    "statefulset-controller": [
        r("list watch", "core", "pods"),
        r("get list watch", "apps", "statefulsets"),
        r("update", "apps", "statefulsets/status"),
        r("update", "apps", "statefulsets/finalizers"),
        r("get create delete update patch", "core", "pods"),
        r("get create delete update patch list watch", "apps", "controllerrevisions"),
        r("get create list watch", "core", "persistentvolumeclaims"),
        r("update delete", "core", "persistentvolumeclaims"),
        r("update", "core", "pods/finalizers"),
        events(),
    ],
    "ttl-after-finished-controller": [
        r("get list watch delete", "batch", "jobs"),
        events(),
    ],
    "ttl-controller": [
        r("update patch list watch", "core", "nodes"),
        events(),
    ],
    "validatingadmissionpolicy-status-controller": [
        r("get list watch", "admissionregistration.k8s.io", "validatingadmissionpolicies"),
        r("get patch update", "admissionregistration.k8s.io", "validatingadmissionpolicies/status"),
        events(),
    ],
}

# namespace_policy.go: (namespace, role name) -> rules, and the bindings of those roles.
NAMESPACE_ROLES: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("kube-system", "extension-apiserver-authentication-reader"): [
        r("get list watch", "core", "configmaps", "extension-apiserver-authentication"),
    ],
    ("kube-system", "system::leader-locking-kube-controller-manager"): [
        r("watch", "core", "configmaps"),
        r("get update", "core", "configmaps", "kube-controller-manager"),
    ],
    ("kube-system", "system::leader-locking-kube-scheduler"): [
        r("watch", "core", "configmaps"),
        r("get update", "core", "configmaps", "kube-scheduler"),
    ],
    ("kube-system", CONTROLLER_PREFIX + "bootstrap-signer"): [
        r("get list watch", "core", "secrets"),
    ],
    ("kube-system", CONTROLLER_PREFIX + "cloud-provider"): [
        r("create get list watch", "core", "configmaps"),
    ],
    ("kube-system", CONTROLLER_PREFIX + "token-cleaner"): [
        r("delete get list watch", "core", "secrets"),
        events(),
    ],
    ("kube-public", CONTROLLER_PREFIX + "bootstrap-signer"): [
        r("get list watch", "core", "configmaps"),
        r("update", "core", "configmaps", "cluster-info"),
        events(),
    ],
}

# (namespace, binding name, role name, subjects as (kind, name[, namespace]))
NAMESPACE_BINDINGS: list[tuple[str, str, str, list[tuple[str, ...]]]] = [
    (
        "kube-system",
        "system::extension-apiserver-authentication-reader",
        "extension-apiserver-authentication-reader",
        [("User", "system:kube-controller-manager"), ("User", "system:kube-scheduler")],
    ),
    (
        "kube-system",
        "system::leader-locking-kube-controller-manager",
        "system::leader-locking-kube-controller-manager",
        [
            ("User", "system:kube-controller-manager"),
            ("ServiceAccount", "kube-controller-manager", "kube-system"),
        ],
    ),
    (
        "kube-system",
        "system::leader-locking-kube-scheduler",
        "system::leader-locking-kube-scheduler",
        [("User", "system:kube-scheduler"), ("ServiceAccount", "kube-scheduler", "kube-system")],
    ),
    (
        "kube-system",
        CONTROLLER_PREFIX + "bootstrap-signer",
        CONTROLLER_PREFIX + "bootstrap-signer",
        [("ServiceAccount", "bootstrap-signer", "kube-system")],
    ),
    (
        "kube-system",
        CONTROLLER_PREFIX + "cloud-provider",
        CONTROLLER_PREFIX + "cloud-provider",
        [("ServiceAccount", "cloud-provider", "kube-system")],
    ),
    (
        "kube-system",
        CONTROLLER_PREFIX + "token-cleaner",
        CONTROLLER_PREFIX + "token-cleaner",
        [("ServiceAccount", "token-cleaner", "kube-system")],
    ),
    (
        "kube-public",
        CONTROLLER_PREFIX + "bootstrap-signer",
        CONTROLLER_PREFIX + "bootstrap-signer",
        [("ServiceAccount", "bootstrap-signer", "kube-system")],
    ),
]
