"""Container validation: names, image, ports, env, mounts, probes, resources, pull policy.

Mirrors validateContainerCommon and friends in pkg/apis/core/validation. The input is expected to
be defaulted (`apply_defaults`), but fields that defaulting fills are only checked when present, so
an undefaulted object yields the same causes for everything the user actually wrote.
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    as_dict,
    as_list,
    child,
    dicts,
    duplicate,
    forbidden,
    index,
    invalid,
    key,
    nonnegative,
    not_found,
    not_supported,
    required,
)
from cluster.machinery.quantity import QuantityError, parse_quantity

PROTOCOLS = ("SCTP", "TCP", "UDP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_TERMINATION_MESSAGE_POLICIES = ("File", "FallbackToLogsOnError")
_STANDARD_CONTAINER_RESOURCES = frozenset({"cpu", "memory", "ephemeral-storage"})
_OVERCOMMIT_FORBIDDEN_PREFIXES = ("hugepages-",)
_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc", "sleep")


def port_num_or_name(port: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName for an IntOrString port."""
    if isinstance(port, int) and not isinstance(port, bool):
        return [invalid(path, port, m) for m in names.port_num(port)]
    if isinstance(port, str):
        if not port:
            return [required(path)]
        return [invalid(path, port, m) for m in names.port_name(port)]
    return [invalid(path, port, "must be an integer or a port name")]


def validate_container_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, port in enumerate(dicts(ports)):
        p = index(path, i)
        name = port.get("name") or ""
        if name:
            msgs = names.port_name(name)
            if msgs:
                causes.extend(invalid(child(p, "name"), name, m) for m in msgs)
            elif name in seen:
                causes.append(duplicate(child(p, "name"), name))
            else:
                seen.add(name)
        cp = port.get("containerPort") or 0
        if cp == 0:
            causes.append(required(child(p, "containerPort")))
        else:
            causes.extend(invalid(child(p, "containerPort"), cp, m) for m in names.port_num(cp))
        hp = port.get("hostPort") or 0
        if hp != 0:
            causes.extend(invalid(child(p, "hostPort"), hp, m) for m in names.port_num(hp))
        if "protocol" in port and port["protocol"] not in PROTOCOLS:
            if not port["protocol"]:
                causes.append(required(child(p, "protocol")))
            else:
                causes.append(not_supported(child(p, "protocol"), port["protocol"], PROTOCOLS))
    return causes


def validate_env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, var in enumerate(dicts(env)):
        p = index(path, i)
        name = var.get("name") or ""
        if not name:
            causes.append(required(child(p, "name")))
        else:
            causes.extend(invalid(child(p, "name"), name, m) for m in names.env_var_name(name))
        source = as_dict(var.get("valueFrom"))
        if "valueFrom" in var:
            kinds = [
                k
                for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
                if source.get(k)
            ]
            if var.get("value"):
                causes.append(
                    invalid(child(p, "valueFrom"), "", "may not be specified when `value` is not empty")
                )
            if not kinds:
                causes.append(
                    invalid(
                        child(p, "valueFrom"),
                        "",
                        "must specify one of: `fieldRef`, `resourceFieldRef`, "
                        "`configMapKeyRef` or `secretKeyRef`",
                    )
                )
            elif len(kinds) > 1:
                causes.append(
                    invalid(child(p, "valueFrom"), "", "may not have more than one field specified at a time")
                )
            for ref in ("configMapKeyRef", "secretKeyRef"):
                if ref in source and not as_dict(source[ref]).get("key"):
                    causes.append(required(child(p, "valueFrom", ref, "key")))
            if "fieldRef" in source and not as_dict(source["fieldRef"]).get("fieldPath"):
                causes.append(required(child(p, "valueFrom", "fieldRef", "fieldPath")))
    return causes


