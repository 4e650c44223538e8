"""Pod volumes through the whole agent: a REAL process runtime in an image root (``root`` isolation,
so CRI mounts are bind mounts in the container's namespace), the fake API, and real mounts on the host.
What a container reads is checked with exec; the host is checked with findmnt after the pod is gone."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from nodeagent.agent.agent import NodeAgent
from nodeagent.agent.cri_config import bare_id
from nodeagent.images import BUSYBOX_IMAGE, write_images
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation
from nodeagent.runtimes.process.server import serve, stop_server
from tests.capabilities import needs, not_root
from tests.nodeagent.agent.fake_api import FakeApi
from tests.nodeagent.agent.test_agent import FAST, MACHINE, NODE, SLEEP, cstatus, status_of
from tests.nodeagent.agent.test_agent_events import events_of

pytestmark = needs("root", not_root())


def findmnt(root: Path) -> list[str]:
    out = subprocess.run(
        ["findmnt", "-rn", "-o", "TARGET"], capture_output=True, text=True, check=True
    ).stdout
    return [m for m in out.split() if m.startswith(f"{root}/")]


@contextlib.asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[tuple[FakeApi, NodeAgent]]:
    sock = str(tmp_path / "rt.sock")
    rt = await serve(
        sock, str(tmp_path / "rt"), isolation=Isolation("root"), cgroups=CgroupManager(base="", writable=())
    )
    layouts = write_images(str(tmp_path / "layouts"))
    rt.import_layout(layouts[BUSYBOX_IMAGE][0])  # an image root: mount points are made in its layer
    api = FakeApi()
    agent = NodeAgent(
        api, sock, NODE, str(tmp_path / "data"), MACHINE, kubelet_port=10999, config=FAST, ca_pem="THE CA"
    )
    try:
        await agent.start()
        yield api, agent
    finally:
        await agent.stop(remove_pods=True)
        await stop_server(rt)


def run(tmp_path: Path, scenario: Callable[[FakeApi, NodeAgent], Awaitable[None]]) -> None:
    async def main() -> None:
        async with running(tmp_path) as (api, agent):
            await scenario(api, agent)

    try:
        asyncio.run(main())
    finally:
        left = findmnt(tmp_path / "data")
        subprocess.run(["umount", "-R", "-l", *left], check=False, capture_output=True)
        assert left == [], f"left mounted: {left}"


async def cat(agent: NodeAgent, api: FakeApi, name: str, path: str) -> str:
    cid = bare_id(cstatus(api, name, "app")["containerID"])
    resp = await agent.cri.exec_sync(cid, ["cat", path], exec_timeout=5)
    return (resp.stdout + resp.stderr).decode()


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    for c in [*containers, *spec.get("initContainers", ())]:
        c.setdefault("image", BUSYBOX_IMAGE)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "containers": containers, "terminationGracePeriodSeconds": 0, **spec},
    }


def running_pod(api: FakeApi, name: str) -> bool:
    return status_of(api, name).get("phase") == "Running"


def waiting_reason(api: FakeApi, name: str) -> str:
    return str(((cstatus(api, name, "app").get("state") or {}).get("waiting") or {}).get("reason", ""))


def test_volumes_reach_the_container_update_and_go_with_the_pod(tmp_path: Path) -> None:
    volumes = [
        {"name": "cfg", "configMap": {"name": "settings"}},
        {"name": "sec", "secret": {"secretName": "creds"}},
        {"name": "scratch", "emptyDir": {}},
        {"name": "api", "projected": {"sources": [
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"serviceAccountToken": {"path": "token"}},
            {"downwardAPI": {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        ]}},
    ]  # fmt: skip
    mounts = [
        {"name": "cfg", "mountPath": "/etc/cfg"},
        {"name": "cfg", "mountPath": "/etc/one.conf", "subPath": "one.conf"},
        {"name": "sec", "mountPath": "/etc/sec"},
        {"name": "scratch", "mountPath": "/work", "subPathExpr": "$(POD_NAME)"},
        {"name": "api", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
    ]
    env = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]

    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        settings = {"metadata": {"name": "settings"}, "data": {"k": "v1", "one.conf": "one"}}
        await api.create("v1", "configmaps", "default", settings)
        body = pod("web", [{"name": "app", "command": SLEEP, "volumeMounts": mounts, "env": env}],
                   volumes=volumes)  # fmt: skip
        await api.create("v1", "pods", "default", body)
        await api.wait_for(lambda: "FailedMount" in {e["reason"] for e in events_of(api, "web")})
        failed = next(e for e in events_of(api, "web") if e["reason"] == "FailedMount")
        assert failed["type"] == "Warning"
        assert failed["message"] == 'MountVolume.SetUp failed for volume "sec" : secret "creds" not found'
        assert waiting_reason(api, "web") == "ContainerCreating"
        creds = {"metadata": {"name": "creds"}, "data": {"pw": base64.b64encode(b"hunter2").decode()}}
        await api.create("v1", "secrets", "default", creds)
        await api.wait_for(lambda: running_pod(api, "web"))
        assert await cat(agent, api, "web", "/etc/cfg/k") == "v1"
        assert await cat(agent, api, "web", "/etc/one.conf") == "one"
        assert await cat(agent, api, "web", "/etc/sec/pw") == "hunter2"
        sa = "/var/run/secrets/kubernetes.io/serviceaccount"
        assert await cat(agent, api, "web", f"{sa}/ca.crt") == "THE CA"
        assert await cat(agent, api, "web", f"{sa}/token") == "token-1-default-default"
        assert await cat(agent, api, "web", f"{sa}/name") == "web"
        cid = bare_id(cstatus(api, "web", "app")["containerID"])
        await agent.cri.exec_sync(cid, ["sh", "-c", "echo hi > /work/f"], exec_timeout=5)
        uid = api.pod("default", "web")["metadata"]["uid"]  # type: ignore[index]
        pod_dir = tmp_path / "data" / "pods" / uid
        assert (
            pod_dir / "volumes" / "kubernetes.io~empty-dir" / "scratch" / "web" / "f"
        ).read_text() == "hi\n"
        ro = await agent.cri.exec_sync(cid, ["sh", "-c", "echo x > /etc/cfg/new"], exec_timeout=5)
        assert ro.exit_code != 0  # API data is read-only in the container

        cm = await api.get("v1", "configmaps", "default", "settings")
        await api.update("v1", "configmaps", "default", {**cm, "data": {"k": "v2", "one.conf": "one"}})

        async def updated() -> bool:
            return await cat(agent, api, "web", "/etc/cfg/k") == "v2"

        for _ in range(200):  # within the agent's sync period (1 s here)
            if await updated():
                break
            await asyncio.sleep(0.1)
        assert await updated()
        assert len(findmnt(pod_dir)) == 4  # the secret and projected tmpfs, two subPath binds
        await api.delete("v1", "pods", "default", "web", grace_period_seconds=0)
        await api.wait_for(lambda: api.pod("default", "web") is None)
        await api.wait_for(lambda: not pod_dir.exists())
        assert findmnt(tmp_path / "data") == []

    run(tmp_path, scenario)


def test_subpath_escape_keeps_the_container_waiting(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        volumes = [{"name": "d", "emptyDir": {}}]
        init = {"name": "init", "command": ["ln", "-s", "/", "/d/escape"],
                "volumeMounts": [{"name": "d", "mountPath": "/d"}]}  # fmt: skip
        app = {
            "name": "app",
            "command": SLEEP,
            "volumeMounts": [{"name": "d", "mountPath": "/x", "subPath": "escape"}],
        }
        await api.create("v1", "pods", "default", pod("esc", [app], volumes=volumes, initContainers=[init]))
        await api.wait_for(lambda: waiting_reason(api, "esc") == "CreateContainerConfigError")
        message = cstatus(api, "esc", "app")["state"]["waiting"]["message"]
        assert message.startswith('failed to prepare subPath for volumeMount "d" of container "app": ')
        assert "outside the volume" in message
        failed = [e for e in events_of(api, "esc") if e["reason"] == "Failed"]
        assert failed and failed[0]["message"] == f"Error: {message}"

    run(tmp_path, scenario)


def test_a_restarted_agent_removes_volumes_of_vanished_pods(tmp_path: Path) -> None:
    async def scenario(api: FakeApi, agent: NodeAgent) -> None:
        volumes = [{"name": "m", "emptyDir": {"medium": "Memory"}}]
        app = {"name": "app", "command": SLEEP, "volumeMounts": [{"name": "m", "mountPath": "/m"}]}
        await api.create("v1", "pods", "default", pod("mem", [app], volumes=volumes))
        await api.wait_for(lambda: running_pod(api, "mem"))
        uid = api.pod("default", "mem")["metadata"]["uid"]  # type: ignore[index]
        assert len(findmnt(tmp_path / "data" / "pods" / uid)) == 1
        await agent.stop()  # the pod keeps running, its volumes stay
        key = ("v1", "pods", "default", "mem")
        del api.objects[key]  # gone while no agent watched
        await agent.start()
        assert not (tmp_path / "data" / "pods" / uid).exists()
        assert findmnt(tmp_path / "data") == []

    run(tmp_path, scenario)
