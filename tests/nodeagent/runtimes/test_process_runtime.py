"""``ProcessRuntime`` driven directly (no gRPC), in every isolation mode this machine allows.

The gRPC surface is covered by the CRI kit (tests/nodeagent/cri_kit); these cases cover what the kit
cannot see: injected clock and ids, start errors, cgroup joining, orphan reaping after a crash,
exec_stream, and shutdown leaving no process behind.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import select
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.runtimes.process import procs
from nodeagent.runtimes.process.cgroups import CgroupManager
from nodeagent.runtimes.process.isolation import Isolation, probe
from nodeagent.runtimes.process.runtime import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    ProcessRuntime,
)
from tests.capabilities import needs


def _modes() -> list[Any]:
    out = [pytest.param(Isolation("plain"), id="plain")]
    for mode in ("root", "userns"):
        iso = probe(mode)  # type: ignore[arg-type]
        missing = None if iso.mode == mode else f"{mode} namespaces unavailable: {iso.reason}"
        marks = [needs("isolation", missing)]
        out.append(pytest.param(Isolation(mode), id=mode, marks=marks))  # type: ignore[arg-type]
    return out


MODES = _modes()


def make_runtime(tmp: Path, iso: Isolation, **kw: Any) -> ProcessRuntime:
    ticks = itertools.count(1_000)
    ids = (f"{n:064x}" for n in itertools.count(1))
    return ProcessRuntime(
        str(tmp / "root"), isolation=iso, clock_ns=lambda: next(ticks), new_id=lambda: next(ids), **kw
    )


def sandbox(tmp: Path, name: str = "pod") -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid="u", namespace="ns"),
        hostname=name,
        log_directory=str(tmp / "logs"),
    )


def container(name: str, cmd: list[str], image: str = "busybox", **kw: Any) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=image),
        command=cmd,
        log_path=f"{name}.log",
        **kw,
    )


def run(rt: ProcessRuntime, body: Callable[[ProcessRuntime], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await body(rt)
        finally:
            await rt.shutdown()

    return asyncio.run(main())


async def start(rt: ProcessRuntime, sc: pb.PodSandboxConfig, cfg: pb.ContainerConfig) -> tuple[str, str]:
    rt.pull_image(pb.PullImageRequest(image=pb.ImageSpec(image=cfg.image.image)))
    sid = (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=sc))).pod_sandbox_id
    cid = rt.create_container(
        pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg, sandbox_config=sc)
    ).container_id
    await rt.start_container(pb.StartContainerRequest(container_id=cid))
    return sid, cid


def alive(pid: int) -> bool:
    return procs.start_time(pid) is not None and _state(pid) != "Z"


def exited(pidfd: int, timeout: float = 30.0) -> bool:
    """Wait for the process behind ``pidfd`` to exit (a pidfd turns readable then); the timeout only
    guards against a hang."""
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


@pytest.mark.parametrize("iso", MODES)
def test_clock_and_ids_are_injected(tmp_path: Path, iso: Isolation) -> None:
    async def body(rt: ProcessRuntime) -> None:
        sid, cid = await start(rt, sandbox(tmp_path), container("c", ["sleep", "60"]))
        assert sid == f"{1:064x}" and cid == f"{2:064x}"
        st = rt.container_status(pb.ContainerStatusRequest(container_id=cid)).status
        assert (st.created_at, st.started_at) == (1_001, 1_002)
        assert (
            rt.pod_sandbox_status(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.created_at == 1_000
        )

    run(make_runtime(tmp_path, iso), body)


@pytest.mark.parametrize("iso", MODES)
def test_start_errors_mark_the_container_exited(tmp_path: Path, iso: Isolation) -> None:
    async def body(rt: ProcessRuntime) -> None:
        with pytest.raises(FailedPreconditionError, match="executable file not found"):
            await start(rt, sandbox(tmp_path), container("c", ["no-such-binary-raykube"]))
        (c,) = rt.containers.values()
        st = rt.container_status(pb.ContainerStatusRequest(container_id=c.id)).status
        assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 128, "StartError")

    run(make_runtime(tmp_path, iso), body)


@pytest.mark.parametrize(
    ("call", "exc"),
    [
        pytest.param(
            lambda rt: rt.container_status(pb.ContainerStatusRequest(container_id="x")),
            NotFoundError,
            id="status",
        ),
        pytest.param(
            lambda rt: rt.container_status(pb.ContainerStatusRequest()), InvalidArgumentError, id="empty-id"
        ),
        pytest.param(
            lambda rt: rt.pod_sandbox_status(pb.PodSandboxStatusRequest(pod_sandbox_id="x")),
            NotFoundError,
            id="sandbox",
        ),
        pytest.param(
            lambda rt: rt.create_container(pb.CreateContainerRequest(pod_sandbox_id="x")),
            NotFoundError,
            id="create",
        ),
    ],
)
def test_lookup_errors(tmp_path: Path, call: Callable[[ProcessRuntime], Any], exc: type[Exception]) -> None:
    rt = make_runtime(tmp_path, Isolation("plain"))
    with pytest.raises(exc):
        call(rt)


def test_unpulled_image_is_not_found(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime) -> None:
        sc = sandbox(tmp_path)
        sid = (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=sc))).pod_sandbox_id
        req = pb.CreateContainerRequest(
            pod_sandbox_id=sid, config=container("c", ["true"], image="ubuntu:22.04")
        )
        with pytest.raises(NotFoundError, match=r"ubuntu:22\.04"):
            rt.create_container(req)

    run(make_runtime(tmp_path, Isolation("plain")), body)


@pytest.mark.parametrize("iso", MODES)
def test_shutdown_kills_every_process(tmp_path: Path, iso: Isolation) -> None:
    pidfds: list[int] = []

    async def body(rt: ProcessRuntime) -> None:
        sid, cid = await start(rt, sandbox(tmp_path), container("c", ["sh", "-c", "sleep 60 & sleep 60"]))
        init = rt.containers[cid].init_pid
        for _ in range(200):  # sh forks its two sleeps right after it starts
            if len(procs.children(init)) == 2:
                break
            await asyncio.sleep(0.005)
        seen = [rt.sandboxes[sid].pid, init, *procs.children(init)]
        assert len(seen) == 4 and all(alive(p) for p in seen)
        pidfds.extend(os.pidfd_open(p) for p in seen)

    run(make_runtime(tmp_path, iso), body)
    assert [exited(fd) for fd in pidfds] == [True] * 4


def test_orphans_of_a_killed_runtime_are_reaped(tmp_path: Path) -> None:
    # A runtime that dies without shutdown (SIGKILL) leaves its pods; the next one kills them.
    script = (
        "import asyncio, sys\n"
        "from nodeagent.cri import api_pb2 as pb\n"
        "from nodeagent.runtimes.process.isolation import Isolation\n"
        "from nodeagent.runtimes.process.runtime import ProcessRuntime\n"
        "async def main():\n"
        "    rt = ProcessRuntime(sys.argv[1], isolation=Isolation('plain'))\n"
        "    rt.pull_image(pb.PullImageRequest(image=pb.ImageSpec(image='busybox')))\n"
        "    sc = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name='p'))\n"
        "    sid = (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=sc))).pod_sandbox_id\n"
        "    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name='c'),\n"
        "                             image=pb.ImageSpec(image='busybox'), command=['sleep', '60'])\n"
        "    req = pb.CreateContainerRequest(pod_sandbox_id=sid, config=cfg)\n"
        "    cid = rt.create_container(req).container_id\n"
        "    await rt.start_container(pb.StartContainerRequest(container_id=cid))\n"
        "    print(rt.sandboxes[sid].pid, rt.containers[cid].init_pid, flush=True)\n"
        "    await asyncio.sleep(3600)\n"
        "asyncio.run(main())\n"
    )
    root = tmp_path / "root"
    repo = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(root)], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    pids = [int(x) for x in proc.stdout.readline().split()]
    pidfds = [os.pidfd_open(p) for p in pids]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(pids) == 2 and all(alive(p) for p in pids)
    rt = ProcessRuntime(str(root), isolation=Isolation("plain"))
    assert sorted(rt.orphans_killed) == sorted(pids)
    assert [exited(fd) for fd in pidfds] == [True, True]
    assert ProcessRuntime(str(root), isolation=Isolation("plain")).orphans_killed == []


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


@pytest.mark.parametrize("iso", MODES)
def test_exec_stream_pipes(tmp_path: Path, iso: Isolation) -> None:
    async def body(rt: ProcessRuntime) -> None:
        _, cid = await start(rt, sandbox(tmp_path, "streamer"), container("c", ["sleep", "60"]))
        stream = await rt.exec_stream(cid, ["sh", "-c", "read x; echo got-$x-$HOSTNAME; exit 5"])
        out, _ = await stream.process.communicate(b"line\n")
        assert out == b"got-line-streamer\n"
        assert stream.process.returncode == 5

    run(make_runtime(tmp_path, iso), body)


def test_exec_stream_tty(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime) -> None:
        _, cid = await start(rt, sandbox(tmp_path), container("c", ["sleep", "60"]))
        stream = await rt.exec_stream(cid, ["sh", "-c", "test -t 1 && echo is-a-tty"], tty=True)
        assert stream.pty_master is not None
        await stream.process.wait()
        data = os.read(stream.pty_master, 1024)
        os.close(stream.pty_master)
        assert b"is-a-tty" in data

    run(make_runtime(tmp_path, Isolation("plain")), body)


def test_container_joins_its_cgroups_before_exec(tmp_path: Path) -> None:
    fake = tmp_path / "cgroup"
    for ctl in ("memory", "cpu"):
        (fake / ctl).mkdir(parents=True)
        (fake / ctl / "cgroup.procs").write_text("")
    cg = CgroupManager.probe("kit", root=fake)

    async def body(rt: ProcessRuntime) -> None:
        res = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20, cpu_quota=20_000, cpu_period=100_000)
        cfg = container("c", ["sleep", "60"], linux=pb.LinuxContainerConfig(resources=res))
        _, cid = await start(rt, sandbox(tmp_path), cfg)
        pid = rt.containers[cid].process.pid  # type: ignore[union-attr]
        group = fake / "memory" / "kit" / cid
        assert (group / "memory.limit_in_bytes").read_text() == str(64 << 20)
        assert (fake / "cpu" / "kit" / cid / "cpu.cfs_quota_us").read_text() == "20000"
        assert (group / "cgroup.procs").read_text() == str(pid)

    run(make_runtime(tmp_path, Isolation("plain"), cgroups=cg), body)


def _refusing_cgroupfs(root: Path, refuse: str) -> CgroupManager:
    """A fake cgroupfs (a writable ``memory`` controller) that refuses one write: ``cgroup.procs``
    (the join) or a limit file. A directory where the kernel has a file fails the write for root too."""
    (root / "memory").mkdir(parents=True)
    (root / "memory" / "cgroup.procs").write_text("")

    class Refusing(CgroupManager):
        def create(self, cid: str, limits: dict[str, dict[str, str]]) -> list[str]:
            for path in self.paths(cid):
                (path / refuse).mkdir(parents=True)
            return CgroupManager.create(self, cid, limits)

    probed = CgroupManager.probe("kit", root=root)
    assert probed.writable == ("memory",)
    return Refusing(probed.base, probed.writable, probed.reason, probed.root)


@pytest.mark.parametrize(
    ("refuse", "writable", "message"),
    [
        pytest.param("cgroup.procs", True, "/cgroup.procs: Is a directory", id="join-refused"),
        pytest.param("memory.limit_in_bytes", True, "memory: [Errno 21] Is a directory", id="limit-refused"),
        pytest.param("", False, "memory: not writable (no writable cgroup v1 controllers", id="no-cgroups"),
    ],
)
def test_limits_that_cannot_be_applied_are_reported_in_the_container_status(
    tmp_path: Path, refuse: str, writable: bool, message: str
) -> None:
    fake = tmp_path / "cgroup"
    if writable:
        cg = _refusing_cgroupfs(fake, refuse)
    else:
        cg = CgroupManager.probe("kit", root=fake)  # nothing there: no writable controller

    async def body(rt: ProcessRuntime) -> None:
        res = pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20)
        cfg = container("c", ["sleep", "60"], linux=pb.LinuxContainerConfig(resources=res))
        _, cid = await start(rt, sandbox(tmp_path), cfg)
        status = rt.container_status(pb.ContainerStatusRequest(container_id=cid)).status
        assert status.state == pb.CONTAINER_RUNNING  # the container runs, without its limit
        assert status.reason == "ResourceLimitsNotApplied"
        assert status.message.startswith("resource limits not applied: ") and message in status.message

    run(make_runtime(tmp_path, Isolation("plain"), cgroups=cg), body)


def test_status_reports_isolation_and_cgroups(tmp_path: Path) -> None:
    rt = make_runtime(tmp_path, Isolation("plain", "unshare not permitted"))
    conds = {c.type: c for c in asyncio.run(rt.status(pb.StatusRequest())).status.conditions}
    assert conds["ContainerIsolation"].status is False
    assert "unshare not permitted" in conds["ContainerIsolation"].message
    assert conds["ResourceLimits"].reason == "NotEnforced"
    assert rt.version(pb.VersionRequest()).runtime_version.endswith("+plain")
