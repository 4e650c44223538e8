"""Priority admission: class resolution, the global default, kube's refusals."""

from __future__ import annotations

from typing import Any

import pytest

from cluster.apiserver.admission.interfaces import Operation
from cluster.apiserver.admission.priority import Priority, system_priority_classes
from tests.cluster.apiserver.admission.helpers import attrs, pod, refused, resource, run

CLASSES = resource("scheduling.k8s.io", "v1", "priorityclasses")


def pc(name: str, value: int, default: bool = False, policy: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": name}, "value": value, "globalDefault": default}
    if policy:
        body["preemptionPolicy"] = policy
    return body


class Classes:
    def __init__(self, *classes: dict[str, Any]) -> None:
        self.classes = list(classes)

    async def priority_classes(self) -> list[dict[str, Any]]:
        return self.classes


@pytest.mark.parametrize(
    ("classes", "spec", "want"),
    [
        pytest.param([], {}, (0, "PreemptLowerPriority", None), id="nothing"),
        pytest.param(
            [pc("high", 1000, policy="Never")],
            {"priorityClassName": "high"},
            (1000, "Never", "high"),
            id="named",
        ),
        pytest.param(
            [pc("low", 5, True), pc("lower", 3, True)],
            {},
            (3, "PreemptLowerPriority", "lower"),
            id="default-lowest",
        ),
        pytest.param(
            system_priority_classes(),
            {"priorityClassName": "system-node-critical"},
            (2000001000, "PreemptLowerPriority", "system-node-critical"),
            id="system",
        ),
        pytest.param(
            [pc("high", 1000)],
            {"priorityClassName": "high", "priority": 1000},
            (1000, "PreemptLowerPriority", "high"),
            id="agreeing-priority",
        ),
    ],
)
def test_resolution(
    classes: list[dict[str, Any]], spec: dict[str, Any], want: tuple[int, str, str | None]
) -> None:
    out = run(Priority(Classes(*classes)).admit(attrs(pod(**spec)))).object["spec"]
    assert (out["priority"], out["preemptionPolicy"], out.get("priorityClassName")) == want


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(
            {"priorityClassName": "nope"}, "no PriorityClass with name nope was found", id="unknown"
        ),
        pytest.param(
            {"priority": 7},
            "the integer value of priority (7) must not be provided in pod spec; "
            "priority admission controller computed 0 from the given PriorityClass name",
            id="priority-given",
        ),
        pytest.param(
            {"preemptionPolicy": "Never"},
            "the string value of PreemptionPolicy (Never) must not be provided in pod spec; "
            "priority admission controller computed PreemptLowerPriority from the given PriorityClass name",
            id="policy-given",
        ),
    ],
)
def test_refusals(spec: dict[str, Any], message: str) -> None:
    assert refused(Priority(Classes()).admit(attrs(pod(**spec)))) == f'pods "web" is forbidden: {message}'


def test_only_one_global_default() -> None:
    plugin = Priority(Classes(pc("base", 1, True)))
    message = refused(plugin.admit(attrs(pc("other", 2, True), CLASSES, namespace=None)))
    assert message == (
        'priorityclasses.scheduling.k8s.io "other" is forbidden: '
        "PriorityClass base is already marked as default. Only one default can exist"
    )
    run(plugin.admit(attrs(pc("base", 1, True), CLASSES, namespace=None, operation=Operation.UPDATE)))
    run(plugin.admit(attrs(pc("plain", 2), CLASSES, namespace=None)))
