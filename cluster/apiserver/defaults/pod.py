"""Defaults for pod specs (Pods and every template), as pkg/apis/core/v1/defaults.go sets them.

Each function mutates the dict it is given in place (the package entry point works on a deep copy)
and only fills fields that are absent, so applying defaults twice changes nothing.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation.pod import VOLUME_SOURCES

DEFAULT_TERMINATION_GRACE_PERIOD = 30
DEFAULT_VOLUME_MODE = 420  # 0644
_HANDLER_HOLDERS = ("livenessProbe", "readinessProbe", "startupProbe")


def _dict(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.get(key)
    return value if isinstance(value, dict) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def image_tag(image: str) -> tuple[str, bool]:
    """(tag, has_digest) of an image reference; a registry port is not a tag."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.rpartition(":")[2] if ":" in last else ""
    return tag, bool(digest)


def default_pull_policy(image: str) -> str:
    """Always for ":latest" or an untagged, undigested image; IfNotPresent otherwise."""
    tag, has_digest = image_tag(image)
    if tag == "latest" or (not tag and not has_digest):
        return "Always"
    return "IfNotPresent"


def _default_http_get(handler: dict[str, Any]) -> None:
    http = _dict(handler, "httpGet")
    if http is not None:
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")


def _default_probe(probe: dict[str, Any]) -> None:
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    _default_http_get(probe)
    grpc = _dict(probe, "grpc")
    if grpc is not None:
        grpc.setdefault("service", "")


def _default_env(env: Any) -> None:
    for var in _dicts(env):
        source = _dict(var, "valueFrom")
        field_ref = _dict(source, "fieldRef") if source else None
        if field_ref is not None:
            field_ref.setdefault("apiVersion", "v1")


def default_container(ctr: dict[str, Any]) -> None:
    if "imagePullPolicy" not in ctr:
        image = ctr.get("image")
        # An unparseable (e.g. empty) image has no tag: IfNotPresent, as in Kubernetes.
        ctr["imagePullPolicy"] = (
            default_pull_policy(image) if isinstance(image, str) and image else "IfNotPresent"
        )
    ctr.setdefault("terminationMessagePath", "/dev/termination-log")
    ctr.setdefault("terminationMessagePolicy", "File")
    ctr.setdefault("resources", {})
    for port in _dicts(ctr.get("ports")):
        port.setdefault("protocol", "TCP")
    _default_env(ctr.get("env"))
    for holder in _HANDLER_HOLDERS:
        probe = _dict(ctr, holder)
        if probe is not None:
            _default_probe(probe)
    lifecycle = _dict(ctr, "lifecycle")
    for hook in ("postStart", "preStop") if lifecycle else ():
        handler = _dict(lifecycle, hook) if lifecycle else None
        if handler is not None:
            _default_http_get(handler)


def _default_volume(vol: dict[str, Any]) -> None:
    if not any(vol.get(s) is not None for s in VOLUME_SOURCES):
        vol["emptyDir"] = {}
    for source in ("secret", "configMap", "downwardAPI", "projected"):
        body = _dict(vol, source)
        if body is not None:
            body.setdefault("defaultMode", DEFAULT_VOLUME_MODE)
    projected = _dict(vol, "projected")
    for src in _dicts(projected.get("sources")) if projected else []:
        token = _dict(src, "serviceAccountToken")
        if token is not None:
            token.setdefault("expirationSeconds", 3600)
    host_path = _dict(vol, "hostPath")
    if host_path is not None:
        host_path.setdefault("type", "")
    for source in ("iscsi",):
        body = _dict(vol, source)
        if body is not None:
            body.setdefault("iscsiInterface", "default")


def default_pod_spec(spec: dict[str, Any]) -> None:
    """SetDefaults_PodSpec plus the container, volume and probe defaults inside it."""
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("securityContext", {})
    spec.setdefault("terminationGracePeriodSeconds", DEFAULT_TERMINATION_GRACE_PERIOD)
    spec.setdefault("schedulerName", "default-scheduler")
    # The deprecated serviceAccount mirrors serviceAccountName (v1 conversion).
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    elif spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]
    host_network = spec.get("hostNetwork") is True
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for ctr in _dicts(spec.get(group)):
            default_container(ctr)
            if host_network:
                for port in _dicts(ctr.get("ports")):
                    port.setdefault("hostPort", port.get("containerPort"))
    for vol in _dicts(spec.get("volumes")):
        _default_volume(vol)


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict):
        spec = _dict(template, "spec")
        if spec is not None:
            default_pod_spec(spec)


def default_pod(pod: dict[str, Any]) -> None:
    """SetDefaults_Pod: pod-only defaults (requests from limits, service links) then the spec."""
    spec = _dict(pod, "spec")
    if spec is None:
        return
    for group in ("initContainers", "containers"):
        for ctr in _dicts(spec.get(group)):
            resources = _dict(ctr, "resources")
            limits = _dict(resources, "limits") if resources else None
            if resources is not None and limits:
                requests = resources.setdefault("requests", {})
                if isinstance(requests, dict):
                    for name, value in limits.items():
                        requests.setdefault(name, value)
    spec.setdefault("enableServiceLinks", True)
    default_pod_spec(spec)


def admission_defaults(pod: dict[str, Any]) -> None:
    """What admission plugins add to a new Pod in a stock cluster (in place).

    ServiceAccount: serviceAccountName "default" (mirrored to serviceAccount). Priority: priority 0 and
    preemptionPolicy PreemptLowerPriority when no priorityClassName resolves. DefaultTolerationSeconds
    is its own admission plugin (``admission/default_toleration_seconds.py``). The projected
    service-account token volume is not added here (its name is random).
    """
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    mirror = "kubernetes.io/config.mirror" in ((pod.get("metadata") or {}).get("annotations") or {})
    if not spec.get("serviceAccountName") and not mirror:  # kube leaves mirror pods without one
        spec["serviceAccountName"] = spec.get("serviceAccount") or "default"
    if spec.get("serviceAccountName"):
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
