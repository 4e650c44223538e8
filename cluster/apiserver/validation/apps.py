"""apps/v1: Deployments, ReplicaSets, StatefulSets, DaemonSets and ControllerRevisions.

Shared rules: a non-empty selector is required and must match the template's labels; templates
may only use restartPolicy Always and no activeDeadlineSeconds; selectors never change on update.
"""

from __future__ import annotations

import re
from typing import Any

from cluster.apiserver.validation import names
from cluster.apiserver.validation.fields import (
    Cause,
    GoLiteral,
    as_dict,
    as_list,
    child,
    forbidden,
    go_quote,
    invalid,
    nonnegative,
    not_supported,
    required,
)
from cluster.apiserver.validation.meta import (
    selector_is_empty,
    selector_literal,
    selector_matches,
    validate_label_selector,
)
from cluster.apiserver.validation.pod import validate_pod_template_spec

_PERCENT_RE = re.compile(r"^[0-9]+%$")


def validate_selector_and_template(spec: dict[str, Any], what: str, path: str = "spec") -> list[Cause]:
    """Selector required, non-empty, valid; template labels must match it; template is valid."""
    causes: list[Cause] = []
    selector = spec.get("selector")
    if selector is None:
        causes.append(required(child(path, "selector")))
    else:
        causes += validate_label_selector(selector, child(path, "selector"))
        if selector_is_empty(selector):
            causes.append(
                invalid(
                    child(path, "selector"),
                    selector_literal(selector),
                    f"empty selector is invalid for {what}",
                )
            )
    template = as_dict(spec.get("template"))
    labels = as_dict(as_dict(template.get("metadata")).get("labels"))
    if (selector is None or not selector_is_empty(selector)) and not selector_matches(selector, labels):
        causes.append(
            invalid(
                child(path, "template.metadata.labels"), labels, "`selector` does not match template `labels`"
            )
        )
    causes += validate_pod_template_spec(template, child(path, "template"))
    return causes


def validate_always_restart_template(spec: dict[str, Any], owner: str, path: str = "spec") -> list[Cause]:
    tspec = as_dict(as_dict(spec.get("template")).get("spec"))
    causes: list[Cause] = []
    policy = tspec.get("restartPolicy", "Always")
    if policy != "Always":
        causes.append(not_supported(child(path, "template.spec.restartPolicy"), policy, ("Always",)))
    if tspec.get("activeDeadlineSeconds") is not None:
        causes.append(
            forbidden(
                child(path, "template.spec.activeDeadlineSeconds"),
                f"activeDeadlineSeconds in {owner} is not Supported",
            )
        )
    return causes


