"""``limits_summary``: the line `raykube status` prints per node, from the process runtime's real Status."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nodeagent.actor import limits_summary
from nodeagent.cri import api_pb2 as pb
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.runtime import ProcessRuntime


@pytest.mark.parametrize(
    ("controllers", "line"),
    [
        pytest.param(("memory", "pids"), "enforced (CgroupV1: memory,pids)", id="writable"),
        pytest.param((), "NOT enforced: no writable cgroup v1 controllers under ", id="not-writable"),
    ],
)
def test_limits_summary_from_the_runtime_status(
    tmp_path: Path, controllers: tuple[str, ...], line: str
) -> None:
    fake = tmp_path / "cgroup"
    for ctl in controllers:
        (fake / ctl).mkdir(parents=True)
        (fake / ctl / "cgroup.procs").write_text("")
    rt = ProcessRuntime(
        str(tmp_path / "root"), isolation=Isolation("plain"), cgroups=CgroupManager.probe("kit", fake)
    )
    assert limits_summary(asyncio.run(rt.status(pb.StatusRequest()))).startswith(line)


def test_a_runtime_without_the_condition_enforces_limits_itself() -> None:
    assert limits_summary(pb.StatusResponse()) == "enforced by the runtime"
