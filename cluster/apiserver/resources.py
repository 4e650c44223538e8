"""The registry of built-in resources the API server serves.

Role: one place that says, for every built-in Kubernetes resource, its group, version, kind,
plural and singular names, scope, short names, verbs, categories and subresources, with the
values a real kube-apiserver (1.33) publishes in discovery. Discovery, OpenAPI, Tables and
request routing all read from here, so kubectl sees one consistent picture.

Invariants:
- ``RESOURCES`` is immutable and ordered by group in Kubernetes' discovery order (core first),
  then by plural name within a group.
- ``(group, version, plural)`` is unique, and so is ``(group, version, kind)``.
- Subresources name the kind they accept and return; where that kind lives in another group
  (``pods/eviction`` is ``policy/v1`` Eviction, ``*/scale`` is ``autoscaling/v1`` Scale) the
  group and version say so, because kubectl drain and kubectl scale read exactly those fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

ALL_VERBS: tuple[str, ...] = (
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
)
NO_COLLECTION_DELETE: tuple[str, ...] = ("create", "delete", "get", "list", "patch", "update", "watch")
STATUS_VERBS: tuple[str, ...] = ("get", "patch", "update")
CREATE_ONLY: tuple[str, ...] = ("create",)


@dataclass(frozen=True, slots=True)
class SubresourceInfo:
    """A subresource such as ``pods/log``; ``kind`` is what the subresource accepts/returns."""

    name: str
    kind: str
    group: str
    version: str
    verbs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One served resource (one group/version/plural)."""

    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...]
    verbs: tuple[str, ...]
    categories: tuple[str, ...]
    subresources: tuple[SubresourceInfo, ...]
    list_kind: str

    @property
    def group_version(self) -> str:
        """``v1`` for the core group, ``apps/v1`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` field value of this resource's objects (same as group_version)."""
        return self.group_version

    def subresource(self, name: str) -> SubresourceInfo | None:
        """The subresource called ``name`` (``"status"``, ``"scale"``, ...), if served."""
        for sub in self.subresources:
            if sub.name == name:
                return sub
        return None


def _status(group: str, version: str, kind: str) -> SubresourceInfo:
    return SubresourceInfo("status", kind, group, version, STATUS_VERBS)


def _scale() -> SubresourceInfo:
    return SubresourceInfo("scale", "Scale", "autoscaling", "v1", STATUS_VERBS)


def _res(
    group: str,
    version: str,
    kind: str,
    plural: str,
    *,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    categories: tuple[str, ...] = (),
    status: bool = False,
    scale: bool = False,
    extra: tuple[SubresourceInfo, ...] = (),
    singular: str | None = None,
) -> ResourceInfo:
    subs: list[SubresourceInfo] = list(extra)
    if scale:
        subs.append(_scale())
    if status:
        subs.append(_status(group, version, kind))
    subs.sort(key=lambda s: s.name)
    return ResourceInfo(
        group=group,
        version=version,
        kind=kind,
        plural=plural,
        singular=singular if singular is not None else kind.lower(),
        namespaced=namespaced,
        short_names=short,
        verbs=verbs,
        categories=categories,
        subresources=tuple(subs),
        list_kind=f"{kind}List",
    )


_POD_SUBRESOURCES: tuple[SubresourceInfo, ...] = (
    SubresourceInfo("binding", "Binding", "", "v1", CREATE_ONLY),
    SubresourceInfo("eviction", "Eviction", "policy", "v1", CREATE_ONLY),
    SubresourceInfo("exec", "PodExecOptions", "", "v1", ("create", "get")),
    SubresourceInfo("log", "Pod", "", "v1", ("get",)),
)

