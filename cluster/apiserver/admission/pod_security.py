"""PodSecurity: kube-apiserver's built-in Pod Security Admission.

A namespace chooses a Pod Security Standard per mode with labels
``pod-security.kubernetes.io/<mode>: privileged|baseline|restricted`` and, optionally,
``pod-security.kubernetes.io/<mode>-version: latest|v1.N`` (shown in messages; the checks are the
latest ones, ``pod_security_checks``). No label means ``privileged``; a level that is not one of the
three is evaluated as ``restricted`` (fail closed, as kube does).

* ``enforce``: a pod (create, a spec-changing update, ``ephemeralcontainers``) that fails the level
  is refused: ``pods "x" is forbidden: violates PodSecurity "restricted:latest": privileged
  (container "x" must not set securityContext.privileged=true), ...``.
* ``warn``: the client gets ``Warning: would violate PodSecurity "restricted:latest": ...`` (kubectl
  prints it), for pods and for the pod templates of workloads (Deployment, ReplicaSet, StatefulSet,
  DaemonSet, Job, CronJob, ReplicationController, PodTemplate), which are never refused.
* ``audit``: the request's audit event gets ``pod-security.kubernetes.io/audit-violations``.
* A namespace's labels must name a known level and a ``latest``/``v1.N`` version (422 otherwise,
  unless an update leaves bad labels as they were).
* A namespace whose ``enforce`` label changes is checked against its pods: each violating pod is
  a warning (``existing pods in namespace "x" violate the new PodSecurity enforce level
  "restricted:latest"``, then ``pod: reason, reason``), nothing is refused.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Protocol

from cluster.apiserver.admission.forbidden import admission_forbidden
from cluster.apiserver.admission.interfaces import Attributes, NamespaceLookup, Operation, ValidatingPlugin
from cluster.apiserver.admission.pod_security_checks import LEVELS, PRIVILEGED, RESTRICTED, describe, evaluate
from cluster.apiserver.context import add_audit_annotation, add_warning
from cluster.apiserver.errors import StatusError
from cluster.apiserver.validation import invalid_message, status_details
from cluster.apiserver.validation.fields import Cause, invalid

LABEL_PREFIX = "pod-security.kubernetes.io/"
AUDIT_ANNOTATION = "pod-security.kubernetes.io/audit-violations"
ENFORCE_POLICY_ANNOTATION = "pod-security.kubernetes.io/enforce-policy"
MAX_NAMESPACE_WARNINGS = 10
WORKLOADS: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("", "ReplicationController"): ("spec", "template"),
    ("", "PodTemplate"): ("template",),
}


class PodLister(Protocol):
    async def namespaced_objects(
        self, group: str, version: str, plural: str, namespace: str
    ) -> list[dict[str, Any]]: ...


def policy(labels: dict[str, str], mode: str) -> tuple[str, str]:
    """(level, version) a namespace's labels set for ``mode`` (enforce, audit, warn)."""
    level = labels.get(f"{LABEL_PREFIX}{mode}")
    version = labels.get(f"{LABEL_PREFIX}{mode}-version") or "latest"
    if level is None:
        return PRIVILEGED, version
    return (level if level in LEVELS else RESTRICTED), version


MODES = ("enforce", "audit", "warn")
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


def label_errors(labels: dict[str, str]) -> list[Cause]:
    """kube's checks of a namespace's Pod Security labels: a known level, a ``latest``/``v1.N`` version."""
    causes: list[Cause] = []
    for mode in MODES:
        key = f"{LABEL_PREFIX}{mode}"
        if key in labels and labels[key] not in LEVELS:
            causes.append(
                invalid(f"metadata.labels[{key}]", labels[key], f"must be one of {', '.join(LEVELS)}")
            )
        version_key = f"{key}-version"
        if (
            version_key in labels
            and labels[version_key] != "latest"
            and not _VERSION.match(labels[version_key])
        ):
            causes.append(
                invalid(f"metadata.labels[{version_key}]", labels[version_key], 'must be "latest" or "v1.x"')
            )
    return causes


