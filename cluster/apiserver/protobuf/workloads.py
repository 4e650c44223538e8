"""Field tables for workload kinds: apps/v1 ``Deployment``, batch/v1 ``Job`` and ``CronJob``, and the
autoscaling/v1 ``Scale`` subresource.

Numbers from ``apps/v1``, ``batch/v1`` and ``autoscaling/v1`` ``generated.proto``.
"""

from __future__ import annotations

from cluster.apiserver.protobuf.core_pod import (
    POD_TEMPLATE_SPEC,
)
from cluster.apiserver.protobuf.meta import (
    LABEL_SELECTOR,
    OBJECT_META,
)
from cluster.apiserver.protobuf.schema import (
    UNDECODED,
    Schema,
    boolean,
    int_or_string,
    integer,
    message,
    string,
)

ROLLING_UPDATE_DEPLOYMENT: Schema = {
    1: int_or_string("maxUnavailable", keep=True),
    2: int_or_string("maxSurge", keep=True),
}

DEPLOYMENT_STRATEGY: Schema = {
    1: string("type"),
    2: message("rollingUpdate", ROLLING_UPDATE_DEPLOYMENT),
}

DEPLOYMENT_SPEC: Schema = {
    1: integer("replicas", keep=True),
    2: message("selector", LABEL_SELECTOR),
    3: message("template", POD_TEMPLATE_SPEC),
    4: message("strategy", DEPLOYMENT_STRATEGY),
    5: integer("minReadySeconds"),
    6: integer("revisionHistoryLimit", keep=True),
    7: boolean("paused"),
    9: integer("progressDeadlineSeconds", keep=True),
}

DEPLOYMENT: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", DEPLOYMENT_SPEC),
    3: message("status", UNDECODED),
}

POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT: Schema = {
    1: string("containerName", keep=True),
    2: string("operator"),
    3: integer("values", repeated=True),
}

POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN: Schema = {
    1: string("type"),
    2: string("status"),
}

POD_FAILURE_POLICY_RULE: Schema = {
    1: string("action"),
    2: message("onExitCodes", POD_FAILURE_POLICY_ON_EXIT_CODES_REQUIREMENT),
    3: message("onPodConditions", POD_FAILURE_POLICY_ON_POD_CONDITIONS_PATTERN, repeated=True),
}

POD_FAILURE_POLICY: Schema = {
    1: message("rules", POD_FAILURE_POLICY_RULE, repeated=True),
}

SUCCESS_POLICY_RULE: Schema = {
    1: string("succeededIndexes", keep=True),
    2: integer("succeededCount", keep=True),
}

SUCCESS_POLICY: Schema = {
    1: message("rules", SUCCESS_POLICY_RULE, repeated=True),
}

JOB_SPEC: Schema = {
    1: integer("parallelism", keep=True),
    2: integer("completions", keep=True),
    3: integer("activeDeadlineSeconds", keep=True),
    11: message("podFailurePolicy", POD_FAILURE_POLICY),
    16: message("successPolicy", SUCCESS_POLICY),
    7: integer("backoffLimit", keep=True),
    12: integer("backoffLimitPerIndex", keep=True),
    13: integer("maxFailedIndexes", keep=True),
    4: message("selector", LABEL_SELECTOR),
    5: boolean("manualSelector", keep=True),
    6: message("template", POD_TEMPLATE_SPEC),
    8: integer("ttlSecondsAfterFinished", keep=True),
    9: string("completionMode", keep=True),
    10: boolean("suspend", keep=True),
    14: string("podReplacementPolicy", keep=True),
    15: string("managedBy", keep=True),
}

JOB: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", JOB_SPEC),
    3: message("status", UNDECODED),
}

JOB_TEMPLATE_SPEC: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", JOB_SPEC),
}

CRON_JOB_SPEC: Schema = {
    1: string("schedule"),
    8: string("timeZone", keep=True),
    2: integer("startingDeadlineSeconds", keep=True),
    3: string("concurrencyPolicy"),
    4: boolean("suspend", keep=True),
    5: message("jobTemplate", JOB_TEMPLATE_SPEC),
    6: integer("successfulJobsHistoryLimit", keep=True),
    7: integer("failedJobsHistoryLimit", keep=True),
}

CRON_JOB: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", CRON_JOB_SPEC),
    3: message("status", UNDECODED),
}

SCALE_SPEC: Schema = {
    1: integer("replicas", keep=True),
}

SCALE: Schema = {
    1: message("metadata", OBJECT_META),
    2: message("spec", SCALE_SPEC),
    3: message("status", UNDECODED),
}
