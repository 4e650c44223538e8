"""Pod specs, pod templates and Pods (create and update), after pkg/apis/core/validation.

`validate_pod_spec` is shared by Pods and every workload template. `validate_pod_update` applies the
"pod spec is mostly immutable" rule: only container images, activeDeadlineSeconds (never raised or
removed), added tolerations and terminationGracePeriodSeconds (negative to 1) may change.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.containers import validate_container
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
    not_supported,
    required,
)
from cluster.apiserver.validation.meta import validate_annotations, validate_labels

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
MAX_INT32 = 2**31 - 1
VOLUME_SOURCES = (
    "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
    "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
    "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
    "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
    "image",
)  # fmt: skip
_SOURCE_REQUIRED_FIELD = {
    "hostPath": "path",
    "secret": "secretName",
    "configMap": "name",
    "persistentVolumeClaim": "claimName",
    "nfs": "server",
    "csi": "driver",
}


def validate_volumes(volumes: Any, path: str) -> tuple[set[str], list[Cause]]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, vol in enumerate(dicts(volumes)):
        p = index(path, i)
        name = vol.get("name") or ""
        if not name:
            causes.append(required(child(p, "name")))
        else:
            causes.extend(invalid(child(p, "name"), name, m) for m in names.dns1123_label(name))
            if name in seen:
                causes.append(duplicate(child(p, "name"), name))
            seen.add(name)
        sources = [s for s in VOLUME_SOURCES if vol.get(s) is not None]
        if not sources:
            causes.append(required(p, "must specify a volume type"))
        for extra in sources[1:]:
            causes.append(forbidden(child(p, extra), "may not specify more than 1 volume type"))
        if sources and sources[0] in _SOURCE_REQUIRED_FIELD:
            field = _SOURCE_REQUIRED_FIELD[sources[0]]
            if not as_dict(vol[sources[0]]).get(field):
                causes.append(required(child(p, sources[0], field)))
    return seen, causes


def validate_tolerations(tolerations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, tol in enumerate(dicts(tolerations)):
        p = index(path, i)
        k = tol.get("key") or ""
        if k:
            causes.extend(invalid(child(p, "key"), k, m) for m in names.qualified_name(k))
        op = tol.get("operator") or "Equal"
        if not k and op != "Exists":
            causes.append(
                invalid(
                    child(p, "operator"),
                    op,
                    "operator must be Exists when `key` is empty, which means "
                    '"match all values and all keys"',
                )
            )
        if op == "Exists" and tol.get("value"):
            causes.append(
                invalid(
                    child(p, "operator"), tol.get("value"), "value must be empty when `operator` is 'Exists'"
                )
            )
        elif op == "Equal":
            causes.extend(
                invalid(child(p, "value"), tol.get("value", ""), m)
                for m in names.label_value(str(tol.get("value", "")))
            )
        elif op not in ("Exists", "Equal"):
            causes.append(not_supported(child(p, "operator"), op, ("Equal", "Exists")))
        effect = tol.get("effect") or ""
        if tol.get("tolerationSeconds") is not None and effect != "NoExecute":
            causes.append(
                invalid(
                    child(p, "effect"), effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"
                )
            )
        if effect and effect not in _TAINT_EFFECTS:
            causes.append(not_supported(child(p, "effect"), effect, _TAINT_EFFECTS))
    return causes


def _choice(spec: dict[str, Any], field: str, allowed: tuple[str, ...], path: str) -> list[Cause]:
    if field not in spec:
        return []
    value = spec[field]
    if not value:
        return [required(child(path, field))]
    if value not in allowed:
        return [not_supported(child(path, field), value, allowed)]
    return []


def validate_pod_spec(spec_in: Any, path: str) -> list[Cause]:
    """ValidatePodSpec for a (defaulted) pod spec at `path`."""
    spec = as_dict(spec_in)
    volumes, causes = validate_volumes(spec.get("volumes"), child(path, "volumes"))
    containers = as_list(spec.get("containers"))
    if not containers:
        causes.append(required(child(path, "containers")))
    all_names: set[str] = set()
    for group, init in (("containers", False), ("initContainers", True)):
        for i, ctr in enumerate(dicts(spec.get(group))):
            p = index(child(path, group), i)
            causes += validate_container(ctr, volumes, p, init=init)
            name = ctr.get("name") or ""
            if name and name in all_names:
                causes.append(duplicate(child(p, "name"), name))
            all_names.add(name)
    causes += _choice(spec, "restartPolicy", RESTART_POLICIES, path)
    causes += _choice(spec, "dnsPolicy", DNS_POLICIES, path)
    causes += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    for field, rule in (
        ("serviceAccountName", names.subdomain_name),
        ("nodeName", names.subdomain_name),
        ("priorityClassName", names.subdomain_name),
    ):
        value = spec.get(field) or ""
        if value:
            causes.extend(invalid(child(path, field), value, m) for m in rule(value, False))
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads < 1 or ads > MAX_INT32):
        causes.append(
            invalid(child(path, "activeDeadlineSeconds"), ads, names.inclusive_range_error(1, MAX_INT32))
        )
    for field in ("hostname", "subdomain"):
        value = spec.get(field) or ""
        if value:
            causes.extend(invalid(child(path, field), value, m) for m in names.dns1123_label(value))
    causes += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    if "preemptionPolicy" in spec and spec["preemptionPolicy"] not in ("PreemptLowerPriority", "Never"):
        causes.append(
            not_supported(
                child(path, "preemptionPolicy"), spec["preemptionPolicy"], ("Never", "PreemptLowerPriority")
            )
        )
    for i, secret in enumerate(dicts(spec.get("imagePullSecrets"))):
        if not secret.get("name"):
            causes.append(required(child(index(child(path, "imagePullSecrets"), i), "name")))
    causes += validate_scheduling_gates(spec.get("schedulingGates"), child(path, "schedulingGates"))
    return causes


def validate_scheduling_gates(gates: Any, path: str) -> list[Cause]:
    """validateSchedulingGates: each name a qualified name, no name twice."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, gate in enumerate(dicts(gates)):
        name = str(gate.get("name") or "")
        causes.extend(invalid(index(path, i), name, m) for m in names.qualified_name(name))
        if name in seen:
            causes.append(duplicate(index(path, i), name))
        seen.add(name)
    return causes