def int_or_percent(value: Any) -> tuple[int, bool] | None:
    """(number, is_percent) for an IntOrString, None if malformed."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value, False
    if isinstance(value, str) and _PERCENT_RE.match(value):
        return int(value[:-1]), True
    return None


def validate_positive_int_or_percent(value: Any, path: str) -> list[Cause]:
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            msg = "a valid percent string must be a numeric string followed by an ending '%'"
            return [invalid(path, value, names.regex_error(msg, "[0-9]+%", "1%", "93%"))]
        return []
    return nonnegative(value, path)


def validate_rolling_update(ru: dict[str, Any], path: str) -> list[Cause]:
    mu_path, ms_path = child(path, "maxUnavailable"), child(path, "maxSurge")
    causes = validate_positive_int_or_percent(ru.get("maxUnavailable"), mu_path)
    causes += validate_positive_int_or_percent(ru.get("maxSurge"), ms_path)
    mu, ms = int_or_percent(ru.get("maxUnavailable", 0)), int_or_percent(ru.get("maxSurge", 0))
    if mu is not None and ms is not None and mu[0] == 0 and ms[0] == 0:
        causes.append(invalid(mu_path, ru.get("maxUnavailable", 0), "may not be 0 when `maxSurge` is 0"))
    if mu is not None and mu[1] and mu[0] > 100:
        causes.append(invalid(mu_path, ru.get("maxUnavailable"), "must not be greater than 100%"))
    return causes


def _strategy_literal(strategy: dict[str, Any], go_type: str) -> GoLiteral:
    return GoLiteral(f"apps.{go_type}{{Type:{go_quote(str(strategy.get('type', '')))}, RollingUpdate:...}}")


def _common_counts(spec: dict[str, Any]) -> list[Cause]:
    causes = nonnegative(spec.get("replicas"), "spec.replicas")
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    return causes


def validate_deployment(obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = _common_counts(spec)
    causes += validate_selector_and_template(spec, "deployment")
    causes += validate_always_restart_template(spec, "ReplicaSet")
    strategy = as_dict(spec.get("strategy"))
    stype = strategy.get("type", "RollingUpdate")
    if stype == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            causes.append(
                forbidden(
                    "spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"
                )
            )
    elif stype == "RollingUpdate":
        causes += validate_rolling_update(
            as_dict(strategy.get("rollingUpdate")), "spec.strategy.rollingUpdate"
        )
    else:
        causes.append(
            not_supported(
                "spec.strategy",
                _strategy_literal(strategy, "DeploymentStrategy"),
                ("Recreate", "RollingUpdate"),
            )
        )
    pds = spec.get("progressDeadlineSeconds")
    if isinstance(pds, int):
        causes += nonnegative(pds, "spec.progressDeadlineSeconds")
        if pds <= (spec.get("minReadySeconds") or 0):
            causes.append(
                invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds")
            )
    return causes


def validate_replica_set(obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative(spec.get("replicas"), "spec.replicas")
    causes += nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += validate_selector_and_template(spec, "deployment")
    causes += validate_always_restart_template(spec, "ReplicaSet")
    return causes


def _with_claim_volumes(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with a persistentVolumeClaim volume per ``volumeClaimTemplates`` entry in the template,
    as the StatefulSet controller gives its pods, so volumeMounts may name a claim template."""
    claims = [as_dict(c) for c in as_list(spec.get("volumeClaimTemplates"))]
    names = [as_dict(c.get("metadata")).get("name") or "" for c in claims]
    if not any(names):
        return spec
    template = as_dict(spec.get("template"))
    pod_spec = as_dict(template.get("spec"))
    volumes = [v for v in as_list(pod_spec.get("volumes")) if as_dict(v).get("name") not in names]
    volumes += [{"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names if n]
    return {**spec, "template": {**template, "spec": {**pod_spec, "volumes": volumes}}}


def validate_stateful_set(obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    policy = spec.get("podManagementPolicy", "OrderedReady")
    if not policy:
        causes.append(required("spec.podManagementPolicy"))
    elif policy not in ("OrderedReady", "Parallel"):
        causes.append(invalid("spec.podManagementPolicy", policy, "must be 'OrderedReady' or 'Parallel'"))
    strategy = as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type", "RollingUpdate")
    if stype == "OnDelete" and strategy.get("rollingUpdate") is not None:
        causes.append(
            invalid(
                "spec.updateStrategy.rollingUpdate",
                GoLiteral("apps.RollingUpdateStatefulSetStrategy{...}"),
                "only allowed for updateStrategy 'RollingUpdate'",
            )
        )
    elif stype == "RollingUpdate":
        ru = as_dict(strategy.get("rollingUpdate"))
        causes += nonnegative(ru.get("partition"), "spec.updateStrategy.rollingUpdate.partition")
    elif stype != "OnDelete":
        causes.append(
            invalid(
                "spec.updateStrategy",
                _strategy_literal(strategy, "StatefulSetUpdateStrategy"),
                "must be 'RollingUpdate' or 'OnDelete'",
            )
        )
    causes += _common_counts(spec)
    causes += validate_selector_and_template(_with_claim_volumes(spec), "statefulset")
    causes += validate_always_restart_template(spec, "StatefulSet")
    retention = as_dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for f in ("whenDeleted", "whenScaled"):
        if f in retention and retention[f] not in ("Retain", "Delete"):
            causes.append(
                not_supported(
                    child("spec.persistentVolumeClaimRetentionPolicy", f), retention[f], ("Retain", "Delete")
                )
            )
    if spec.get("serviceName"):
        causes.extend(
            invalid("spec.serviceName", spec["serviceName"], m)
            for m in names.dns1123_label(spec["serviceName"])
        )
    return causes


def validate_daemon_set(obj: dict[str, Any]) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
    causes += nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
    causes += validate_selector_and_template(spec, "daemonset")
    causes += validate_always_restart_template(spec, "DaemonSet")
    strategy = as_dict(spec.get("updateStrategy"))
    stype = strategy.get("type", "RollingUpdate")
    if stype == "RollingUpdate":
        if "type" in strategy and strategy.get("rollingUpdate") is None:
            causes.append(required("spec.updateStrategy.rollingUpdate"))
        else:
            causes += validate_rolling_update(
                as_dict(strategy.get("rollingUpdate")) or {"maxUnavailable": 1},
                "spec.updateStrategy.rollingUpdate",
            )
    elif stype != "OnDelete":
        causes.append(
            not_supported(
                "spec.updateStrategy",
                _strategy_literal(strategy, "DaemonSetUpdateStrategy"),
                ("RollingUpdate", "OnDelete"),
            )
        )
    return causes


def validate_controller_revision(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if obj.get("data") is None:
        causes.append(required("data", "data is mandatory"))
    return causes + nonnegative(obj.get("revision"), "revision")


def validate_selector_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    ns, os_ = as_dict(new.get("spec")).get("selector"), as_dict(old.get("spec")).get("selector")
    if ns != os_:
        return [invalid("spec.selector", selector_literal(ns), "field is immutable")]
    return []


_STS_MUTABLE = (
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
)


def _without(spec: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k not in fields}


def validate_stateful_set_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    ns, os_ = as_dict(new.get("spec")), as_dict(old.get("spec"))
    if _without(ns, _STS_MUTABLE) != _without(os_, _STS_MUTABLE):
        return [
            forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                "'minReadySeconds' are forbidden",
            )
        ]
    return []


def validate_controller_revision_update(new: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    if new.get("data") != old.get("data"):
        return [invalid("data", GoLiteral("runtime.RawExtension{...}"), "field is immutable")]
    return []
