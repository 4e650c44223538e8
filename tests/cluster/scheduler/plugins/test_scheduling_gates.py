from __future__ import annotations

from typing import Any

import pytest

from cluster.scheduler.config import load_config
from cluster.scheduler.framework.interface import SnapshotHandle
from cluster.scheduler.framework.registry import default_registry
from cluster.scheduler.framework.runtime import Framework
from cluster.scheduler.framework.status import Code, Status
from cluster.scheduler.plugins import scheduling_gates


def pod(spec: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"name": "p", "namespace": "default", "uid": "u"}}
    if spec is not None:
        out["spec"] = spec
    return out


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, Status(), id="no-gates"),
        pytest.param({"schedulingGates": []}, Status(), id="empty-gates"),
        pytest.param({"schedulingGates": None}, Status(), id="null-gates"),
        pytest.param(None, Status(), id="no-spec"),
        pytest.param(
            {"schedulingGates": [{"name": "example.com/quota"}]},
            Status(
                Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("waiting for scheduling gates: [example.com/quota]",)
            ),
            id="one-gate",
        ),
        pytest.param(
            {"schedulingGates": [{"name": "a"}, {"name": "b"}]},
            Status(Code.UNSCHEDULABLE_AND_UNRESOLVABLE, ("waiting for scheduling gates: [a b]",)),
            id="two-gates",
        ),
    ],
)
def test_pre_enqueue(spec: dict[str, Any] | None, expected: Status) -> None:
    plugin = scheduling_gates.new(None, object())
    assert plugin.name() == "SchedulingGates"
    assert plugin.pre_enqueue(pod(spec)) == expected


@pytest.mark.parametrize(
    ("config", "gated_code"),
    [
        pytest.param(None, Code.UNSCHEDULABLE_AND_UNRESOLVABLE, id="default-profile-has-it"),
        pytest.param(
            {"profiles": [{"plugins": {"multiPoint": {"disabled": [{"name": "SchedulingGates"}]}}}]},
            Code.SUCCESS,
            id="disabled",
        ),
    ],
)
def test_framework_runs_pre_enqueue(config: dict[str, Any] | None, gated_code: Code) -> None:
    fw = Framework(load_config(config).profiles[0], default_registry(), SnapshotHandle())
    gated = fw.run_pre_enqueue(pod({"schedulingGates": [{"name": "g"}]}))
    assert gated.code == gated_code
    if gated_code != Code.SUCCESS:
        assert gated.plugin == "SchedulingGates"
    assert fw.run_pre_enqueue(pod({})).is_success()
