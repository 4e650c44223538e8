"""The CRI conformance cases. Each runs against every endpoint of the ``endpoint`` fixture.

Cases use only CRI calls through ``nodeagent.cri.client.CRIClient``; optional behaviour is gated
by ``Endpoint.capabilities``. Waiting for a container to exit polls ContainerStatus (the CRI subset
has no event stream) under a generous deadline that only guards against hangs.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from nodeagent.cri import api_pb2 as pb
from nodeagent.cri.client import CRIClient, CRIError, NotFound
from tests.nodeagent.cri_kit.endpoints import CAP_PID_NAMESPACE, CAP_POD_NETWORK, CAP_UTS, Endpoint

HANG_GUARD = 60.0
_seq = itertools.count()
LOG_LINE = re.compile(
    rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)) (stdout|stderr) ([FP]) (.*)$"
)


def kit_run(ep: Endpoint, body: Callable[[CRIClient], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with CRIClient(ep.socket, timeout=30) as client:
            return await asyncio.wait_for(body(client), HANG_GUARD * 2)

    return asyncio.run(main())


def sandbox_config(ep: Endpoint, labels: dict[str, str] | None = None) -> pb.PodSandboxConfig:
    n = next(_seq)
    name = f"kit-pod-{n}-{time.monotonic_ns() % 100000}"
    logdir = Path(ep.log_root) / name
    logdir.mkdir(parents=True, exist_ok=True)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="kit", attempt=0),
        hostname=name,
        log_directory=str(logdir),
        labels={"kit": "cri", **(labels or {})},
        annotations={"kit/annotation": "kept"},
    )


def container_config(
    name: str, image: str, cmd: list[str], *, labels: dict[str, str] | None = None, **kw: Any
) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=0),
        image=pb.ImageSpec(image=image),
        command=cmd[:1],
        args=cmd[1:],
        log_path=f"{name}/0.log",
        labels=labels or {},
        **kw,
    )


async def pull(client: CRIClient, ep: Endpoint) -> None:
    """Pull the kit's images if not present (kubelet's IfNotPresent): offline endpoints pre-import them."""
    for image in {ep.long_image, ep.short_image}:
        if await client.image_status(image) is None:
            await client.pull_image(image)


async def run_container(
    client: CRIClient, sid: str, sc: pb.PodSandboxConfig, cfg: pb.ContainerConfig, start: bool = True
) -> str:
    cid = await client.create_container(sid, cfg, sc)
    if start:
        await client.start_container(cid)
    return cid


async def wait_exited(client: CRIClient, cid: str) -> pb.ContainerStatus:
    deadline = time.monotonic() + HANG_GUARD
    while True:
        st = (await client.container_status(cid)).status
        if st.state == pb.CONTAINER_EXITED or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.05)


async def with_sandbox(
    client: CRIClient, ep: Endpoint, body: Callable[[str, pb.PodSandboxConfig], Awaitable[Any]], **kw: Any
) -> Any:
    await pull(client, ep)
    sc = sandbox_config(ep, **kw)
    sid = await client.run_pod_sandbox(sc)
    try:
        return await body(sid, sc)
    finally:
        await client.stop_pod_sandbox(sid)
        await client.remove_pod_sandbox(sid)


LONG = ["sh", "-c", "while true; do sleep 1; done"]


# -- runtime --------------------------------------------------------------------------------------


def test_version_and_status(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        v = await c.version()
        assert v.runtime_api_version == "v1"
        assert v.runtime_name and v.runtime_version
        conds = {cond.type: cond.status for cond in (await c.status()).status.conditions}
        assert conds.get("RuntimeReady") is True
        assert conds.get("NetworkReady") is True

    kit_run(endpoint, body)


# -- images ---------------------------------------------------------------------------------------


def test_pull_list_status_remove_image(endpoint: Endpoint) -> None:
    if endpoint.removable_image is None:
        pytest.skip("endpoint offers no removable image")
    image = endpoint.removable_image

    async def body(c: CRIClient) -> None:
        ref = await c.pull_image(image)
        assert ref
        st = await c.image_status(image)
        assert st is not None and st.size > 0
        assert st.id in {i.id for i in await c.list_images()}
        await c.remove_image(image)
        assert await c.image_status(image) is None
        await c.remove_image(image)  # idempotent

    kit_run(endpoint, body)


def test_image_status_of_absent_image_is_empty(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        assert await c.image_status("raykube.invalid/never-pulled:0") is None

    kit_run(endpoint, body)


def test_create_with_unpulled_image_is_not_found(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cfg = container_config("nope", "raykube.invalid/never-pulled:0", ["true"])
            with pytest.raises(NotFound):
                await c.create_container(sid, cfg, sc)

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


# -- sandboxes ------------------------------------------------------------------------------------


def test_sandbox_lifecycle(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        sc = sandbox_config(endpoint)
        sid = await c.run_pod_sandbox(sc)
        st = (await c.pod_sandbox_status(sid)).status
        assert st.state == pb.SANDBOX_READY
        assert st.metadata.name == sc.metadata.name
        assert st.created_at > 0
        assert dict(st.annotations) == {"kit/annotation": "kept"}
        assert st.network.ip
        assert sid in {s.id for s in await c.list_pod_sandbox()}
        await c.stop_pod_sandbox(sid)
        assert (await c.pod_sandbox_status(sid)).status.state == pb.SANDBOX_NOTREADY
        await c.stop_pod_sandbox(sid)  # idempotent
        await c.remove_pod_sandbox(sid)
        with pytest.raises(NotFound):
            await c.pod_sandbox_status(sid)
        assert sid not in {s.id for s in await c.list_pod_sandbox()}
        await c.remove_pod_sandbox(sid)  # idempotent

    kit_run(endpoint, body)


# -- containers -----------------------------------------------------------------------------------


def test_container_lifecycle(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cid = await run_container(
                c, sid, sc, container_config("life", endpoint.long_image, LONG), start=False
            )
            st = (await c.container_status(cid)).status
            assert st.state == pb.CONTAINER_CREATED and st.created_at > 0 and st.started_at == 0
            await c.start_container(cid)
            st = (await c.container_status(cid)).status
            assert st.state == pb.CONTAINER_RUNNING and st.started_at >= st.created_at
            assert st.metadata.name == "life"
            await c.stop_container(cid, 0)
            st = (await c.container_status(cid)).status
            assert st.state == pb.CONTAINER_EXITED and st.finished_at >= st.started_at
            await c.stop_container(cid, 0)  # idempotent
            await c.remove_container(cid)
            with pytest.raises(NotFound):
                await c.container_status(cid)
            await c.remove_container(cid)  # idempotent

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


@pytest.mark.parametrize(
    ("script", "code", "reason"),
    [
        pytest.param("exit 3", 3, "Error", id="exit-3"),
        pytest.param("exit 0", 0, "Completed", id="exit-0"),
    ],
)
def test_exit_code_and_reason(endpoint: Endpoint, script: str, code: int, reason: str) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cid = await run_container(
                c, sid, sc, container_config("exits", endpoint.short_image, ["sh", "-c", script])
            )
            st = await wait_exited(c, cid)
            assert st.state == pb.CONTAINER_EXITED
            assert (st.exit_code, st.reason) == (code, reason)
            # containerd stamps started_at when StartContainer returns, which can follow a fast exit.
            assert st.started_at > 0 and st.finished_at > 0

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


def test_logs_in_cri_format(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            script = "echo out-line; echo err-line >&2; echo second"
            cid = await run_container(
                c, sid, sc, container_config("logger", endpoint.short_image, ["sh", "-c", script])
            )
            st = await wait_exited(c, cid)
            assert st.log_path == str(Path(sc.log_directory) / "logger/0.log")
            records = []
            for raw in Path(st.log_path).read_bytes().splitlines():
                m = LOG_LINE.match(raw)
                assert m, f"not a CRI log line: {raw!r}"
                records.append((m.group(4), m.group(5), m.group(6)))
            assert (b"stdout", b"F", b"out-line") in records
            assert (b"stderr", b"F", b"err-line") in records
            out = [r[2] for r in records if r[0] == b"stdout"]
            assert out == [b"out-line", b"second"]

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


def test_env_workdir_and_hostname(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cfg = container_config(
                "env",
                endpoint.short_image,
                ["sh", "-c", 'echo "$FOO|$BAR|$(pwd)|$HOSTNAME"; hostname'],
                envs=[pb.KeyValue(key="FOO", value="foo value"), pb.KeyValue(key="BAR", value="b=1")],
                working_dir=endpoint.workdir,
            )
            cid = await run_container(c, sid, sc, cfg)
            st = await wait_exited(c, cid)
            assert st.exit_code == 0
            lines = [LOG_LINE.match(x).group(6) for x in Path(st.log_path).read_bytes().splitlines()]  # type: ignore[union-attr]
            want = f"foo value|b=1|{endpoint.workdir}|{sc.hostname}".encode()
            assert lines[0] == want
            if CAP_UTS in endpoint.capabilities:
                assert lines[1] == sc.hostname.encode()

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


@pytest.mark.parametrize(
    ("script", "grace", "code"),
    [
        pytest.param('trap "" TERM; while true; do sleep 1; done', 1, 137, id="ignores-sigterm-killed"),
        pytest.param('trap "exit 0" TERM; while true; do sleep 0.1; done', 60, 0, id="handles-sigterm"),
    ],
)
def test_stop_with_timeout(endpoint: Endpoint, script: str, grace: int, code: int) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            # Mark readiness in the log only after the trap is installed, so SIGTERM cannot race it.
            full = f"{script.split(';', 1)[0]}; echo trapped; {script.split(';', 1)[1]}"
            cid = await run_container(
                c, sid, sc, container_config("stubborn", endpoint.long_image, ["sh", "-c", full])
            )
            log = Path(sc.log_directory) / "stubborn/0.log"
            deadline = time.monotonic() + HANG_GUARD
            while (
                b"trapped" not in (log.read_bytes() if log.exists() else b"") and time.monotonic() < deadline
            ):
                await asyncio.sleep(0.02)
            await c.stop_container(cid, grace)
            st = (await c.container_status(cid)).status
            assert st.state == pb.CONTAINER_EXITED
            assert st.exit_code == code

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


# -- exec -----------------------------------------------------------------------------------------


def test_exec_sync_output_and_exit_code(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cid = await run_container(c, sid, sc, container_config("ex", endpoint.long_image, LONG))
            r = await c.exec_sync(cid, ["sh", "-c", "echo to-out; echo to-err >&2; exit 7"], exec_timeout=30)
            assert (r.stdout, r.stderr, r.exit_code) == (b"to-out\n", b"to-err\n", 7)
            r = await c.exec_sync(cid, ["sh", "-c", "echo $HOSTNAME"], exec_timeout=30)
            assert r.stdout == f"{sc.hostname}\n".encode() and r.exit_code == 0
            if CAP_PID_NAMESPACE in endpoint.capabilities:
                r = await c.exec_sync(cid, ["cat", "/proc/1/cmdline"], exec_timeout=30)
                assert r.stdout.split(b"\0")[0].rsplit(b"/", 1)[-1] == b"sh"

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


def test_exec_sync_timeout(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            cid = await run_container(c, sid, sc, container_config("slow", endpoint.long_image, LONG))
            with pytest.raises(CRIError):
                await c.exec_sync(cid, ["sleep", "30"], exec_timeout=1)
            r = await c.exec_sync(cid, ["echo", "still-alive"], exec_timeout=30)
            assert r.stdout == b"still-alive\n"

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


# -- networking -----------------------------------------------------------------------------------

PORT = 18123
CONNECT = (
    'i=0; while [ $i -lt 100 ]; do out=$(busybox nc 127.0.0.1 {port} </dev/null) && [ -n "$out" ] '
    '&& echo "$out" && exit 0; i=$((i+1)); sleep 0.1; done; exit 1'
)


def test_containers_of_a_pod_share_localhost(endpoint: Endpoint) -> None:
    port = PORT + next(_seq)

    async def body(c: CRIClient) -> None:
        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            server = ["busybox", "nc", "-ll", "-p", str(port), "-e", "echo", "hello-from-peer"]
            await run_container(c, sid, sc, container_config("server", endpoint.long_image, server))
            client_id = await run_container(c, sid, sc, container_config("client", endpoint.long_image, LONG))
            r = await c.exec_sync(client_id, ["sh", "-c", CONNECT.format(port=port)], exec_timeout=30)
            assert (r.exit_code, r.stdout) == (0, b"hello-from-peer\n")
            if CAP_POD_NETWORK in endpoint.capabilities:
                # Another pod has its own loopback: nothing listens there.
                async def other(sid2: str, sc2: pb.PodSandboxConfig) -> None:
                    probe = await run_container(
                        c, sid2, sc2, container_config("probe", endpoint.long_image, LONG)
                    )
                    r2 = await c.exec_sync(
                        probe, ["sh", "-c", f"busybox nc 127.0.0.1 {port} </dev/null"], exec_timeout=30
                    )
                    assert r2.exit_code != 0

                await with_sandbox(c, endpoint, other)

        await with_sandbox(c, endpoint, inner)

    kit_run(endpoint, body)


# -- listing --------------------------------------------------------------------------------------


def test_list_filters(endpoint: Endpoint) -> None:
    async def body(c: CRIClient) -> None:
        run_label = f"run-{next(_seq)}-{time.monotonic_ns()}"

        async def inner(sid: str, sc: pb.PodSandboxConfig) -> None:
            a = await run_container(
                c,
                sid,
                sc,
                container_config("a", endpoint.long_image, LONG, labels={"run": run_label, "role": "a"}),
            )
            b = await run_container(
                c,
                sid,
                sc,
                container_config("b", endpoint.short_image, ["true"], labels={"run": run_label, "role": "b"}),
            )
            await wait_exited(c, b)
            ids = {x.id for x in await c.list_containers(labels={"run": run_label})}
            assert ids == {a, b}
            assert [x.id for x in await c.list_containers(labels={"run": run_label, "role": "a"})] == [a]
            assert [x.id for x in await c.list_containers(id=b)] == [b]
            running = {x.id for x in await c.list_containers(sandbox_id=sid, state=pb.CONTAINER_RUNNING)}
            exited = {x.id for x in await c.list_containers(sandbox_id=sid, state=pb.CONTAINER_EXITED)}
            assert (running, exited) == ({a}, {b})
            assert {x.id for x in await c.list_pod_sandbox(labels={"run": run_label})} == {sid}
            assert {x.id for x in await c.list_pod_sandbox(id=sid, state=pb.SANDBOX_READY)} == {sid}
            assert await c.list_pod_sandbox(id=sid, state=pb.SANDBOX_NOTREADY) == []
            assert await c.list_pod_sandbox(labels={"run": "no-such-run"}) == []

        await with_sandbox(c, endpoint, inner, labels={"run": run_label})

    kit_run(endpoint, body)