_CORE: tuple[ResourceInfo, ...] = (
    _res("", "v1", "ConfigMap", "configmaps", short=("cm",)),
    _res("", "v1", "Endpoints", "endpoints", short=("ep",), singular="endpoints"),
    _res("", "v1", "Event", "events", short=("ev",)),
    _res("", "v1", "LimitRange", "limitranges", short=("limits",)),
    _res(
        "",
        "v1",
        "Namespace",
        "namespaces",
        namespaced=False,
        short=("ns",),
        verbs=NO_COLLECTION_DELETE,
        status=True,
        extra=(SubresourceInfo("finalize", "Namespace", "", "v1", ("update",)),),
    ),
    _res("", "v1", "Node", "nodes", namespaced=False, short=("no",), status=True),
    _res("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), status=True),
    _res("", "v1", "PersistentVolume", "persistentvolumes", namespaced=False, short=("pv",), status=True),
    _res(
        "",
        "v1",
        "Pod",
        "pods",
        short=("po",),
        categories=("all",),
        status=True,
        extra=_POD_SUBRESOURCES,
    ),
    _res("", "v1", "ResourceQuota", "resourcequotas", short=("quota",), status=True),
    _res("", "v1", "Secret", "secrets"),
    _res(
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        short=("sa",),
        extra=(SubresourceInfo("token", "TokenRequest", "authentication.k8s.io", "v1", CREATE_ONLY),),
    ),
    _res("", "v1", "Service", "services", short=("svc",), categories=("all",), status=True),
)

_APPS: tuple[ResourceInfo, ...] = (
    _res("apps", "v1", "ControllerRevision", "controllerrevisions"),
    _res("apps", "v1", "DaemonSet", "daemonsets", short=("ds",), categories=("all",), status=True),
    _res(
        "apps",
        "v1",
        "Deployment",
        "deployments",
        short=("deploy",),
        categories=("all",),
        status=True,
        scale=True,
    ),
    _res(
        "apps", "v1", "ReplicaSet", "replicasets", short=("rs",), categories=("all",), status=True, scale=True
    ),
    _res(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        short=("sts",),
        categories=("all",),
        status=True,
        scale=True,
    ),
)

_RBAC = "rbac.authorization.k8s.io"
_NET = "networking.k8s.io"
_AUTHZ = "authorization.k8s.io"

# Group order follows what a real kube-apiserver lists under /apis (its built-in group priority).
RESOURCES: tuple[ResourceInfo, ...] = (
    *_CORE,
    *_APPS,
    _res("events.k8s.io", "v1", "Event", "events", short=("ev",)),
    _res(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _res("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", namespaced=False, verbs=CREATE_ONLY),
    _res(
        _AUTHZ,
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        verbs=CREATE_ONLY,
    ),
    _res(
        _AUTHZ,
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        namespaced=False,
        verbs=CREATE_ONLY,
    ),
    _res(
        _AUTHZ, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", namespaced=False, verbs=CREATE_ONLY
    ),
    _res(_AUTHZ, "v1", "SubjectAccessReview", "subjectaccessreviews", namespaced=False, verbs=CREATE_ONLY),
    _res("batch", "v1", "CronJob", "cronjobs", short=("cj",), categories=("all",), status=True),
    _res("batch", "v1", "Job", "jobs", categories=("all",), status=True),
    _res(
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        namespaced=False,
        short=("csr",),
        status=True,
        extra=(
            SubresourceInfo(
                "approval", "CertificateSigningRequest", "certificates.k8s.io", "v1", STATUS_VERBS
            ),
        ),
    ),
    _res(_NET, "v1", "IngressClass", "ingressclasses", namespaced=False),
    _res(_NET, "v1", "Ingress", "ingresses", short=("ing",), status=True),
    _res(_NET, "v1", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    _res("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), status=True),
    _res(_RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False),
    _res(_RBAC, "v1", "ClusterRole", "clusterroles", namespaced=False),
    _res(_RBAC, "v1", "RoleBinding", "rolebindings"),
    _res(_RBAC, "v1", "Role", "roles"),
    _res("storage.k8s.io", "v1", "CSIDriver", "csidrivers", namespaced=False),
    _res("storage.k8s.io", "v1", "CSINode", "csinodes", namespaced=False),
    _res("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities"),
    _res("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False, short=("sc",)),
    _res("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", namespaced=False, status=True),
    _res("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", namespaced=False, short=("pc",)),
    _res("coordination.k8s.io", "v1", "Lease", "leases"),
    _res("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
)


@cache
def _by_plural() -> dict[tuple[str, str, str], ResourceInfo]:
    return {(r.group, r.version, r.plural): r for r in RESOURCES}


@cache
def _by_kind() -> dict[tuple[str, str], ResourceInfo]:
    return {(r.api_version, r.kind): r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceInfo | None:
    """The resource served at ``/api[s]/<group>/<version>/.../<plural>``; ``group`` is "" for core."""
    return _by_plural().get((group, version, plural))


def by_kind(api_version: str, kind: str) -> ResourceInfo | None:
    """The resource whose objects carry ``apiVersion: api_version`` and ``kind: kind``."""
    return _by_kind().get((api_version, kind))


def groups() -> list[tuple[str, list[str]]]:
    """``(group, [versions])`` in discovery order, core ("") first; versions preferred-first."""
    out: dict[str, list[str]] = {}
    for r in RESOURCES:
        versions = out.setdefault(r.group, [])
        if r.version not in versions:
            versions.append(r.version)
    return list(out.items())


def resources_in(group: str, version: str) -> list[ResourceInfo]:
    """Every resource of one group-version, sorted by plural name (the order discovery lists)."""
    return sorted((r for r in RESOURCES if r.group == group and r.version == version), key=lambda r: r.plural)
