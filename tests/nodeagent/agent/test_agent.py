"""NodeAgent end to end against a REAL process runtime (plain isolation, any user) and the fake API.

Each test runs the runtime's gRPC server and the agent in one event loop and awaits conditions on the
fake API's objects (no sleeps, no timing thresholds; ``wait_for`` has a generous timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from nodeagent.agent.agent import AgentConfig, NodeAgent
from nodeagent.agent.lookup import LookupFailed
from nodeagent.agent.node_loop import Pressure
from nodeagent.kubelet.node_status import MachineInfo
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.server import serve, stop_server
from tests.nodeagent.agent.fake_api import FakeApi

NODE = "node-a"
FAST = AgentConfig(
    status_interval=timedelta(seconds=1),
    lease_interval=timedelta(seconds=1),
    resync=timedelta(seconds=1),
    relist_interval=0.2,
    manifest_interval=0.2,
    node_tick=0.2,
    backoff_initial=timedelta(seconds=1),
    backoff_max=timedelta(seconds=2),
)
MACHINE = MachineInfo(
    node_name=NODE, internal_ips=("10.0.0.5",), hostname=NODE, cpu="2",
    memory_bytes=4 << 30, ephemeral_storage_bytes=20 << 30,
)  # fmt: skip


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path, *, manifests: Path | None = None
) -> AsyncIterator[tuple[FakeApi, NodeAgent]]:
    sock = str(tmp_path / "rt.sock")
    rt = await serve(
        sock, str(tmp_path / "rt"), isolation=Isolation("plain"), cgroups=CgroupManager(base="", writable=())
    )
    api = FakeApi()
    agent = NodeAgent(
        api, sock, NODE, str(tmp_path / "data"), MACHINE,
        manifests_dir=str(manifests) if manifests else None, kubelet_port=10999,
        config=FAST, pressure=lambda: Pressure(),
    )  # fmt: skip
    try:
        await agent.start()
        yield api, agent
    finally:
        await agent.stop(remove_pods=True)
        await stop_server(rt)


def run(tmp_path: Path, scenario: Callable[[FakeApi, NodeAgent], Awaitable[None]], **kw: Any) -> None:
    async def main() -> None:
        async with running(tmp_path, **kw) as (api, agent):
            await scenario(api, agent)

    asyncio.run(main())


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in [*containers, *spec.get("initContainers", ())]:
        c.setdefault("image", "busybox")
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "containers": containers, **spec},
    }


def status_of(api: FakeApi, name: str) -> dict[str, Any]:
    return (api.pod("default", name) or {}).get("status") or {}


def cstatus(api: FakeApi, name: str, container: str, init: bool = False) -> dict[str, Any]:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in status_of(api, name).get(key) or ():
        if s["name"] == container:
            return dict(s)
    return {}


def condition(api: FakeApi, name: str, ctype: str) -> str:
    for c in status_of(api, name).get("conditions") or ():
        if c["type"] == ctype:
            return str(c["status"])
    return ""


SLEEP = ["sleep", "1000"]


def test_pod_reaches_running_with_container_statuses(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        await api.create("v1", "pods", "default", pod("web", [{"name": "app", "command": SLEEP}]))
        await api.wait_for(lambda: status_of(api, "web").get("phase") == "Running")
        s = cstatus(api, "web", "app")
        assert "running" in s["state"] and s["ready"] is True and s["restartCount"] == 0
        assert s["containerID"].startswith("process://")
        st = status_of(api, "web")
        assert st["hostIP"] == "10.0.0.5" and st["podIP"]
        assert condition(api, "web", "Ready") == "True"
        ref = agent.lookup_container("default", "web", None)
        assert ref.running and ref.container_name == "app" and ref.container_id
        assert ref.log_path.endswith("app/0.log") and "default_web_" in ref.log_path

    run(tmp_path, scenario)


def test_exit_3_under_never_fails_the_pod(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        body = pod("bad", [{"name": "app", "command": ["sh", "-c", "exit 3"]}], restartPolicy="Never")
        await api.create("v1", "pods", "default", body)
        await api.wait_for(lambda: status_of(api, "bad").get("phase") == "Failed")
        assert cstatus(api, "bad", "app")["state"]["terminated"]["exitCode"] == 3

    run(tmp_path, scenario)


def test_always_restarts_with_crash_loop_back_off(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        body = pod("crash", [{"name": "app", "command": ["sh", "-c", "exit 1"]}])
        await api.create("v1", "pods", "default", body)

        def backing_off() -> bool:
            s = cstatus(api, "crash", "app")
            waiting = (s.get("state") or {}).get("waiting") or {}
            return waiting.get("reason") == "CrashLoopBackOff" and s["restartCount"] >= 1

        await api.wait_for(backing_off)
        await api.wait_for(lambda: cstatus(api, "crash", "app").get("restartCount", 0) >= 2)
        s = cstatus(api, "crash", "app")
        assert s["lastState"]["terminated"]["exitCode"] == 1
        assert status_of(api, "crash")["phase"] == "Running"

    run(tmp_path, scenario)


def test_failing_liveness_probe_restarts_the_container(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        probe = {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 1}
        body = pod("live", [{"name": "app", "command": SLEEP, "livenessProbe": probe}])
        await api.create("v1", "pods", "default", body)
        await api.wait_for(lambda: cstatus(api, "live", "app").get("restartCount", 0) >= 1)

    run(tmp_path, scenario)


def test_failing_readiness_probe_keeps_the_pod_not_ready(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        bad = {"exec": {"command": ["sh", "-c", "exit 1"]}, "periodSeconds": 1, "failureThreshold": 1}
        good = {"exec": {"command": ["true"]}, "periodSeconds": 1}
        await api.create(
            "v1", "pods", "default", pod("nr", [{"name": "app", "command": SLEEP, "readinessProbe": bad}])
        )
        await api.create(
            "v1", "pods", "default", pod("ok", [{"name": "app", "command": SLEEP, "readinessProbe": good}])
        )
        # the good pod turning Ready shows probes ran; the bad one has had the same chances
        await api.wait_for(lambda: condition(api, "ok", "Ready") == "True")
        await api.wait_for(lambda: status_of(api, "nr").get("phase") == "Running")
        assert condition(api, "nr", "Ready") == "False"
        assert cstatus(api, "nr", "app")["ready"] is False
        assert cstatus(api, "nr", "app")["restartCount"] == 0

    run(tmp_path, scenario)


def test_init_containers_run_in_order(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        marks = tmp_path / "marks"
        marks.mkdir()
        inits = [
            {"name": "one", "command": ["sh", "-c", f"echo one >> {marks}/order"]},
            {"name": "two", "command": ["sh", "-c", f"echo two >> {marks}/order"]},
        ]
        body = pod("init", [{"name": "app", "command": SLEEP}], initContainers=inits)
        await api.create("v1", "pods", "default", body)
        await api.wait_for(lambda: status_of(api, "init").get("phase") == "Running")
        assert (marks / "order").read_text().split() == ["one", "two"]
        assert condition(api, "init", "Initialized") == "True"
        assert cstatus(api, "init", "two", init=True)["state"]["terminated"]["exitCode"] == 0

    run(tmp_path, scenario)


def test_env_from_a_config_map(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        cm = {"metadata": {"name": "cfg"}, "data": {"GREETING": "hello"}}
        await api.create("v1", "configmaps", "default", cm)
        out = tmp_path / "env.txt"
        container = {
            "name": "app",
            "command": ["sh", "-c", f'echo "$GREETING $ME" > {out}; sleep 1000'],
            "envFrom": [{"configMapRef": {"name": "cfg"}}],
            "env": [{"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        }
        await api.create("v1", "pods", "default", pod("env", [container]))
        await api.wait_for(lambda: out.exists() and out.read_text().strip())
        assert out.read_text().strip() == "hello env"

    run(tmp_path, scenario)


def test_missing_config_map_is_a_create_container_config_error(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        container = {"name": "app", "command": SLEEP, "envFrom": [{"configMapRef": {"name": "nope"}}]}
        await api.create("v1", "pods", "default", pod("cfgerr", [container]))

        def waiting() -> str:
            return str(
                ((cstatus(api, "cfgerr", "app").get("state") or {}).get("waiting") or {}).get("reason", "")
            )

        await api.wait_for(lambda: waiting() == "CreateContainerConfigError")
        with pytest.raises(LookupFailed) as err:
            agent.lookup_container("default", "cfgerr", "app")
        assert err.value.code == 400
        assert (
            err.value.message
            == 'container "app" in pod "cfgerr" is waiting to start: CreateContainerConfigError'
        )

    run(tmp_path, scenario)


def test_graceful_delete_stops_and_removes_the_pod(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        marker = tmp_path / "prestop"
        container = {
            "name": "app",
            "command": SLEEP,
            "lifecycle": {"preStop": {"exec": {"command": ["sh", "-c", f"touch {marker}"]}}},
        }
        await api.create("v1", "pods", "default", pod("gone", [container], terminationGracePeriodSeconds=5))
        await api.wait_for(lambda: status_of(api, "gone").get("phase") == "Running")
        await api.delete("v1", "pods", "default", "gone")
        await api.wait_for(lambda: api.pod("default", "gone") is None)
        assert marker.exists()
        assert ("delete", "pods", "gone") in api.calls
        boxes = await agent.cri.list_pod_sandbox()
        assert [b for b in boxes if b.metadata.name == "gone"] == []

    run(tmp_path, scenario)


@pytest.mark.parametrize(
    ("container", "message"),
    [
        pytest.param(
            None, "a container name must be specified for pod two, choose one of: [a b]", id="ambiguous"
        ),
        pytest.param("c", "container c is not valid for pod two", id="unknown"),
    ],
)
def test_lookup_errors(tmp_path: Path, container: str | None, message: str) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        await api.create(
            "v1",
            "pods",
            "default",
            pod("two", [{"name": "a", "command": SLEEP}, {"name": "b", "command": SLEEP}]),
        )
        await api.wait_for(lambda: status_of(api, "two").get("phase") == "Running")
        with pytest.raises(LookupFailed) as err:
            agent.lookup_container("default", "two", container)
        assert (err.value.code, err.value.reason, err.value.message) == (400, "BadRequest", message)
        with pytest.raises(LookupFailed) as missing:
            agent.lookup_container("default", "nope", None)
        assert (missing.value.code, missing.value.message) == (404, 'pods "nope" not found')

    run(tmp_path, scenario)


def test_node_registered_and_lease_renewed(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        node = await api.get("v1", "nodes", None, NODE)
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 10999
        ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert ready["Ready"] == "True" and ready["MemoryPressure"] == "False"
        assert node["metadata"]["labels"]["kubernetes.io/hostname"] == NODE
        await api.wait_for(lambda: ("v1", "coordination.k8s.io/v1") and agent.node.lease_renewals >= 2)
        lease = await api.get("coordination.k8s.io/v1", "leases", "kube-node-lease", NODE)
        assert lease["spec"]["holderIdentity"] == NODE
        assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]

    run(tmp_path, scenario)


def test_static_pod_runs_with_a_mirror_pod(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    doc = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "kube-system"},
           "spec": {"containers": [{"name": "app", "image": "busybox", "command": SLEEP}]}}  # fmt: skip
    (manifests / "web.yaml").write_text(yaml.safe_dump(doc))
    mirror = f"web-{NODE}"

    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        def phase() -> str:
            return str(((api.pod("kube-system", mirror) or {}).get("status") or {}).get("phase", ""))

        await api.wait_for(lambda: phase() == "Running")
        first_uid = api.pod("kube-system", mirror)["metadata"]["uid"]  # type: ignore[index]
        ref = agent.lookup_container("kube-system", mirror, None)
        # deleting the mirror pod does not stop the static pod; the mirror comes back
        await api.delete("v1", "pods", "kube-system", mirror)
        await api.wait_for(
            lambda: (p := api.pod("kube-system", mirror)) is not None and p["metadata"]["uid"] != first_uid
        )
        await api.wait_for(lambda: phase() == "Running")
        assert agent.lookup_container("kube-system", mirror, None).container_id == ref.container_id
        # removing the file stops it and deletes the mirror pod
        os.unlink(manifests / "web.yaml")
        await api.wait_for(lambda: api.pod("kube-system", mirror) is None)
        await api.wait_for(lambda: not agent.workers)
        running = [c for c in await agent.cri.list_containers() if c.state == 1]
        assert running == []

    run(tmp_path, scenario, manifests=manifests)
