"""The containerd plugin end to end: a real containerd under a temp root, driven over CRI with our stubs.

Needs root and Debian's containerd, runc, containernetworking-plugins and busybox-static; fails with the
reason otherwise (skips if RAYKUBE_ALLOW_MISSING names containerd). Run under
`flock /tmp/raykube-heavy.lock` on shared machines.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from nodeagent.cri import api_pb2, api_pb2_grpc
from nodeagent.images import BUSYBOX_IMAGE, PAUSE_IMAGE
from nodeagent.images.busybox import PAUSE_SCRIPT
from nodeagent.runtimes.containerd import Backoff, ContainerdRuntime, missing_prerequisites
from nodeagent.runtimes.containerd import cleanup as host
from tests.capabilities import needs

_MISSING = missing_prerequisites()
pytestmark = needs("containerd", ("containerd unavailable: " + "; ".join(_MISSING)) if _MISSING else None)

POD_CIDR = "10.213.0.0/24"


@dataclass
class Harness:
    loop: asyncio.AbstractEventLoop
    rt: ContainerdRuntime
    runtime: api_pb2_grpc.RuntimeServiceStub
    images: api_pb2_grpc.ImageServiceStub
    channel: grpc.Channel

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)


def _bridge_name() -> str:
    return f"rk-t{os.getpid() % 100000}"


@pytest.fixture(scope="module")
def ctd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    loop = asyncio.new_event_loop()
    rt = ContainerdRuntime(
        str(tmp_path_factory.mktemp("ctd")), pod_cidr=POD_CIDR, bridge=_bridge_name(), backoff=Backoff(0.1)
    )
    loop.run_until_complete(rt.start())
    channel = grpc.insecure_channel(rt.endpoint)
    h = Harness(
        loop, rt, api_pb2_grpc.RuntimeServiceStub(channel), api_pb2_grpc.ImageServiceStub(channel), channel
    )
    try:
        yield h
    finally:
        channel.close()
        loop.run_until_complete(rt.stop())
        loop.close()


def _sandbox_config(log_dir: str, name: str = "") -> api_pb2.PodSandboxConfig:
    name = name or "p-" + uuid.uuid4().hex[:8]
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        log_directory=log_dir,
    )


def _run_container(
    h: Harness,
    sandbox_id: str,
    config: api_pb2.PodSandboxConfig,
    name: str,
    command: list[str],
    mounts: list[api_pb2.Mount] | None = None,
) -> str:
    cc = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=BUSYBOX_IMAGE),
        command=command,
        log_path=f"{name}.log",
        mounts=mounts or [],
    )
    cid = h.runtime.CreateContainer(
        api_pb2.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=cc, sandbox_config=config)
    ).container_id
    h.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return cid


def _wait_exited(h: Harness, cid: str, timeout: float = 30.0) -> api_pb2.ContainerStatus:
    """Poll ContainerStatus: CRI has no exit notification in the subset we speak."""
    deadline = time.monotonic() + timeout
    while True:
        st = h.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        if st.state == api_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
            return st
        time.sleep(0.05)


@pytest.fixture
def pod(ctd: Harness, tmp_path: Any) -> Iterator[tuple[str, api_pb2.PodSandboxConfig]]:
    config = _sandbox_config(str(tmp_path))
    sid = ctd.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        yield sid, config
    finally:
        ctd.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=sid))
        ctd.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=sid))


def test_version_and_status(ctd: Harness) -> None:
    v = ctd.runtime.Version(api_pb2.VersionRequest())
    assert (v.runtime_name, v.runtime_api_version) == ("containerd", "v1")
    conditions = {c.type: c.status for c in ctd.runtime.Status(api_pb2.StatusRequest()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert ctd.rt.healthy()


@pytest.mark.parametrize(
    "image", [pytest.param(BUSYBOX_IMAGE, id="busybox"), pytest.param(PAUSE_IMAGE, id="pause")]
)
def test_images_are_imported(ctd: Harness, image: str) -> None:
    status = ctd.images.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))).image
    assert image in status.repo_tags


def test_pod_gets_an_ip_from_the_pod_cidr(ctd: Harness, pod: tuple[str, Any]) -> None:
    sid, _ = pod
    st = ctd.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=sid)).status
    assert st.state == api_pb2.SANDBOX_READY
    assert st.network.ip.startswith("10.213.0.")


def test_container_runs_and_logs(ctd: Harness, pod: tuple[str, Any]) -> None:
    sid, config = pod
    cid = _run_container(ctd, sid, config, "echo", ["echo", "hi"])
    st = _wait_exited(ctd, cid)
    assert (st.state, st.exit_code, st.reason) == (api_pb2.CONTAINER_EXITED, 0, "Completed")
    with open(os.path.join(config.log_directory, "echo.log")) as f:
        lines = f.read().splitlines()
    assert [line.split(" ", 3)[1:] for line in lines] == [["stdout", "F", "hi"]]


def test_exit_code_and_reason(ctd: Harness, pod: tuple[str, Any]) -> None:
    sid, config = pod
    st = _wait_exited(ctd, _run_container(ctd, sid, config, "fail", ["sh", "-c", "exit 3"]))
    assert (st.exit_code, st.reason) == (3, "Error")


def test_two_containers_share_localhost(ctd: Harness, pod: tuple[str, Any]) -> None:
    sid, config = pod
    _run_container(
        ctd,
        sid,
        config,
        "web",
        [
            "sh",
            "-c",
            "mkdir -p /www && echo hello-web > /www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /www",
        ],
    )
    # busybox-static's `wget -T` segfaults (runtime-stack.md), so bound each try with `timeout`.
    client = "for i in $(seq 100); do timeout 2 wget -qO- 127.0.0.1:8080 && exit 0; sleep 0.1; done; exit 1"
    st = _wait_exited(ctd, _run_container(ctd, sid, config, "client", ["sh", "-c", client]))
    assert st.exit_code == 0
    with open(os.path.join(config.log_directory, "client.log")) as f:
        assert "hello-web" in f.read()


@pytest.mark.parametrize(
    ("cmd", "stdout", "exit_code"),
    [
        pytest.param(["echo", "out"], b"out\n", 0, id="ok"),
        pytest.param(["sh", "-c", "echo x; exit 7"], b"x\n", 7, id="exit-code"),
        pytest.param(["cat", "/etc/hostname"], None, 0, id="hostname-file"),
    ],
)
def test_exec_sync(
    ctd: Harness, pod: tuple[str, Any], cmd: list[str], stdout: bytes | None, exit_code: int
) -> None:
    sid, config = pod
    cid = _run_container(ctd, sid, config, "sleeper", ["sleep", "3600"])
    resp = ctd.runtime.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=10))
    assert resp.exit_code == exit_code
    assert resp.stdout == (stdout if stdout is not None else config.hostname.encode() + b"\n")


def test_mounts_pass_through(ctd: Harness, pod: tuple[str, Any], tmp_path: Any) -> None:
    """CRI mounts reach containerd as they are (the node volume manager relies on it): a volume two
    containers share, one of them read-only, and ContainerStatus lists them."""
    sid, config = pod
    vol = tmp_path / "vol"
    vol.mkdir()
    rw = api_pb2.Mount(host_path=str(vol), container_path="/data")
    ro = api_pb2.Mount(host_path=str(vol), container_path="/mnt/ro", readonly=True)
    st = _wait_exited(
        ctd, _run_container(ctd, sid, config, "writer", ["sh", "-c", "echo hi > /data/x"], [rw])
    )
    assert st.exit_code == 0 and (vol / "x").read_text() == "hi\n"
    cid = _run_container(ctd, sid, config, "reader", ["sleep", "3600"], [ro])
    resp = ctd.runtime.ExecSync(
        api_pb2.ExecSyncRequest(container_id=cid, cmd=["cat", "/mnt/ro/x"], timeout=10)
    )
    assert (resp.exit_code, resp.stdout) == (0, b"hi\n")
    resp = ctd.runtime.ExecSync(
        api_pb2.ExecSyncRequest(container_id=cid, cmd=["touch", "/mnt/ro/y"], timeout=10)
    )
    assert resp.exit_code != 0 and b"Read-only" in resp.stderr and not (vol / "y").exists()
    st = ctd.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
    assert [(m.host_path, m.container_path, m.readonly) for m in st.mounts] == [(str(vol), "/mnt/ro", True)]


def test_pause_script_exits_0_on_sigterm(ctd: Harness, pod: tuple[str, Any]) -> None:
    """The sandbox's PID 1 script, run as a container's PID 1, ends cleanly on StopContainer's SIGTERM."""
    sid, config = pod
    cid = _run_container(ctd, sid, config, "pause-like", ["/bin/sh", "-c", PAUSE_SCRIPT])
    ctd.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=30))
    st = ctd.runtime.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
    assert (st.state, st.exit_code) == (api_pb2.CONTAINER_EXITED, 0)


