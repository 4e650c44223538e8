"""Table printers for apps/v1 and batch/v1 workloads, mirroring kubectl's ``printers.go``.

Role: deployments, replicasets, statefulsets, daemonsets, controllerrevisions, jobs (the 1.33
shape: Status, Completions, Duration, Age) and cronjobs. Pure functions of (object, now).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cluster.apiserver.tables.format import (
    Column,
    Obj,
    TablePrinter,
    age,
    age_column,
    as_int,
    as_list,
    container_cells,
    containers_columns,
    field_doc,
    format_labels,
    get,
    human_duration,
    name_column,
    name_of,
    selector_string,
    since,
)
from cluster.machinery.meta import object_meta
from cluster.machinery.times import parse_rfc3339


def _template_spec(obj: Obj) -> Any:
    return get(obj, "spec", "template", "spec", default={})


def _deployment_row(obj: Obj, now: datetime) -> list[Any]:
    status = get(obj, "status", default={})
    containers, images = container_cells(_template_spec(obj))
    ready = as_int(get(status, "readyReplicas", default=0))
    return [
        name_of(obj),
        f"{ready}/{as_int(get(obj, 'spec', 'replicas', default=0))}",
        as_int(get(status, "updatedReplicas", default=0)),
        as_int(get(status, "availableReplicas", default=0)),
        age(obj, now),
        containers,
        images,
        selector_string(get(obj, "spec", "selector")),
    ]


def deployment_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Ready", "string", "Number of the pod with ready state"),
            Column("Up-to-date", "string", field_doc("V1DeploymentStatus", "updatedReplicas")),
            Column("Available", "string", field_doc("V1DeploymentStatus", "availableReplicas")),
            age_column(),
            *containers_columns(field_doc("V1DeploymentSpec", "selector")),
        ),
        _deployment_row,
    )


def _replicaset_row(obj: Obj, now: datetime) -> list[Any]:
    status = get(obj, "status", default={})
    containers, images = container_cells(_template_spec(obj))
    return [
        name_of(obj),
        as_int(get(obj, "spec", "replicas", default=0)),
        as_int(get(status, "replicas", default=0)),
        as_int(get(status, "readyReplicas", default=0)),
        age(obj, now),
        containers,
        images,
        selector_string(get(obj, "spec", "selector")),
    ]


def replicaset_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Desired", "integer", field_doc("V1ReplicaSetSpec", "replicas")),
            Column("Current", "integer", field_doc("V1ReplicaSetStatus", "replicas")),
            Column("Ready", "integer", field_doc("V1ReplicaSetStatus", "readyReplicas")),
            age_column(),
            *containers_columns(field_doc("V1ReplicaSetSpec", "selector")),
        ),
        _replicaset_row,
    )


def _statefulset_row(obj: Obj, now: datetime) -> list[Any]:
    containers, images = container_cells(_template_spec(obj))
    ready = as_int(get(obj, "status", "readyReplicas", default=0))
    return [
        name_of(obj),
        f"{ready}/{as_int(get(obj, 'spec', 'replicas', default=0))}",
        age(obj, now),
        containers,
        images,
    ]


def statefulset_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Ready", "string", "Number of the pod with ready state"),
            age_column(),
            Column("Containers", "string", "Names of each container in the template.", priority=1),
            Column("Images", "string", "Images referenced by each container in the template.", priority=1),
        ),
        _statefulset_row,
    )


def _daemonset_row(obj: Obj, now: datetime) -> list[Any]:
    status = get(obj, "status", default={})
    containers, images = container_cells(_template_spec(obj))
    return [
        name_of(obj),
        as_int(get(status, "desiredNumberScheduled", default=0)),
        as_int(get(status, "currentNumberScheduled", default=0)),
        as_int(get(status, "numberReady", default=0)),
        as_int(get(status, "updatedNumberScheduled", default=0)),
        as_int(get(status, "numberAvailable", default=0)),
        format_labels(get(_template_spec(obj), "nodeSelector")),
        age(obj, now),
        containers,
        images,
        selector_string(get(obj, "spec", "selector")),
    ]


def daemonset_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Desired", "integer", field_doc("V1DaemonSetStatus", "desiredNumberScheduled")),
            Column("Current", "integer", field_doc("V1DaemonSetStatus", "currentNumberScheduled")),
            Column("Ready", "integer", field_doc("V1DaemonSetStatus", "numberReady")),
            Column("Up-to-date", "integer", field_doc("V1DaemonSetStatus", "updatedNumberScheduled")),
            Column("Available", "integer", field_doc("V1DaemonSetStatus", "numberAvailable")),
            Column("Node Selector", "string", field_doc("V1PodSpec", "nodeSelector")),
            age_column(),
            *containers_columns(field_doc("V1DaemonSetSpec", "selector")),
        ),
        _daemonset_row,
    )


def _controller_of(obj: Obj) -> str:
    for ref in as_list(object_meta(obj).get("ownerReferences")):
        if get(ref, "controller") is True:
            api_version = str(get(ref, "apiVersion", default=""))
            group = api_version.split("/")[0] if "/" in api_version else ""
            kind = str(get(ref, "kind", default=""))
            group_kind = f"{kind}.{group}" if group else kind
            return f"{group_kind.lower()}/{get(ref, 'name', default='')}"
    return "<none>"


def controllerrevision_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Controller", "string", "Controller of the object"),
            Column("Revision", "string", field_doc("V1ControllerRevision", "revision")),
            age_column(),
        ),
        lambda cr, now: [name_of(cr), _controller_of(cr), as_int(cr.get("revision", 0)), age(cr, now)],
    )


# --- batch -------------------------------------------------------------------------------------


def _has_condition(obj: Obj, condition_type: str) -> bool:
    return any(
        get(c, "type") == condition_type and get(c, "status") == "True"
        for c in as_list(get(obj, "status", "conditions"))
    )


def job_status(job: Obj) -> str:
    """The Job STATUS column (kubectl 1.28+)."""
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if object_meta(job).get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    if _has_condition(job, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def _job_row(job: Obj, now: datetime) -> list[Any]:
    spec = get(job, "spec", default={})
    succeeded = as_int(get(job, "status", "succeeded", default=0))
    completions = get(spec, "completions")
    if completions is not None:
        completions_cell = f"{succeeded}/{as_int(completions)}"
    else:
        parallelism = as_int(get(spec, "parallelism", default=0))
        completions_cell = f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"
    start = parse_rfc3339(get(job, "status", "startTime"))
    end = parse_rfc3339(get(job, "status", "completionTime"))
    if start is None:
        duration = ""
    elif end is None:
        duration = human_duration((now - start).total_seconds())
    else:
        duration = human_duration((end - start).total_seconds())
    containers, images = container_cells(_template_spec(job))
    return [
        name_of(job),
        job_status(job),
        completions_cell,
        duration,
        age(job, now),
        containers,
        images,
        selector_string(get(spec, "selector")),
    ]


def job_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Status", "string", "Status of the job."),
            Column("Completions", "string", field_doc("V1JobStatus", "succeeded")),
            Column("Duration", "string", "Time required to complete the job."),
            age_column(),
            *containers_columns(field_doc("V1JobSpec", "selector")),
        ),
        _job_row,
    )


def _cronjob_row(cj: Obj, now: datetime) -> list[Any]:
    spec = get(cj, "spec", default={})
    suspend = get(spec, "suspend")
    last = get(cj, "status", "lastScheduleTime")
    job_spec = get(spec, "jobTemplate", "spec", default={})
    containers, images = container_cells(get(job_spec, "template", "spec", default={}))
    return [
        name_of(cj),
        str(get(spec, "schedule", default="")),
        get(spec, "timeZone") or "<none>",
        "<unset>" if suspend is None else ("True" if suspend else "False"),
        len(as_list(get(cj, "status", "active"))),
        since(last, now) if last else "<none>",
        age(cj, now),
        containers,
        images,
        selector_string(get(job_spec, "selector")),
    ]


def cronjob_printer() -> TablePrinter:
    return TablePrinter(
        (
            name_column(),
            Column("Schedule", "string", field_doc("V1CronJobSpec", "schedule")),
            Column("Timezone", "string", field_doc("V1CronJobSpec", "timeZone")),
            Column("Suspend", "boolean", field_doc("V1CronJobSpec", "suspend")),
            Column("Active", "integer", field_doc("V1CronJobStatus", "active")),
            Column("Last Schedule", "string", field_doc("V1CronJobStatus", "lastScheduleTime")),
            age_column(),
            *containers_columns(field_doc("V1JobSpec", "selector")),
        ),
        _cronjob_row,
    )
