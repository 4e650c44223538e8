"""Jobs, CronJobs and TTL-after-finished through real kubectl 1.33 against `raykube up`, with pods
really running (the process runtime runs `sh -c ...` of `image: busybox` on the host).

A Job of 3 completions (parallelism 2) completes and `kubectl describe` shows it; a failing Job stops
at its backoffLimit with exactly backoffLimit+1 failed pods; an Indexed Job's pods see their
JOB_COMPLETION_INDEX; a CronJob every minute keeps only its successful-history limit of Jobs (about
two to three minutes of wall time); `kubectl create job --from=cronjob/...` runs; a Job with
ttlSecondsAfterFinished 0 disappears once finished. Backoff, deadlines and cron arithmetic are the
unit tests' business (tests/cluster/controllers/test_job_*.py, test_cronjob_*.py).

Every wait polls kubectl until the outcome shows or a deadline passes with a message saying what was
awaited and what was last seen.
"""

from __future__ import annotations

import functools
import json
import re
import time
from typing import Any

import pytest

from tests.integration import support
from tests.integration.conftest import Kubectl

pytestmark = pytest.mark.integration

WAIT = 120.0
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"


wait_until = functools.partial(support.wait_until, timeout=WAIT, every=1.0)


def job_spec(script: str, **spec: Any) -> dict[str, Any]:
    return {
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", script]}],
            }
        },
        **spec,
    }


def job(name: str, script: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": job_spec(script, **spec),
        }
    )


def cronjob(name: str, schedule: str, script: str, **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": job_spec(script)}, **spec},
        }
    )


def job_pods(k: Kubectl, name: str) -> list[dict[str, Any]]:
    return list(k.json("get", "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"])


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == ctype and cond.get("status") == "True":
            return dict(cond)
    return None


def events(k: Kubectl, kind: str, name: str) -> list[tuple[str, str]]:
    items = k.json(
        "get", "events", "--field-selector", f"involvedObject.kind={kind},involvedObject.name={name}"
    )
    return [(e.get("reason", ""), e.get("message", "")) for e in items["items"]]


def test_a_job_of_three_completions_succeeds(kubectl: Kubectl) -> None:
    kubectl.apply(job("three", "echo hi", completions=3, parallelism=2))
    kubectl.run("wait", "--for=condition=complete", "job/three", "--timeout=120s", timeout=150)
    status = kubectl.json("get", "job", "three")["status"]
    assert status["succeeded"] == 3
    assert not status.get("failed")
    assert status.get("completionTime") and status.get("startTime")
    pods = job_pods(kubectl, "three")
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    for pod in pods:
        assert TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []), "finalizer left on a pod"
        assert pod["metadata"]["labels"]["job-name"] == "three"
    assert kubectl.out("logs", pods[0]["metadata"]["name"]).strip() == "hi"

    def describe() -> str | None:
        out = kubectl.out("describe", "job", "three")
        return out if "Completed" in out else None

    described = wait_until(describe, "the Completed event in kubectl describe job")
    assert "SuccessfulCreate" in described
    assert re.search(r"Pods Statuses:\s+0 Active .*/ 3 Succeeded / 0 Failed", described), described


def test_a_failing_job_stops_at_its_backoff_limit(kubectl: Kubectl) -> None:
    kubectl.apply(job("fails", "exit 1", backoffLimit=1))
    failed = wait_until(
        lambda: condition(kubectl.json("get", "job", "fails"), "Failed"), "the Failed condition", timeout=180
    )
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert kubectl.json("get", "job", "fails")["status"]["failed"] == 2
    pods = job_pods(kubectl, "fails")
    assert [p["status"]["phase"] for p in pods] == ["Failed", "Failed"]
    reasons = [r for r, _ in events(kubectl, "Job", "fails")]
    assert reasons.count("SuccessfulCreate") == 2
    assert "BackoffLimitExceeded" in reasons


def test_indexed_job_pods_see_their_completion_index(kubectl: Kubectl) -> None:
    kubectl.apply(
        job(
            "idx",
            'echo "index=$JOB_COMPLETION_INDEX"',
            completions=3,
            parallelism=3,
            completionMode="Indexed",
        )
    )
    kubectl.run("wait", "--for=condition=complete", "job/idx", "--timeout=120s", timeout=150)
    assert kubectl.json("get", "job", "idx")["status"]["completedIndexes"] == "0-2"
    seen = {}
    for pod in job_pods(kubectl, "idx"):
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["spec"]["hostname"] == f"idx-{index}"
        seen[index] = kubectl.out("logs", pod["metadata"]["name"]).strip()
    assert seen == {"0": "index=0", "1": "index=1", "2": "index=2"}