def validate_volume_mounts(mounts: Any, volumes: set[str], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen_paths: set[str] = set()
    for i, mount in enumerate(dicts(mounts)):
        p = index(path, i)
        name, mount_path = mount.get("name") or "", mount.get("mountPath") or ""
        if not name:
            causes.append(required(child(p, "name")))
        elif name not in volumes:
            causes.append(not_found(child(p, "name"), name))
        if not mount_path:
            causes.append(required(child(p, "mountPath")))
        elif mount_path in seen_paths:
            causes.append(invalid(child(p, "mountPath"), mount_path, "must be unique"))
        else:
            seen_paths.add(mount_path)
        sub = mount.get("subPath") or ""
        if sub.startswith("/"):
            causes.append(invalid(child(p, "subPath"), sub, "must be a relative path"))
        elif ".." in sub.split("/"):
            causes.append(invalid(child(p, "subPath"), sub, "must not contain '..'"))
    return causes


def _resource_name(name: str, path: str) -> list[Cause]:
    causes = [invalid(path, name, m) for m in names.qualified_name(name)]
    if (
        not causes
        and "/" not in name
        and name not in _STANDARD_CONTAINER_RESOURCES
        and not name.startswith("hugepages-")
    ):
        causes.append(invalid(path, name, "must be a standard resource for containers"))
    return causes


def _quantity(value: Any, path: str) -> tuple[Any, list[Cause]]:
    try:
        q = parse_quantity(value)
    except QuantityError as exc:
        return None, [invalid(path, value, str(exc))]
    if q < 0:
        return q, [invalid(path, value, "must be greater than or equal to 0")]
    return q, []


def validate_resources(resources: Any, path: str) -> list[Cause]:
    """ValidateResourceRequirements: names, non-negative quantities, requests <= limits."""
    res = as_dict(resources)
    causes: list[Cause] = []
    limits: dict[str, Any] = {}
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    for name, value in as_dict(res.get("limits")).items():
        causes += _resource_name(name, key(lim_path, name))
        q, errs = _quantity(value, key(lim_path, name))
        causes += errs
        if q is not None:
            limits[name] = (q, value)
    for name, value in as_dict(res.get("requests")).items():
        causes += _resource_name(name, key(req_path, name))
        q, errs = _quantity(value, key(req_path, name))
        causes += errs
        if q is None or name not in limits:
            continue
        limit_q, limit_text = limits[name]
        if q != limit_q and name.startswith(_OVERCOMMIT_FORBIDDEN_PREFIXES):
            causes.append(invalid(req_path, str(value), f"must be equal to {name} limit of {limit_text}"))
        elif q > limit_q:
            causes.append(
                invalid(req_path, str(value), f"must be less than or equal to {name} limit of {limit_text}")
            )
    return causes


def validate_handler(handler: Any, path: str, kinds: tuple[str, ...] = _HANDLERS) -> list[Cause]:
    """validateHandler: exactly one handler type, each well formed."""
    h = as_dict(handler)
    causes: list[Cause] = []
    count = 0
    for kind in kinds:
        if h.get(kind) is None:
            continue
        if count:
            causes.append(forbidden(child(path, kind), "may not specify more than 1 handler type"))
            continue
        count += 1
        body, p = as_dict(h[kind]), child(path, kind)
        if kind == "exec" and not as_list(body.get("command")):
            causes.append(required(child(p, "command")))
        elif kind == "httpGet":
            if "path" in body and not body["path"]:
                causes.append(required(child(p, "path")))
            causes += port_num_or_name(body.get("port", ""), child(p, "port"))
            scheme = body.get("scheme")
            if scheme is not None and scheme not in ("HTTP", "HTTPS"):
                causes.append(not_supported(child(p, "scheme"), scheme, ("HTTP", "HTTPS")))
        elif kind == "tcpSocket":
            causes += port_num_or_name(body.get("port", ""), child(p, "port"))
        elif kind == "grpc":
            causes.extend(
                invalid(child(p, "port"), body.get("port"), m) for m in names.port_num(body.get("port"))
            )
        elif kind == "sleep":
            causes += nonnegative(body.get("seconds"), child(p, "seconds"))
    if count == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def validate_probe(probe: Any, path: str) -> list[Cause]:
    if probe is None:
        return []
    p = as_dict(probe)
    causes = validate_handler(p, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    for f in (
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ):
        causes += nonnegative(p.get(f), child(path, f))
    tgps = p.get("terminationGracePeriodSeconds")
    if isinstance(tgps, int) and tgps <= 0:
        causes.append(invalid(child(path, "terminationGracePeriodSeconds"), tgps, "must be greater than 0"))
    return causes


def validate_container(
    ctr: dict[str, Any], volumes: set[str], path: str, *, init: bool = False
) -> list[Cause]:
    """validateContainerCommon plus the probe rules for regular containers."""
    causes: list[Cause] = []
    name = ctr.get("name") or ""
    if not name:
        causes.append(required(child(path, "name")))
    else:
        causes.extend(invalid(child(path, "name"), name, m) for m in names.dns1123_label(name))
    if not ctr.get("image"):
        causes.append(required(child(path, "image")))
    if "terminationMessagePolicy" in ctr:
        tmp = ctr["terminationMessagePolicy"]
        if not tmp:
            causes.append(required(child(path, "terminationMessagePolicy")))
        elif tmp not in _TERMINATION_MESSAGE_POLICIES:
            causes.append(
                not_supported(child(path, "terminationMessagePolicy"), tmp, _TERMINATION_MESSAGE_POLICIES)
            )
    causes += validate_container_ports(ctr.get("ports"), child(path, "ports"))
    causes += validate_env(ctr.get("env"), child(path, "env"))
    causes += validate_volume_mounts(ctr.get("volumeMounts"), volumes, child(path, "volumeMounts"))
    if "imagePullPolicy" in ctr:
        ipp = ctr["imagePullPolicy"]
        if not ipp:
            causes.append(required(child(path, "imagePullPolicy")))
        elif ipp not in PULL_POLICIES:
            causes.append(not_supported(child(path, "imagePullPolicy"), ipp, PULL_POLICIES))
    causes += validate_resources(ctr.get("resources"), child(path, "resources"))
    sidecar = init and ctr.get("restartPolicy") == "Always"
    if init and not sidecar:
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if ctr.get(probe) is not None:
                causes.append(
                    forbidden(
                        child(path, probe), "may not be set for init containers without restartPolicy=Always"
                    )
                )
        return causes
    if init and ctr.get("restartPolicy") not in (None, "Always"):
        causes.append(not_supported(child(path, "restartPolicy"), ctr["restartPolicy"], ("Always",)))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        causes += validate_probe(ctr.get(probe), child(path, probe))
    for probe in ("livenessProbe", "startupProbe"):
        st = as_dict(ctr.get(probe)).get("successThreshold")
        if ctr.get(probe) is not None and st is not None and st != 1:
            causes.append(invalid(child(path, probe, "successThreshold"), st, "must be 1"))
    if as_dict(ctr.get("readinessProbe")).get("terminationGracePeriodSeconds") is not None:
        causes.append(
            forbidden(
                child(path, "readinessProbe", "terminationGracePeriodSeconds"),
                "must not be set for readinessProbes",
            )
        )
    lifecycle = as_dict(ctr.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        if lifecycle.get(hook) is not None:
            causes += validate_handler(
                lifecycle[hook], child(path, "lifecycle", hook), ("exec", "httpGet", "tcpSocket", "sleep")
            )
    return causes
