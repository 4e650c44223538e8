"""DefaultTolerationSeconds: new pods tolerate not-ready and unreachable NoExecute taints for 300 s
unless they already tolerate them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from cluster.apiserver.admission.default_toleration_seconds import (
    NOT_READY_TAINT,
    UNREACHABLE_TAINT,
    DefaultTolerationSeconds,
)
from cluster.apiserver.admission.interfaces import Attributes, Operation
from cluster.apiserver.resources import ResourceInfo, lookup

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
NOT_READY_300 = {
    "key": NOT_READY_TAINT,
    "operator": "Exists",
    "effect": "NoExecute",
    "tolerationSeconds": 300,
}
UNREACHABLE_300 = {**NOT_READY_300, "key": UNREACHABLE_TAINT}
MINE_5 = {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}
NO_SCHEDULE = {"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoSchedule"}
ANY_EFFECT = {"key": NOT_READY_TAINT, "operator": "Exists"}
EVERYTHING = {"operator": "Exists"}
OTHER_KEY = {"key": "example.com/gpu", "operator": "Exists", "effect": "NoExecute"}


def resource(plural: str) -> ResourceInfo:
    info = lookup("", "v1", plural)
    assert info is not None
    return info


def pod(tolerations: list[dict[str, Any]] | None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if tolerations is not None:
        spec["tolerations"] = [dict(t) for t in tolerations]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}


def admit(obj: dict[str, Any], plural: str = "pods", op: Operation = Operation.CREATE) -> dict[str, Any]:
    attrs = Attributes(op, resource(plural), "default", "p", obj, NOW)
    return asyncio.run(DefaultTolerationSeconds().admit(attrs)).object


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, [NOT_READY_300, UNREACHABLE_300], id="no-tolerations"),
        pytest.param([], [NOT_READY_300, UNREACHABLE_300], id="empty-list"),
        pytest.param([MINE_5], [MINE_5, NOT_READY_300], id="own-unreachable-kept"),
        pytest.param([NO_SCHEDULE], [NO_SCHEDULE, NOT_READY_300, UNREACHABLE_300], id="noschedule-only"),
        pytest.param([ANY_EFFECT], [ANY_EFFECT, UNREACHABLE_300], id="empty-effect-covers-noexecute"),
        pytest.param([EVERYTHING], [EVERYTHING], id="tolerates-everything"),
        pytest.param([OTHER_KEY], [OTHER_KEY, NOT_READY_300, UNREACHABLE_300], id="other-key"),
        pytest.param([NOT_READY_300, UNREACHABLE_300], [NOT_READY_300, UNREACHABLE_300], id="idempotent"),
    ],
)
def test_default_tolerations(given: list[dict[str, Any]] | None, expected: list[dict[str, Any]]) -> None:
    assert admit(pod(given))["spec"]["tolerations"] == expected


def test_other_kinds_are_left_alone() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p"}, "data": {}}
    assert admit(dict(cm), plural="configmaps") == cm


def test_only_create_is_handled() -> None:
    plugin = DefaultTolerationSeconds()
    assert [op for op in Operation if plugin.handles(op)] == [Operation.CREATE]