def test_a_cronjob_every_minute_keeps_its_history_limit(kubectl: Kubectl) -> None:
    kubectl.apply(cronjob("tick", "*/1 * * * *", "echo tick", successfulJobsHistoryLimit=1))

    def trimmed() -> list[tuple[str, str]] | None:
        seen = events(kubectl, "CronJob", "tick")
        return seen if any(r == "SuccessfulDelete" for r, _ in seen) else None

    seen = wait_until(trimmed, "a second run and the first Job deleted by the history limit", timeout=210)
    created = [m for r, m in seen if r == "SuccessfulCreate"]
    assert len(created) >= 2 and all(m.startswith("Created job tick-") for m in created)
    assert any(r == "SawCompletedJob" and m.endswith("condition: Complete") for r, m in seen)
    cj = kubectl.json("get", "cronjob", "tick")
    assert cj["status"].get("lastScheduleTime") and cj["status"].get("lastSuccessfulTime")
    jobs = kubectl.json("get", "jobs")["items"]
    done = [j for j in jobs if condition(j, "Complete")]
    assert len(done) <= 1, [j["metadata"]["name"] for j in done]
    for item in jobs:
        minutes = int(item["metadata"]["name"].removeprefix("tick-"))
        stamp = item["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        assert time.strftime("%Y-%m-%dT%H:%M:00", time.gmtime(minutes * 60)) in stamp


def test_create_job_from_cronjob(kubectl: Kubectl) -> None:
    kubectl.apply(cronjob("manual-src", "0 0 1 1 *", "echo manual", suspend=True))
    kubectl.run("create", "job", "manual", "--from=cronjob/manual-src")
    kubectl.run("wait", "--for=condition=complete", "job/manual", "--timeout=120s", timeout=150)
    made = kubectl.json("get", "job", "manual")
    assert made["metadata"]["ownerReferences"][0]["name"] == "manual-src"
    assert made["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert kubectl.out("logs", "job/manual").strip() == "manual"
    wait_until(
        lambda: kubectl.json("get", "cronjob", "manual-src")["status"].get("lastSuccessfulTime"),
        "the CronJob's lastSuccessfulTime from the manual run",
    )


def test_ttl_after_finished_deletes_the_job(kubectl: Kubectl) -> None:
    kubectl.apply(job("short-lived", "echo bye", ttlSecondsAfterFinished=0))
    wait_until(
        lambda: "NotFound" in kubectl.run("get", "job", "short-lived", check=False).stderr,
        "the finished Job to be deleted by its TTL",
    )
    wait_until(lambda: not job_pods(kubectl, "short-lived"), "the Job's pods to go with it")


def running_pods(k: Kubectl, name: str) -> list[str] | None:
    pods = job_pods(k, name)
    names = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
    return names if len(names) == len(pods) and names else None


def test_suspend_stops_the_pods_and_resume_starts_them(kubectl: Kubectl) -> None:
    kubectl.apply(job("pausable", "sleep 3600", completions=2, parallelism=2))
    first = wait_until(lambda: running_pods(kubectl, "pausable"), "two running pods")
    assert len(first) == 2
    kubectl.run("patch", "job", "pausable", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    wait_until(lambda: not job_pods(kubectl, "pausable"), "the suspended Job's pods to be gone")
    suspended = kubectl.json("get", "job", "pausable")
    assert condition(suspended, "Suspended") is not None
    assert not suspended["status"].get("failed"), "pods removed by suspend are not failures"
    kubectl.run("patch", "job", "pausable", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    again = wait_until(lambda: running_pods(kubectl, "pausable"), "two running pods after resume")
    assert len(again) == 2 and not set(again) & set(first)


def test_deleting_a_running_job_removes_its_pods(kubectl: Kubectl) -> None:
    kubectl.apply(job("doomed", "sleep 3600", completions=2, parallelism=2))
    wait_until(lambda: running_pods(kubectl, "doomed"), "two running pods")
    kubectl.run("delete", "job", "doomed", timeout=90)
    wait_until(
        lambda: not job_pods(kubectl, "doomed"), "the deleted Job's pods to be gone (finalizers released)"
    )


def test_active_deadline_fails_the_job_and_stops_its_pods(kubectl: Kubectl) -> None:
    kubectl.apply(job("slow", "sleep 3600", activeDeadlineSeconds=3))
    failed = wait_until(
        lambda: condition(kubectl.json("get", "job", "slow"), "Failed"), "the Failed condition"
    )
    assert failed["reason"] == "DeadlineExceeded"
    assert condition(kubectl.json("get", "job", "slow"), "FailureTarget") is not None
    wait_until(
        lambda: all(p["status"].get("phase") != "Running" for p in job_pods(kubectl, "slow")),
        "the running pod to be stopped",
    )
    assert "DeadlineExceeded" in [r for r, _ in events(kubectl, "Job", "slow")]


def test_pod_failure_policy_fails_the_job_on_a_matching_exit_code(kubectl: Kubectl) -> None:
    policy = {
        "rules": [
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
        ]
    }
    kubectl.apply(job("policy", "exit 42", backoffLimit=6, podFailurePolicy=policy))
    failed = wait_until(
        lambda: condition(kubectl.json("get", "job", "policy"), "Failed"), "the Failed condition"
    )
    assert failed["reason"] == "PodFailurePolicy"
    assert "failed with exit code 42 matching FailJob rule at index 0" in failed["message"]
    assert len(job_pods(kubectl, "policy")) == 1, "no retry after a FailJob match"
