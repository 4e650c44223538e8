"""Defaults for apps/v1 and batch/v1 workloads (pkg/apis/apps/v1 and batch/v1 defaults.go).

Every template's pod spec gets the pod-spec defaults; Job templates included (a Job without a
restartPolicy therefore becomes Always and fails validation, as in Kubernetes).
"""

from __future__ import annotations

from typing import Any

from cluster.apiserver.defaults.pod import default_pod_template


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def _sub(parent: dict[str, Any], key: str) -> dict[str, Any] | None:
    value = parent.setdefault(key, {})
    return value if isinstance(value, dict) else None


def default_deployment(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    strategy = _sub(spec, "strategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _sub(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", "25%")
                rolling.setdefault("maxSurge", "25%")
    spec.setdefault("revisionHistoryLimit", 10)
    spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(spec.get("template"))


def default_replica_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("replicas", 1)
    default_pod_template(spec.get("template"))


def default_stateful_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("podManagementPolicy", "OrderedReady")
    strategy = _sub(spec, "updateStrategy")
    if strategy is not None:
        if "type" not in strategy:
            strategy["type"] = "RollingUpdate"
            strategy.setdefault("rollingUpdate", {})
        rolling = strategy.get("rollingUpdate")
        if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict):
            rolling.setdefault("partition", 0)
    retention = _sub(spec, "persistentVolumeClaimRetentionPolicy")
    if retention is not None:
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
    spec.setdefault("replicas", 1)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.get("template"))
    claims = spec.get("volumeClaimTemplates")
    for claim in claims if isinstance(claims, list) else []:
        if isinstance(claim, dict):
            claim.setdefault("apiVersion", "v1")
            claim.setdefault("kind", "PersistentVolumeClaim")
            claim_spec = _sub(claim, "spec")
            if claim_spec is not None:
                claim_spec.setdefault("volumeMode", "Filesystem")
            status = _sub(claim, "status")
            if status is not None:
                status.setdefault("phase", "Pending")


def default_daemon_set(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    strategy = _sub(spec, "updateStrategy")
    if strategy is not None:
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = _sub(strategy, "rollingUpdate")
            if rolling is not None:
                rolling.setdefault("maxUnavailable", 1)
                rolling.setdefault("maxSurge", 0)
    spec.setdefault("revisionHistoryLimit", 10)
    default_pod_template(spec.get("template"))


def default_job(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    if "completions" not in spec and "parallelism" not in spec:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    if "backoffLimit" not in spec:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else 6
    template = spec.get("template")
    template_labels = template.get("metadata", {}).get("labels") if isinstance(template, dict) else None
    meta = obj.setdefault("metadata", {})
    if isinstance(template_labels, dict) and isinstance(meta, dict) and not meta.get("labels"):
        meta["labels"] = dict(template_labels)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if "podReplacementPolicy" not in spec:
        spec["podReplacementPolicy"] = (
            "Failed" if spec.get("podFailurePolicy") is not None else "TerminatingOrFailed"
        )
    failure_policy = spec.get("podFailurePolicy")
    rules = failure_policy.get("rules") if isinstance(failure_policy, dict) else None
    for rule in rules if isinstance(rules, list) else []:
        conditions = rule.get("onPodConditions") if isinstance(rule, dict) else None
        for cond in conditions if isinstance(conditions, list) else []:
            if isinstance(cond, dict):
                cond.setdefault("status", "True")
    default_pod_template(template)


def default_cron_job(obj: dict[str, Any]) -> None:
    spec = _spec(obj)
    spec.setdefault("concurrencyPolicy", "Allow")
    spec.setdefault("suspend", False)
    spec.setdefault("successfulJobsHistoryLimit", 3)
    spec.setdefault("failedJobsHistoryLimit", 1)
    job_template = spec.get("jobTemplate")
    job_spec = job_template.get("spec") if isinstance(job_template, dict) else None
    if isinstance(job_spec, dict):
        default_pod_template(job_spec.get("template"))
