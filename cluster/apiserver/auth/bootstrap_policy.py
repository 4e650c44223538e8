"""The default RBAC policy of a new Kubernetes cluster (kube's ``bootstrappolicy``) and its
reconciliation at every API server start (the ``rbac/bootstrap-roles`` post-start hook).

Every object carries the label ``kubernetes.io/bootstrapping: rbac-defaults`` and the annotation
``rbac.authorization.kubernetes.io/autoupdate: "true"``. At start, a missing object is created; one
that exists with autoupdate true gets what it lacks added (rules, aggregation selectors, subjects,
labels and annotations; nothing is removed, so an operator's additions stay); one with autoupdate
false is left alone. A binding whose roleRef differs is deleted and created again (a roleRef cannot
be changed). The aggregated roles (admin, edit, view) are created without rules: the ClusterRole
aggregation controller fills them from the ``system:aggregate-to-*`` roles.

``system:masters`` is allowed everything through the ``cluster-admin`` ClusterRoleBinding, as in
Kubernetes, not through a shortcut in the authorizer. Nodes get their permissions from the Node
authorizer: the ``system:node`` ClusterRoleBinding exists without subjects.
"""

from __future__ import annotations

import logging
from typing import Any

from cluster.apiserver.auth import raykube_policy
from cluster.apiserver.auth.controller_policy import (
    CONTROLLER_PREFIX,
    CONTROLLER_RULES,
    NAMESPACE_BINDINGS,
    NAMESPACE_ROLES,
    events,
    r,
)
from cluster.apiserver.auth.rbac_rules import uncovered
from cluster.apiserver.errors import StatusError
from cluster.apiserver.resources import lookup

log = logging.getLogger("raykube.apiserver.rbac")

GROUP = "rbac.authorization.k8s.io"
API_VERSION = f"{GROUP}/v1"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = ("kubernetes.io/bootstrapping", "rbac-defaults")
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
READ = "get list watch"
WRITE = "create delete deletecollection patch update"


def _meta(name: str, namespace: str | None = None, labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "labels": {BOOTSTRAP_LABEL[0]: BOOTSTRAP_LABEL[1], **(labels or {})},
        "annotations": {AUTOUPDATE: "true"},
    }
    if namespace:
        meta["namespace"] = namespace
    return meta


def cluster_role(
    name: str,
    rules: list[dict[str, Any]],
    *,
    labels: dict[str, str] | None = None,
    aggregate: str | None = None,
) -> dict[str, Any]:
    role: dict[str, Any] = {
        "apiVersion": API_VERSION,
        "kind": "ClusterRole",
        "metadata": _meta(name, labels=labels),
    }
    if aggregate:
        role["aggregationRule"] = {
            "clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate: "true"}}]
        }
        role["rules"] = []
    else:
        role["rules"] = rules
    return role


def subject(kind: str, name: str, namespace: str = "") -> dict[str, Any]:
    if kind == "ServiceAccount":
        return {"kind": kind, "name": name, "namespace": namespace}
    return {"apiGroup": GROUP, "kind": kind, "name": name}


def cluster_binding(name: str, role: str, subjects: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }


def _agg(to: str) -> dict[str, str]:
    return {AGGREGATE_TO + to: "true"}


def node_rules() -> list[dict[str, Any]]:
    """What a node may do beyond the objects the Node authorizer relates to it (kube's ``NodeRules``,
    also the rules of the ``system:node`` ClusterRole)."""
    return [
        r("create", "authentication.k8s.io", "tokenreviews"),
        r("create", "authorization.k8s.io", "subjectaccessreviews localsubjectaccessreviews"),
        r(READ, "core", "services"),
        r("create get list watch", "core", "nodes"),
        r("update patch", "core", "nodes/status"),
        r("update patch", "core", "nodes"),
        r("create update patch", "core", "events"),
        r(READ, "core", "pods"),
        r("create delete", "core", "pods"),
        r("update patch", "core", "pods/status"),
        r("create", "core", "pods/eviction"),
        r(READ, "core", "secrets configmaps"),
        r("get", "core", "persistentvolumeclaims persistentvolumes"),
        r("get", "core", "endpoints"),
        r("create get list watch", "certificates.k8s.io", "certificatesigningrequests"),
        r("get create update patch delete", "coordination.k8s.io", "leases"),
        r("get", "storage.k8s.io", "volumeattachments"),
        r("create", "core", "serviceaccounts/token"),
        r("get update patch", "core", "persistentvolumeclaims/status"),
        r(READ, "storage.k8s.io", "csidrivers"),
        r("get create update patch delete", "storage.k8s.io", "csinodes"),
        r(READ, "node.k8s.io", "runtimeclasses"),
    ]


