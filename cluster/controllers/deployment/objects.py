"""Reading Deployments and ReplicaSets: the wire-form fields the Deployment controller needs, as the
plain values and views (:class:`~.rollout.ReplicaSetView`, :class:`~.rollout.Strategy`) its pure
modules take. Pure: inputs are never modified."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cluster.client.errors import ApiError
from cluster.controllers.deployment import revision, rollout
from cluster.controllers.deployment.rollout import ReplicaSetView, Strategy
from cluster.machinery.meta import object_meta
from cluster.machinery.times import parse_rfc3339

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def as_int(value: Any, default: int = 0) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def opt_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def replica_set_view(rs: Mapping[str, Any]) -> ReplicaSetView:
    meta = object_meta(rs)
    spec = rs.get("spec") or {}
    status = rs.get("status") or {}
    annotations = meta.get("annotations") or {}
    return ReplicaSetView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        created=parse_rfc3339(meta.get("creationTimestamp")) or _EPOCH,
        replicas=as_int(spec.get("replicas"), 1),
        status_replicas=as_int(status.get("replicas")),
        ready=as_int(status.get("readyReplicas")),
        available=as_int(status.get("availableReplicas")),
        revision=revision.parse_revision(annotations) or 0,
        desired_annotation=opt_int(annotations.get(revision.DESIRED_REPLICAS_ANNOTATION)),
        max_annotation=opt_int(annotations.get(revision.MAX_REPLICAS_ANNOTATION)),
        generation=as_int(meta.get("generation")),
        observed_generation=as_int(status.get("observedGeneration")),
        deleting=bool(meta.get("deletionTimestamp")),
        template=spec.get("template"),
    )


def strategy_of(deployment: Mapping[str, Any]) -> Strategy:
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    rolling = strategy.get("rollingUpdate") or {}
    return Strategy(
        replicas=as_int(spec.get("replicas"), 1),
        type=str(strategy.get("type") or rollout.ROLLING_UPDATE),
        max_surge=rolling.get("maxSurge", rollout.DEFAULT_MAX_SURGE),
        max_unavailable=rolling.get("maxUnavailable", rollout.DEFAULT_MAX_UNAVAILABLE),
    )


def progress_deadline(d: Mapping[str, Any]) -> int | None:
    return opt_int((d.get("spec") or {}).get("progressDeadlineSeconds"))


def name_of(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("name", ""))


def uid_of(obj: Mapping[str, Any]) -> str:
    return str(object_meta(obj).get("uid", ""))


def generation_of(obj: Mapping[str, Any]) -> int:
    return as_int(object_meta(obj).get("generation"))


def namespace_terminating(err: ApiError) -> bool:
    causes = (err.body.get("details") or {}).get("causes") or ()
    return err.status == 403 and any(
        c.get("type") == "NamespaceTerminating" for c in causes if isinstance(c, dict)
    )