def validate_only_deleted_scheduling_gates(new: Any, old: Any, path: str) -> list[Cause]:
    """validateOnlyDeletedSchedulingGates: gates may be removed after creation, never added."""
    old_names = {str(g.get("name") or "") for g in dicts(old)}
    return [
        forbidden(
            child(index(path, i), "name"),
            f"only deletion is allowed, but found new scheduling gate '{gate.get('name') or ''}'",
        )
        for i, gate in enumerate(dicts(new))
        if str(gate.get("name") or "") not in old_names
    ]


def validate_pod_template_spec(template: Any, path: str) -> list[Cause]:
    """ValidatePodTemplateSpec; like Kubernetes, template labels are reported at `<path>.labels`."""
    t = as_dict(template)
    meta = as_dict(t.get("metadata"))
    causes = validate_labels(meta.get("labels"), child(path, "labels"))
    causes += validate_annotations(meta.get("annotations"), child(path, "annotations"))
    causes += validate_pod_spec(t.get("spec"), child(path, "spec"))
    return causes


def validate_pod(pod: dict[str, Any]) -> list[Cause]:
    spec = as_dict(pod.get("spec"))
    causes = validate_pod_spec(spec, "spec")
    if spec.get("nodeName") and spec.get("schedulingGates"):
        causes.append(forbidden("spec.nodeName", "cannot be set until all schedulingGates have been cleared"))
    return causes


_UPDATABLE = (
    "`spec.containers[*].image`",
    "`spec.initContainers[*].image`",
    "`spec.activeDeadlineSeconds`",
    "`spec.tolerations` (only additions to existing tolerations)",
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
)


def _spec_diff(old: dict[str, Any], new: dict[str, Any]) -> str:
    lines = ["  core.PodSpec{"]
    for k in sorted(set(old) | set(new)):
        if old.get(k) != new.get(k):
            lines.append(f"- \t{k}: {json.dumps(old.get(k), sort_keys=True)},")
            lines.append(f"+ \t{k}: {json.dumps(new.get(k), sort_keys=True)},")
    lines.append("  }")
    return "\n".join(lines) + "\n"


def validate_pod_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    causes = validate_pod_spec(new_spec, "spec")
    new_ads, old_ads = new_spec.get("activeDeadlineSeconds"), old_spec.get("activeDeadlineSeconds")
    if new_ads is not None:
        if not isinstance(new_ads, int) or new_ads < 0 or new_ads > MAX_INT32:
            return [
                *causes,
                invalid("spec.activeDeadlineSeconds", new_ads, names.inclusive_range_error(0, MAX_INT32)),
            ]
        if isinstance(old_ads, int) and old_ads < new_ads:
            return [
                *causes,
                invalid(
                    "spec.activeDeadlineSeconds", new_ads, "must be less than or equal to previous value"
                ),
            ]
    elif old_ads is not None:
        causes.append(
            invalid(
                "spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"
            )
        )
    munged = copy.deepcopy(new_spec)
    for group in ("containers", "initContainers"):
        old_ctrs, new_ctrs = dicts(old_spec.get(group)), dicts(munged.get(group))
        if len(old_ctrs) == len(new_ctrs):
            for o, n in zip(old_ctrs, new_ctrs):
                if "image" in o:
                    n["image"] = o["image"]
    for field in ("activeDeadlineSeconds",):
        if field in old_spec:
            munged[field] = old_spec[field]
        else:
            munged.pop(field, None)
    old_tols, new_tols = as_list(old_spec.get("tolerations")), as_list(munged.get("tolerations"))
    if all(t in new_tols for t in old_tols):
        if "tolerations" in old_spec:
            munged["tolerations"] = old_spec["tolerations"]
        else:
            munged.pop("tolerations", None)
    # Gates may only be removed; any other change to them is reported by that rule alone.
    causes += validate_only_deleted_scheduling_gates(
        new_spec.get("schedulingGates"), old_spec.get("schedulingGates"), "spec.schedulingGates"
    )
    if "schedulingGates" in old_spec:
        munged["schedulingGates"] = old_spec["schedulingGates"]
    else:
        munged.pop("schedulingGates", None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and munged.get("terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if munged != old_spec:
        detail = "pod updates may not change fields other than " + ",".join(_UPDATABLE)
        causes.append(forbidden("spec", f"{detail}\n{_spec_diff(old_spec, munged)}"))
    return causes