def _scheduler_rules() -> list[dict[str, Any]]:
    return [
        events(),
        r("create", "coordination.k8s.io", "leases"),
        r("get update", "coordination.k8s.io", "leases", "kube-scheduler"),
        r(READ, "core", "nodes"),
        r("delete get list watch", "core", "pods"),
        r("create", "core", "bindings pods/binding"),
        r("patch update", "core", "pods/status"),
        r(READ, "core", "replicationcontrollers services"),
        r(READ, "apps extensions", "replicasets"),
        r(READ, "apps", "statefulsets"),
        r(READ, "policy", "poddisruptionbudgets"),
        r(READ, "core", "persistentvolumeclaims persistentvolumes"),
        r("create", "authentication.k8s.io", "tokenreviews"),
        r("create", "authorization.k8s.io", "subjectaccessreviews"),
        r(READ, "storage.k8s.io", "csinodes"),
        r(READ, "core", "namespaces"),
        r(READ, "storage.k8s.io", "csidrivers"),
        r(READ, "storage.k8s.io", "csistoragecapacities"),
    ]


def _aggregate_roles() -> list[dict[str, Any]]:
    edit_core = (
        "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale "
    )
    edit_core += "secrets serviceaccounts services services/proxy"
    return [
        cluster_role("admin", [], aggregate="admin"),
        cluster_role("edit", [], aggregate="edit", labels=_agg("admin")),
        cluster_role("view", [], aggregate="view", labels=_agg("edit")),
        cluster_role(
            "system:aggregate-to-admin",
            [
                r("create", "authorization.k8s.io", "localsubjectaccessreviews"),
                r(f"{WRITE} get list watch", GROUP, "rolebindings roles"),
            ],
            labels=_agg("admin"),
        ),
        cluster_role(
            "system:aggregate-to-edit",
            [
                r(READ, "core", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy"),
                r("impersonate", "core", "serviceaccounts"),
                r(WRITE, "core", "pods pods/attach pods/exec pods/portforward pods/proxy"),
                r("create", "core", "pods/eviction"),
                r(WRITE, "core", edit_core),
                r("create", "core", "serviceaccounts/token"),
                r(
                    WRITE,
                    "apps",
                    "daemonsets deployments deployments/rollback deployments/scale replicasets "
                    "replicasets/scale statefulsets statefulsets/scale",
                ),
                r(WRITE, "autoscaling", "horizontalpodautoscalers"),
                r(WRITE, "batch", "cronjobs jobs"),
                r(
                    WRITE,
                    "extensions",
                    "daemonsets deployments deployments/rollback deployments/scale ingresses "
                    "networkpolicies replicasets replicasets/scale replicationcontrollers/scale",
                ),
                r(WRITE, "policy", "poddisruptionbudgets"),
                r(WRITE, "networking.k8s.io", "ingresses networkpolicies"),
                r(f"{WRITE} get list watch", "coordination.k8s.io", "leases"),
            ],
            labels=_agg("edit"),
        ),
        cluster_role(
            "system:aggregate-to-view",
            [
                r(
                    READ,
                    "core",
                    "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
                    "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
                    "services/status",
                ),
                r(
                    READ,
                    "core",
                    "bindings events limitranges namespaces/status pods/log pods/status "
                    "replicationcontrollers/status resourcequotas resourcequotas/status",
                ),
                r(READ, "core", "namespaces"),
                r(READ, "discovery.k8s.io", "endpointslices"),
                r(
                    READ,
                    "apps",
                    "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
                    "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
                    "statefulsets/scale statefulsets/status",
                ),
                r(READ, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
                r(READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
                r(
                    READ,
                    "extensions",
                    "daemonsets daemonsets/status deployments deployments/scale deployments/status "
                    "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
                    "replicasets/status replicationcontrollers/scale",
                ),
                r(READ, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
                r(READ, "networking.k8s.io", "ingresses ingresses/status networkpolicies"),
            ],
            labels=_agg("view"),
        ),
    ]


def _approver(name: str, signer: str) -> dict[str, Any]:
    return cluster_role(
        f"system:certificates.k8s.io:{name}", [r("approve", "certificates.k8s.io", "signers", signer)]
    )


def cluster_roles() -> list[dict[str, Any]]:
    """Kubernetes' default ClusterRoles, then the controllers' (``system:controller:*``)."""
    roles = [
        cluster_role("cluster-admin", [r("*", "*", "*"), {"nonResourceURLs": ["*"], "verbs": ["*"]}]),
        *_aggregate_roles(),
        cluster_role(
            "system:auth-delegator",
            [
                r("create", "authentication.k8s.io", "tokenreviews"),
                r("create", "authorization.k8s.io", "subjectaccessreviews"),
            ],
        ),
        cluster_role(
            "system:basic-user",
            [
                r("create", "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews"),
                r("create", "authentication.k8s.io", "selfsubjectreviews"),
            ],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
            [r("create", "certificates.k8s.io", "certificatesigningrequests/nodeclient")],
        ),
        cluster_role(
            "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
            [r("create", "certificates.k8s.io", "certificatesigningrequests/selfnodeclient")],
        ),
        _approver("kube-apiserver-client-approver", "kubernetes.io/kube-apiserver-client"),
        _approver("kube-apiserver-client-kubelet-approver", "kubernetes.io/kube-apiserver-client-kubelet"),
        _approver("kubelet-serving-approver", "kubernetes.io/kubelet-serving"),
        _approver("legacy-unknown-approver", "kubernetes.io/legacy-unknown"),
        cluster_role(
            "system:discovery",
            [
                {
                    "nonResourceURLs": [
                        "/api",
                        "/api/*",
                        "/apis",
                        "/apis/*",
                        "/healthz",
                        "/livez",
                        "/openapi",
                        "/openapi/*",
                        "/readyz",
                        "/version",
                        "/version/",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        cluster_role(
            "system:heapster",
            [r(READ, "core", "events namespaces nodes pods"), r(READ, "extensions", "deployments")],
        ),
        cluster_role("system:kube-aggregator", [r(READ, "core", "endpoints services")]),
        cluster_role(
            "system:kube-controller-manager",
            [
                events(),
                r("create", "coordination.k8s.io", "leases"),
                r("get update", "coordination.k8s.io", "leases", "kube-controller-manager"),
                r("create", "core", "secrets serviceaccounts"),
                r("delete", "core", "secrets"),
                r("get", "core", "configmaps namespaces secrets serviceaccounts"),
                r("update", "core", "secrets serviceaccounts"),
                r("create", "authentication.k8s.io", "tokenreviews"),
                r("create", "authorization.k8s.io", "subjectaccessreviews"),
                r("list watch", "*", "*"),
                r("create", "core", "serviceaccounts/token"),
            ],
        ),
        cluster_role("system:kube-dns", [r("list watch", "core", "endpoints services")]),
        cluster_role("system:kube-scheduler", _scheduler_rules()),
        cluster_role(
            "system:kubelet-api-admin",
            [
                r(READ, "core", "nodes"),
                r("proxy", "core", "nodes"),
                r("*", "core", "nodes/log nodes/metrics nodes/proxy nodes/stats"),
            ],
        ),
        cluster_role(
            "system:monitoring",
            [
                {
                    "nonResourceURLs": [
                        "/healthz",
                        "/healthz/*",
                        "/livez",
                        "/livez/*",
                        "/metrics",
                        "/metrics/slis",
                        "/readyz",
                        "/readyz/*",
                    ],
                    "verbs": ["get"],
                }
            ],
        ),
        cluster_role("system:node", node_rules()),
        cluster_role(
            "system:node-bootstrapper",
            [r("create get list watch", "certificates.k8s.io", "certificatesigningrequests")],
        ),
        cluster_role(
            "system:node-problem-detector",
            [r("get", "core", "nodes"), r("patch", "core", "nodes/status"), events()],
        ),
        cluster_role(
            "system:node-proxier",
            [
                r("list watch", "core", "endpoints services"),
                r(READ, "core", "nodes"),
                events(),
                r("list watch", "discovery.k8s.io", "endpointslices"),
            ],
        ),
        cluster_role(
            "system:persistent-volume-provisioner",
            [
                r("create delete get list watch", "core", "persistentvolumes"),
                r("get list update watch", "core", "persistentvolumeclaims"),
                r(READ, "storage.k8s.io", "storageclasses"),
                r("watch", "core", "events"),
                events(),
            ],
        ),
        cluster_role(
            "system:public-info-viewer",
            [
                {
                    "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"],
                    "verbs": ["get"],
                }
            ],
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            [{"nonResourceURLs": ["/.well-known/openid-configuration", "/openid/v1/jwks"], "verbs": ["get"]}],
        ),
        cluster_role(
            "system:volume-scheduler",
            [
                r("get list patch update watch", "core", "persistentvolumes"),
                r(READ, "storage.k8s.io", "storageclasses"),
                r("get list patch update watch", "core", "persistentvolumeclaims"),
            ],
        ),
    ]
    roles += [cluster_role(CONTROLLER_PREFIX + name, rules) for name, rules in CONTROLLER_RULES.items()]
    return roles


def cluster_role_bindings() -> list[dict[str, Any]]:
    g, u = "Group", "User"
    bindings = [
        cluster_binding("cluster-admin", "cluster-admin", [subject(g, "system:masters")]),
        cluster_binding("system:basic-user", "system:basic-user", [subject(g, "system:authenticated")]),
        cluster_binding("system:discovery", "system:discovery", [subject(g, "system:authenticated")]),
        cluster_binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            [subject(u, "system:kube-controller-manager")],
        ),
        cluster_binding(
            "system:kube-dns", "system:kube-dns", [subject("ServiceAccount", "kube-dns", "kube-system")]
        ),
        cluster_binding(
            "system:kube-scheduler", "system:kube-scheduler", [subject(u, "system:kube-scheduler")]
        ),
        cluster_binding("system:monitoring", "system:monitoring", [subject(g, "system:monitoring")]),
        cluster_binding("system:node", "system:node", []),
        cluster_binding("system:node-proxier", "system:node-proxier", [subject(u, "system:kube-proxy")]),
        cluster_binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            [subject(g, "system:authenticated"), subject(g, "system:unauthenticated")],
        ),
        cluster_binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            [subject(g, "system:serviceaccounts")],
        ),
        cluster_binding(
            "system:volume-scheduler", "system:volume-scheduler", [subject(u, "system:kube-scheduler")]
        ),
    ]
    bindings += [
        cluster_binding(
            CONTROLLER_PREFIX + name,
            CONTROLLER_PREFIX + name,
            [subject("ServiceAccount", name, "kube-system")],
        )
        for name in CONTROLLER_RULES
    ]
    return bindings


def namespace_roles() -> list[dict[str, Any]]:
    return [
        {"apiVersion": API_VERSION, "kind": "Role", "metadata": _meta(name, ns), "rules": rules}
        for (ns, name), rules in NAMESPACE_ROLES.items()
    ]


def namespace_role_bindings() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": API_VERSION,
            "kind": "RoleBinding",
            "metadata": _meta(name, ns),
            "roleRef": {"apiGroup": GROUP, "kind": "Role", "name": role},
            "subjects": [subject(*s) for s in subjects],
        }
        for ns, name, role, subjects in NAMESPACE_BINDINGS
    ]


def default_policy() -> list[tuple[str, dict[str, Any]]]:
    """(plural, object) for everything the reconcile keeps, roles before their bindings; raykube's own
    components' roles (``raykube_policy``) after Kubernetes' own."""
    return [
        *(("clusterroles", o) for o in cluster_roles()),
        *(("clusterroles", o) for o in raykube_policy.cluster_roles()),
        *(("roles", o) for o in namespace_roles()),
        *(("roles", o) for o in raykube_policy.roles()),
        *(("clusterrolebindings", o) for o in cluster_role_bindings()),
        *(("clusterrolebindings", o) for o in raykube_policy.cluster_role_bindings()),
        *(("rolebindings", o) for o in namespace_role_bindings()),
        *(("rolebindings", o) for o in raykube_policy.role_bindings()),
    ]


# ---------------------------------------------------------------- reconcile


def reconciled(existing: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any] | None:
    """``existing`` with what ``expected`` adds, or None when nothing is missing (or autoupdate is
    off). For roles: labels, annotations, rules (not of an aggregated role: its controller owns
    them), aggregation selectors; for bindings: subjects. Never removes anything."""
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    out = {**existing, "metadata": dict(meta)}
    changed = False
    for field in ("labels", "annotations"):
        have = dict(meta.get(field) or {})
        for k, v in (expected["metadata"].get(field) or {}).items():
            if k not in have:
                have[k] = v
                changed = True
        out["metadata"][field] = have
    if expected["kind"] in ("ClusterRole", "Role"):
        want_agg = (expected.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if want_agg:
            selectors = list((existing.get("aggregationRule") or {}).get("clusterRoleSelectors") or [])
            missing = [s for s in want_agg if s not in selectors]
            if missing:
                out["aggregationRule"] = {"clusterRoleSelectors": selectors + missing}
                changed = True
        else:
            rules = list(existing.get("rules") or [])
            missing_rules = [rule for rule in expected.get("rules") or [] if uncovered(rules, [rule])]
            if missing_rules:
                out["rules"] = rules + missing_rules
                changed = True
    else:
        subjects = list(existing.get("subjects") or [])
        keys = {(s.get("kind"), s.get("name"), s.get("namespace", "")) for s in subjects}
        for s in expected.get("subjects") or []:
            if (s.get("kind"), s.get("name"), s.get("namespace", "")) not in keys:
                subjects.append(s)
                changed = True
        out["subjects"] = subjects
    return out if changed else None


async def reconcile_policy(registry: Any) -> None:
    """Create the default policy's missing objects and complete the autoupdate ones (the API server
    calls this at start, as its own writer: no user, so no escalation check). Several API servers
    starting at once may race; a 409 just means another got there first."""

    created = updated = 0
    for plural, obj in default_policy():
        info = lookup(GROUP, "v1", plural)
        assert info is not None
        namespace = obj["metadata"].get("namespace")
        name = obj["metadata"]["name"]
        try:
            try:
                existing = await registry.get(info, namespace, name)
            except StatusError as e:
                if e.code != 404:
                    raise
                await registry.create(info, namespace, obj)
                created += 1
                continue
            if plural.endswith("bindings") and existing.get("roleRef") != obj["roleRef"]:
                if (existing.get("metadata", {}).get("annotations") or {}).get(AUTOUPDATE) == "false":
                    continue
                await registry.delete(info, namespace, name)
                await registry.create(info, namespace, obj)
                updated += 1
                continue
            new = reconciled(existing, obj)
            if new is not None:
                await registry.update(info, namespace, name, new)
                updated += 1
        except StatusError as e:
            if e.code != 409:
                log.warning("RBAC bootstrap: could not reconcile %s %s: %s", plural, name, e)
    if created or updated:
        log.info("RBAC bootstrap: created %d and updated %d default roles and bindings", created, updated)