def _template(obj: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = obj
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _significant_update(attrs: Attributes) -> bool:
    """kube re-checks an updated pod only when its spec changed (labels or status alone do not)."""
    old = attrs.old_object or {}
    return (old.get("spec") or {}) != (attrs.object.get("spec") or {})


class PodSecurity(ValidatingPlugin):
    NAME: ClassVar[str] = "PodSecurity"
    OPERATIONS: ClassVar[frozenset[Operation]] = frozenset({Operation.CREATE, Operation.UPDATE})

    def __init__(self, namespaces: NamespaceLookup, pods: PodLister | None = None) -> None:
        self._namespaces = namespaces
        self._pods = pods

    async def _labels(self, namespace: str) -> dict[str, str]:
        ns = await self._namespaces.get_namespace(namespace)
        return dict(((ns or {}).get("metadata") or {}).get("labels") or {})

    async def validate(self, attrs: Attributes) -> None:
        kind = attrs.kind
        if kind == ("", "Namespace"):
            if not attrs.subresource:
                await self._namespace_changed(attrs)
            return
        if kind == ("", "Pod"):
            if attrs.subresource not in (None, "ephemeralcontainers"):
                return
            if attrs.operation == Operation.UPDATE and not _significant_update(attrs):
                return
            pod = attrs.object
            await self._check(attrs, pod.get("metadata") or {}, pod.get("spec") or {}, enforce=True)
        elif kind in WORKLOADS and not attrs.subresource:
            template = _template(attrs.object, WORKLOADS[kind])
            if template is not None:
                await self._check(
                    attrs, template.get("metadata") or {}, template.get("spec") or {}, enforce=False
                )

    async def _check(
        self, attrs: Attributes, meta: dict[str, Any], spec: dict[str, Any], *, enforce: bool
    ) -> None:
        if not attrs.namespace:
            return
        labels = await self._labels(attrs.namespace)
        results: dict[tuple[str, str], str] = {}

        def failures(level_version: tuple[str, str]) -> str:
            if level_version not in results:
                results[level_version] = describe(evaluate(level_version[0], meta, spec))
            return results[level_version]

        enforced = policy(labels, "enforce")
        if enforce:
            add_audit_annotation(ENFORCE_POLICY_ANNOTATION, f"{enforced[0]}:{enforced[1]}")
            if failures(enforced):
                raise admission_forbidden(
                    attrs, f'violates PodSecurity "{enforced[0]}:{enforced[1]}": {failures(enforced)}'
                )
        audited = policy(labels, "audit")
        if failures(audited):
            add_audit_annotation(
                AUDIT_ANNOTATION,
                f'would violate PodSecurity "{audited[0]}:{audited[1]}": {failures(audited)}',
            )
        warned = policy(labels, "warn")
        if failures(warned):
            add_warning(f'would violate PodSecurity "{warned[0]}:{warned[1]}": {failures(warned)}')

    async def _namespace_changed(self, attrs: Attributes) -> None:
        """Warn about the namespace's pods that its new ``enforce`` level would refuse."""
        new_labels = (attrs.object.get("metadata") or {}).get("labels") or {}
        old_labels = ((attrs.old_object or {}).get("metadata") or {}).get("labels") or {}
        causes = label_errors(new_labels)
        if causes and (attrs.operation == Operation.CREATE or label_errors(old_labels) != causes):
            raise StatusError(
                422,
                "Invalid",
                invalid_message("Namespace", attrs.name, causes),
                details=status_details("Namespace", attrs.name, causes),
            )
        level, version = policy(new_labels, "enforce")
        if attrs.operation != Operation.UPDATE or level == PRIVILEGED or self._pods is None:
            return
        if policy(old_labels, "enforce") == (level, version):
            return
        violating: list[tuple[str, str]] = []
        for pod in await self._pods.namespaced_objects("", "v1", "pods", attrs.name):
            results = evaluate(level, pod.get("metadata") or {}, pod.get("spec") or {})
            if results:
                violating.append((pod["metadata"]["name"], ", ".join(reason for reason, _ in results)))
        if not violating:
            return
        add_warning(
            f'existing pods in namespace "{attrs.name}" violate the new PodSecurity enforce level '
            f'"{level}:{version}"'
        )
        by_reasons: dict[str, list[str]] = {}
        for name, reasons in sorted(violating):
            by_reasons.setdefault(reasons, []).append(name)
        for reasons, names in list(by_reasons.items())[:MAX_NAMESPACE_WARNINGS]:
            others = len(names) - 1
            who = (
                names[0]
                if not others
                else f"{names[0]} (and {others} other {'pod' if others == 1 else 'pods'})"
            )
            add_warning(f"{who}: {reasons}")
