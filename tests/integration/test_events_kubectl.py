"""The node agent's Events through the real kubectl (issue 9, point 7): what `kubectl describe pod` lists;
and (point 15) `raykube status` saying whether the node's runtime enforces resource limits.

The session's `raykube up` cluster runs one node agent on the process runtime. Probe periods are 1 s and
grace periods 1 s so each test takes seconds; every wait polls kubectl with a deadline and fails with
the last output it saw.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

from nodeagent.runtimes.process.cgroups import CgroupManager
from tests.integration.conftest import RAYKUBE, Kubectl, RaykubeCluster
from tests.integration.test_pods_kubectl import apply, container, pod, wait_until

WAIT = 90.0


def describe_events(k: Kubectl, name: str) -> str:
    """The ``Events:`` section of ``kubectl describe pod``."""
    text = k.out("describe", "pod", name)
    return text.split("\nEvents:", 1)[1] if "\nEvents:" in text else ""


def event_row(section: str, reason: str, message: str) -> str | None:
    """The describe row (``Type Reason Age From Message``) with ``reason`` whose message has ``message``."""
    for line in section.splitlines():
        cols = line.split()
        if len(cols) >= 2 and cols[1] == reason and message in line:
            return line
    return None


def pod_events(k: Kubectl, name: str) -> list[dict[str, Any]]:
    items = k.json("get", "events", "--field-selector", f"involvedObject.name={name}")["items"]
    return [dict(e) for e in items]


def test_describe_shows_the_container_lifecycle(kubectl: Kubectl) -> None:
    apply(kubectl, pod("ev-run", container("app", "sleep 1000"), terminationGracePeriodSeconds=1))
    wanted = [
        ("Scheduled", "Successfully assigned"),
        ("Pulled", 'image "busybox"'),
        ("Created", "Created container app"),
        ("Started", "Started container app"),
    ]

    def all_rows() -> list[str] | None:
        section = describe_events(kubectl, "ev-run")
        rows = [event_row(section, reason, message) for reason, message in wanted]
        return rows if all(rows) else None

    rows = wait_until(all_rows, "Scheduled, Pulled, Created and Started in describe", WAIT)
    assert all("kubelet" in row for row in rows[1:]), rows
    started = next(e for e in pod_events(kubectl, "ev-run") if e["reason"] == "Started")
    assert started["involvedObject"]["fieldPath"] == "spec.containers{app}"
    assert started["source"]["component"] == "kubelet" and started["source"]["host"]


def test_failing_liveness_probe_is_unhealthy_with_its_output_and_killed(kubectl: Kubectl) -> None:
    probe = {
        "exec": {"command": ["sh", "-c", "echo liveness-said-no; exit 1"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    apply(
        kubectl,
        pod("ev-live", container("app", "sleep 1000", livenessProbe=probe), terminationGracePeriodSeconds=1),
    )

    def rows() -> tuple[str, str] | None:
        section = describe_events(kubectl, "ev-live")
        unhealthy = event_row(section, "Unhealthy", "Liveness probe failed: liveness-said-no")
        killing = event_row(section, "Killing", "Container app failed liveness probe, will be restarted")
        return (unhealthy, killing) if unhealthy and killing else None

    unhealthy, _ = wait_until(rows, "Unhealthy (with the probe's output) and Killing in describe", WAIT)
    assert unhealthy.split()[0] == "Warning", unhealthy


def test_crash_loop_back_off_is_one_event_with_a_count(kubectl: Kubectl) -> None:
    apply(kubectl, pod("ev-crash", container("app", "exit 1"), terminationGracePeriodSeconds=1))
    message = "Back-off restarting failed container app in pod ev-crash_"

    def counted() -> str | None:
        row = event_row(describe_events(kubectl, "ev-crash"), "BackOff", message)
        return row if row and re.search(r"\(x\d+ over ", row) else None

    row = wait_until(counted, "BackOff with (xN over ...) in describe", WAIT)
    assert row.split()[0] == "Warning", row
    backoffs = [e for e in pod_events(kubectl, "ev-crash") if e["reason"] == "BackOff"]
    assert len(backoffs) == 1 and backoffs[0]["count"] > 1, backoffs  # one object, counted


def test_node_events_starting_and_ready(kubectl: Kubectl) -> None:
    def reasons() -> dict[str, str] | None:
        items = kubectl.json("get", "events", "-A", "--field-selector", "involvedObject.kind=Node")["items"]
        found = {e["reason"]: e["message"] for e in items if e["source"].get("component") == "kubelet"}
        return found if {"Starting", "NodeReady"} <= set(found) else None

    found = wait_until(reasons, "the kubelet's Starting and NodeReady node events", WAIT)
    assert found["Starting"] == "Starting kubelet."
    assert re.fullmatch(r"Node \S+ status is now: NodeReady", found["NodeReady"]), found


def test_raykube_status_says_whether_the_node_enforces_resource_limits(
    raykube_cluster: RaykubeCluster,
) -> None:
    """Point 15: the process runtime's cgroup mode reaches `raykube status` (this machine decides which)."""
    status = subprocess.run(
        [*RAYKUBE, "status", "--data-dir", str(raykube_cluster.data_dir)],
        capture_output=True, text=True, env=raykube_cluster.env, timeout=120, check=False,
    )  # fmt: skip
    lines = [line for line in status.stdout.splitlines() if "resource limits" in line]
    assert len(lines) == 1, status.stdout + status.stderr
    writable = CgroupManager.probe("raykube").writable  # what the runtime actor probed at its start
    if writable:
        assert f"resource limits enforced (CgroupV1: {','.join(writable)})" in lines[0], lines
    else:
        assert "resource limits NOT enforced: no writable cgroup v1 controllers" in lines[0], lines
