"""podFailurePolicy matching (kube's ``pod_failure_policy.go``): the first rule that matches a failed
pod decides what its failure means.

* ``FailJob``: the whole Job fails at once (reason ``PodFailurePolicy``, message naming the rule);
* ``Ignore``: the failure does not count against ``backoffLimit`` (the pod is replaced);
* ``Count``: the failure counts as usual (also what happens when no rule matches);
* ``FailIndex``: counts, and fails the index under ``backoffLimitPerIndex`` (not implemented here, so
  it acts as ``Count``).

A rule matches on ``onExitCodes`` (a terminated container, optionally a named one, whose non-zero exit
code is ``In``/``NotIn`` the values; exit code 0 never matches) or on ``onPodConditions`` (a pod
condition of that type with that status). Only pods in phase ``Failed`` are matched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

FAIL_JOB = "FailJob"
IGNORE = "Ignore"
COUNT = "Count"
FAIL_INDEX = "FailIndex"


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """What a matching rule said about one failed pod; ``message`` is set for ``FailJob``."""

    action: str
    rule_index: int
    message: str | None = None

    @property
    def counts(self) -> bool:
        return self.action != IGNORE


def _matching_container(rule: Mapping[str, Any], pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    requirement = rule.get("onExitCodes")
    if not isinstance(requirement, Mapping):
        return None
    wanted = requirement.get("containerName")
    operator = requirement.get("operator")
    values = set(requirement.get("values") or ())
    status = pod.get("status") or {}
    for cs in [*(status.get("containerStatuses") or ()), *(status.get("initContainerStatuses") or ())]:
        if wanted and cs.get("name") != wanted:
            continue
        terminated = (cs.get("state") or {}).get("terminated")
        if not isinstance(terminated, Mapping):
            continue
        code = int(terminated.get("exitCode") or 0)
        if code == 0:
            continue
        if (operator == "In" and code in values) or (operator == "NotIn" and code not in values):
            return cs  # type: ignore[no-any-return]
    return None


def _matching_condition(rule: Mapping[str, Any], pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    patterns = rule.get("onPodConditions") or ()
    for cond in (pod.get("status") or {}).get("conditions") or ():
        for pattern in patterns:
            if cond.get("type") == pattern.get("type") and cond.get("status") == pattern.get(
                "status", "True"
            ):
                return cond  # type: ignore[no-any-return]
    return None


def match_pod_failure_policy(policy: Mapping[str, Any] | None, pod: Mapping[str, Any]) -> PolicyMatch | None:
    """The first rule of ``policy`` matching the failed ``pod``; None when none does (or no policy)."""
    if not policy or (pod.get("status") or {}).get("phase") != "Failed":
        return None
    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for index, rule in enumerate(policy.get("rules") or ()):
        action = str(rule.get("action", ""))
        container = _matching_container(rule, pod)
        if container is not None:
            code = container["state"]["terminated"].get("exitCode")
            message = (
                f"Container {container.get('name')} for pod {where} failed with exit code {code} "
                f"matching {action} rule at index {index}"
            )
            return PolicyMatch(action, index, message if action == FAIL_JOB else None)
        cond = _matching_condition(rule, pod)
        if cond is not None:
            message = f"Pod {where} has condition {cond.get('type')} matching {action} rule at index {index}"
            return PolicyMatch(action, index, message if action == FAIL_JOB else None)
    return None
