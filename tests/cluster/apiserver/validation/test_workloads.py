"""apps/v1 and batch/v1 validation: selectors, template restart policies, strategies, schedules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cluster.apiserver.validation.conftest import create_details, edit, meta, template, workload

DEPLOY = workload("Deployment")
STS = workload("StatefulSet", serviceName="web")
DS = workload("DaemonSet")
RS = workload("ReplicaSet")
JOB = {
    "apiVersion": "batch/v1",
    "kind": "Job",
    "metadata": meta("pi"),
    "spec": {"template": template(restartPolicy="Never")},
}
CRON = {
    "apiVersion": "batch/v1",
    "kind": "CronJob",
    "metadata": meta("tick"),
    "spec": {
        "schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": template(restartPolicy="OnFailure")}},
    },
}
MISMATCH = (
    'spec.template.metadata.labels: Invalid value: map[string]string{"app":"other"}: '
    "`selector` does not match template `labels`"
)


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(DEPLOY, [], id="deploy-valid"),
        pytest.param(
            edit(DEPLOY, "spec.selector", None),
            [
                "spec.selector: Required value",
                'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
                "`selector` does not match template `labels`",
            ],
            id="deploy-no-selector",
        ),
        pytest.param(
            edit(DEPLOY, "spec.template.metadata.labels", {"app": "other"}), [MISMATCH], id="deploy-mismatch"
        ),
        pytest.param(
            edit(DEPLOY, "spec.selector", {}),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
                "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"  # noqa: E501
            ],
            id="deploy-empty-selector",
        ),
        pytest.param(
            edit(
                DEPLOY,
                "spec.selector",
                {"matchExpressions": [{"key": "app", "operator": "In", "values": ["web"]}]},
            ),
            [],
            id="deploy-expression-selector",
        ),
        pytest.param(
            edit(DEPLOY, "spec.selector", {"matchExpressions": [{"key": "app", "operator": "In"}]}),
            [
                "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is "  # noqa: E501
                "'In' or 'NotIn'",
                'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
                "`selector` does not match template `labels`",
            ],
            id="deploy-expression-no-values",
        ),
        pytest.param(
            edit(DEPLOY, "spec.template.spec.restartPolicy", "OnFailure"),
            ['spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"'],
            id="deploy-restart-policy",
        ),
        pytest.param(
            edit(DEPLOY, "spec.replicas", -1),
            ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
            id="deploy-negative-replicas",
        ),
        pytest.param(
            edit(
                DEPLOY,
                "spec.strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}},
            ),
            [
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0"  # noqa: E501
            ],
            id="deploy-zero-zero",
        ),
        pytest.param(
            edit(
                DEPLOY,
                "spec.strategy",
                {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "150%"}},
            ),
            [
                'spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "150%": must not be greater than 100%'  # noqa: E501
            ],
            id="deploy-over-100-percent",
        ),
        pytest.param(
            edit(DEPLOY, "spec.strategy", {"type": "Recreate", "rollingUpdate": {}}),
            [
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"  # noqa: E501
            ],
            id="deploy-recreate-with-rolling",
        ),
        pytest.param(
            edit(DEPLOY, "spec.progressDeadlineSeconds", 5),
            [],
            id="deploy-deadline-positive",
        ),
        pytest.param(
            edit(edit(DEPLOY, "spec.progressDeadlineSeconds", 5), "spec.minReadySeconds", 10),
            ["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"],
            id="deploy-deadline-vs-min-ready",
        ),
        pytest.param(RS, [], id="rs-valid"),
        pytest.param(
            edit(RS, "spec.template.metadata.labels", {"app": "other"}), [MISMATCH], id="rs-mismatch"
        ),
        pytest.param(STS, [], id="sts-valid"),
        pytest.param(
            edit(STS, "spec.podManagementPolicy", "Random"),
            ["spec.podManagementPolicy: Invalid value: \"Random\": must be 'OrderedReady' or 'Parallel'"],
            id="sts-pod-management",
        ),
        pytest.param(
            edit(STS, "spec.template.spec.activeDeadlineSeconds", 10),
            [
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported"  # noqa: E501
            ],
            id="sts-active-deadline",
        ),
        pytest.param(
            edit(
                edit(
                    STS, "spec.template.spec.containers.0.volumeMounts", [{"name": "data", "mountPath": "/d"}]
                ),
                "spec.volumeClaimTemplates",
                [
                    {
                        "metadata": {"name": "data"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            ),
            [],
            id="sts-mounts-a-claim-template",
        ),
        pytest.param(
            edit(STS, "spec.template.spec.containers.0.volumeMounts", [{"name": "data", "mountPath": "/d"}]),
            ['spec.template.spec.containers[0].volumeMounts[0].name: Not found: "data"'],
            id="sts-mounts-nothing",
        ),
        pytest.param(DS, [], id="ds-valid"),
        pytest.param(
            edit(DS, "spec.template.spec.restartPolicy", "Never"),
            ['spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"'],
            id="ds-restart-policy",
        ),
        pytest.param(JOB, [], id="job-valid"),
        pytest.param(
            edit(JOB, "spec.template.spec.restartPolicy", None),
            [
                'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'  # noqa: E501
            ],
            id="job-restart-defaulted-always",
        ),
        pytest.param(
            edit(JOB, "spec.template.spec.restartPolicy", "Always"),
            [
                'spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never"'  # noqa: E501
            ],
            id="job-restart-always",
        ),
        pytest.param(
            edit(JOB, "spec.manualSelector", True),
            ["spec.selector: Required value"],
            id="job-manual-no-selector",
        ),
        pytest.param(
            edit(JOB, "spec.backoffLimit", -1),
            ["spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0"],
            id="job-backoff",
        ),
        pytest.param(
            edit(JOB, "spec.completionMode", "Indexed"),
            [],
            id="job-indexed-with-defaulted-completions",
        ),
        pytest.param(CRON, [], id="cron-valid"),
        pytest.param(edit(CRON, "spec.schedule", "@hourly"), [], id="cron-descriptor"),
        pytest.param(edit(CRON, "spec.schedule", "@every 1h30m"), [], id="cron-every"),
        pytest.param(edit(CRON, "spec.schedule", "0 9 * * MON-FRI"), [], id="cron-names"),
        pytest.param(
            edit(CRON, "spec.schedule", "bad"),
            ['spec.schedule: Invalid value: "bad": expected exactly 5 fields, found 1: [bad]'],
            id="cron-one-field",
        ),
        pytest.param(
            edit(CRON, "spec.schedule", "0 0 0 * * *"),
            [
                'spec.schedule: Invalid value: "0 0 0 * * *": expected exactly 5 fields, found 6: [0 0 0 * * *]'  # noqa: E501
            ],
            id="cron-seconds-field",
        ),
        pytest.param(
            edit(CRON, "spec.schedule", "@fortnightly"),
            ['spec.schedule: Invalid value: "@fortnightly": unrecognized descriptor: @fortnightly'],
            id="cron-bad-descriptor",
        ),
        pytest.param(
            edit(CRON, "spec.schedule", "0 0 L * *"),
            [
                'spec.schedule: Invalid value: "0 0 L * *": failed to parse int from L: strconv.Atoi: '
                'parsing "L": invalid syntax'
            ],
            id="cron-croniter-only-syntax",
        ),
        pytest.param(edit(CRON, "spec.schedule", "61 * * * *"), ["spec.schedule"], id="cron-out-of-range"),
        pytest.param(
            edit(CRON, "spec.concurrencyPolicy", "Sometimes"),
            [
                'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", "Replace"'  # noqa: E501
            ],
            id="cron-concurrency",
        ),
        pytest.param(
            edit(CRON, "spec.jobTemplate.spec.template.spec.restartPolicy", None),
            [
                'spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: '  # noqa: E501
                '"OnFailure", "Never"'
            ],
            id="cron-template-restart",
        ),
        pytest.param(
            edit(CRON, "spec.timeZone", "Mars/Olympus"),
            ['spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus'],
            id="cron-time-zone",
        ),
        pytest.param(
            edit(CRON, "metadata.name", "c" * 53),
            [f'metadata.name: Invalid value: "{"c" * 53}": must be no more than 52 characters'],
            id="cron-name-length",
        ),
    ],
)
def test_workload_create(obj: dict[str, Any], expected: list[str]) -> None:
    details = create_details(obj)
    if expected == ["spec.schedule"]:
        assert len(details) == 1 and details[0].startswith('spec.schedule: Invalid value: "61 * * * *": ')
    else:
        assert details == expected