def test_supervisor_restarts_containerd(ctd: Harness) -> None:
    proc = ctd.rt._proc
    assert proc is not None
    before = ctd.rt.restarts
    os.kill(proc.pid, signal.SIGKILL)
    ctd.run(proc.wait())
    ctd.run(ctd.rt.wait_healthy(timeout=60))
    assert ctd.rt.restarts == before + 1
    assert ctd.rt._proc is not proc
    assert ctd.runtime.Version(api_pb2.VersionRequest()).runtime_name == "containerd"


def _netns() -> set[str]:
    try:
        return set(os.listdir("/var/run/netns"))
    except OSError:
        return set()


def test_stop_leaves_nothing_behind(tmp_path: Any) -> None:
    bridge = f"rk-s{os.getpid() % 100000}"
    netns_before = _netns()
    rt = ContainerdRuntime(str(tmp_path / "ctd"), pod_cidr="10.213.1.0/24", bridge=bridge)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(rt.start())
        with grpc.insecure_channel(rt.endpoint) as channel:
            h = Harness(
                loop,
                rt,
                api_pb2_grpc.RuntimeServiceStub(channel),
                api_pb2_grpc.ImageServiceStub(channel),
                channel,
            )
            config = _sandbox_config(str(tmp_path))
            sid = h.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
            _run_container(h, sid, config, "sleeper", ["sleep", "3600"])
            assert host.link_exists(bridge)
            assert _netns() - netns_before
            assert host.shim_pids(rt.socket_path)
        loop.run_until_complete(rt.stop())
    finally:
        loop.run_until_complete(rt.stop())
        loop.close()
    assert not host.link_exists(bridge)
    assert _netns() == netns_before
    assert host.shim_pids(rt.socket_path) == []
    assert not rt.healthy()
    with open("/proc/self/mountinfo") as f:
        assert str(tmp_path) not in f.read()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                assert rt.paths.config.encode() not in f.read().split(b"\0")
        except OSError:
            continue
