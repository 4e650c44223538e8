"""The process runtime's pod network path against a real NetworkPlugin served on a real socket.

``Recorder`` is a small in-test plugin: it records every call (with what it saw of the netns at that
moment), hands out 10.88.0.N, and fails ADD for pods named ``refuse-*``. The runtime is driven
directly (no CRI gRPC), in the ``root`` isolation mode so sandboxes have namespaces of their own.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.server import NetworkServer, serve
from netplugins.cni.types import (
    Attachment,
    CNIError,
    IPConfig,
    NetRequest,
    PluginNotAvailable,
    Result,
)
from nodeagent.cri import api_pb2 as pb
from nodeagent.runtimes.process.isolation import Isolation, probe
from nodeagent.runtimes.process.network import PodNetwork
from nodeagent.runtimes.process.runtime import NetworkSetupError, ProcessRuntime
from tests.capabilities import require


class Recorder(NetworkPlugin):
    NAME: ClassVar[str] = "recorder"

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.calls: list[tuple[str, Any]] = []
        self.attached: dict[str, str] = {}
        self.ready = True

    def _netns(self, req: NetRequest) -> str | None:
        try:
            return os.readlink(req.netns) if req.netns else None
        except OSError:
            return None

    async def add(self, req: NetRequest) -> Result:
        self.calls.append(("add", req, self._netns(req)))
        if req.args.get("K8S_POD_NAME", "").startswith("refuse-"):
            raise CNIError(101, f"no address for {req.pod}", "pool exhausted")
        ip = self.attached.setdefault(req.container_id, f"10.88.0.{len(self.attached) + 2}")
        return Result(ips=(IPConfig(f"{ip}/24", "10.88.0.1"), IPConfig("fd00:88::5/64")))

    async def delete(self, req: NetRequest) -> None:
        self.calls.append(("del", req, self._netns(req)))
        self.attached.pop(req.container_id, None)

    async def check(self, req: NetRequest) -> None:
        pass

    async def status(self) -> None:
        if not self.ready:
            raise PluginNotAvailable("node has no podCIDR yet")

    async def gc(self, valid: list[Attachment]) -> None:
        self.calls.append(("gc", list(valid), None))

    def called(self, op: str) -> list[tuple[NetRequest, str | None]]:
        return [(c[1], c[2]) for c in self.calls if c[0] == op]


class NodeRecorder(Recorder):
    NAME: ClassVar[str] = "node-recorder"
    NODE_NETWORK: ClassVar[bool] = True


def root_isolation() -> Isolation:
    iso = probe("root")
    require("isolation", None if iso.mode == "root" else f"root namespaces unavailable: {iso.reason}")
    return iso


def sandbox(tmp: Path, name: str = "web", host_network: bool = False) -> pb.PodSandboxConfig:
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{name}", namespace="ns"),
        hostname=name,
        log_directory=str(tmp / "logs"),
        port_mappings=[
            pb.PortMapping(protocol=pb.UDP, container_port=53, host_port=5353, host_ip="127.0.0.1"),
            pb.PortMapping(protocol=pb.TCP, container_port=80),  # no host port: not for the plugin
        ],
    )
    if host_network:
        cfg.linux.security_context.namespace_options.network = pb.NODE
    return cfg


Body = Callable[[ProcessRuntime, Recorder], Awaitable[Any]]


def run(tmp: Path, body: Body, plugin_cls: type[Recorder] = Recorder, iso: Isolation | None = None) -> Any:
    iso = iso or root_isolation()
    ids = (f"{n:064x}" for n in itertools.count(1))

    async def main() -> Any:
        plugin = plugin_cls(PluginContext("node-a", str(tmp / "plugin")))
        server: NetworkServer = await serve(plugin, str(tmp / "cni.sock"))
        rt = ProcessRuntime(
            str(tmp / "root"),
            isolation=iso,
            new_id=lambda: next(ids),
            network=PodNetwork(str(tmp / "cni.sock")),
        )
        try:
            await rt.start_network(wait=10)
            return await body(rt, plugin)
        finally:
            await rt.shutdown()
            await server.stop()

    return asyncio.run(main())


async def run_sandbox(rt: ProcessRuntime, cfg: pb.PodSandboxConfig) -> str:
    return (await rt.run_pod_sandbox(pb.RunPodSandboxRequest(config=cfg))).pod_sandbox_id


def status(rt: ProcessRuntime, sid: str) -> pb.PodSandboxStatus:
    return rt.pod_sandbox_status(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status


def holder_pid(rt: ProcessRuntime, sid: str) -> int:
    return rt.sandboxes[sid].pid


def test_add_gets_the_holder_netns_and_the_status_shows_the_plugins_ips(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        sid = await run_sandbox(rt, sandbox(tmp_path))
        pid = holder_pid(rt, sid)
        return sid, pid, status(rt, sid), plugin.called("add"), os.readlink(f"/proc/{pid}/ns/net")

    sid, pid, st, adds, holder_ns = run(tmp_path, body)
    [(req, seen_ns)] = adds
    assert req.container_id == sid and req.ifname == "eth0"
    assert req.netns == f"/proc/{pid}/ns/net"
    assert seen_ns == holder_ns != os.readlink("/proc/self/ns/net")  # the pod's own namespace
    assert req.args == {
        "IgnoreUnknown": "1",
        "K8S_POD_NAMESPACE": "ns",
        "K8S_POD_NAME": "web",
        "K8S_POD_INFRA_CONTAINER_ID": sid,
        "K8S_POD_UID": "uid-web",
    }
    assert req.runtime_config == {
        "portMappings": [{"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]
    }
    assert st.network.ip == "10.88.0.2"
    assert [a.ip for a in st.network.additional_ips] == ["fd00:88::5"]
    assert st.linux.namespaces.options.network == pb.POD


def test_stop_dels_before_the_holder_dies_and_only_once(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        sid = await run_sandbox(rt, sandbox(tmp_path))
        pid = holder_pid(rt, sid)
        holder_ns = os.readlink(f"/proc/{pid}/ns/net")
        await rt.stop_pod_sandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        await rt.stop_pod_sandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        await rt.remove_pod_sandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sid))
        return sid, pid, holder_ns, plugin.called("del"), plugin.attached

    sid, pid, holder_ns, dels, attached = run(tmp_path, body)
    [(req, seen_ns)] = dels
    assert (req.container_id, req.netns) == (sid, f"/proc/{pid}/ns/net")
    assert seen_ns == holder_ns  # the namespace was still there for DEL
    assert req.prev_result is not None and req.prev_result.pod_ips() == ["10.88.0.2", "fd00:88::5"]
    assert req.runtime_config["portMappings"][0]["hostPort"] == 5353  # DEL repeats ADD's request
    assert attached == {}


def test_shutdown_dels_every_sandbox(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        a = await run_sandbox(rt, sandbox(tmp_path, "a"))
        b = await run_sandbox(rt, sandbox(tmp_path, "b"))
        await rt.shutdown()
        return {a, b}, {r.container_id for r, _ in plugin.called("del")}

    made, deleted = run(tmp_path, body)
    assert deleted == made


def test_start_gcs_with_no_valid_attachment(tmp_path: Path) -> None:
    calls = run(tmp_path, lambda rt, plugin: asyncio.sleep(0, result=list(plugin.calls)))
    assert calls == [("gc", [], None)]


def test_a_failed_add_fails_run_pod_sandbox_and_leaves_no_holder(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        with pytest.raises(NetworkSetupError) as err:
            await run_sandbox(rt, sandbox(tmp_path, "refuse-me"))
        [(req, _)] = plugin.called("add")
        holder = int(req.netns.split("/")[2])
        return err.value, holder, dict(rt.sandboxes), plugin.called("del")

    err, holder, sandboxes, dels = run(tmp_path, body)
    assert "no address for ns/refuse-me (pool exhausted)" in str(err)
    assert sandboxes == {}
    assert not os.path.exists(f"/proc/{holder}")  # killed and reaped
    assert [r.container_id for r, _ in dels] == [f"{1:064x}"]  # what a half-done ADD took is released


def test_host_network_pods_do_not_call_the_plugin(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        sid = await run_sandbox(rt, sandbox(tmp_path, host_network=True))
        await rt.stop_pod_sandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        return [c[0] for c in plugin.calls]

    assert run(tmp_path, body) == ["gc"]


def test_a_node_network_plugin_puts_the_sandbox_in_the_node_netns(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        sid = await run_sandbox(rt, sandbox(tmp_path))
        ns = os.readlink(f"/proc/{holder_pid(rt, sid)}/ns/net")
        st = status(rt, sid)
        await rt.stop_pod_sandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sid))
        return ns, st, [c[0] for c in plugin.calls]

    ns, st, ops = run(tmp_path, body, plugin_cls=NodeRecorder)
    assert ns == os.readlink("/proc/self/ns/net")
    assert st.network.ip == "10.88.0.2"
    assert st.linux.namespaces.options.network == pb.NODE
    assert ops == ["gc", "add", "del"]  # host ports are still accounted


def test_network_ready_follows_the_plugins_status(tmp_path: Path) -> None:
    async def body(rt: ProcessRuntime, plugin: Recorder) -> Any:
        out = []
        for ready in (False, True):
            plugin.ready = ready
            conds = {c.type: c for c in (await rt.status(pb.StatusRequest())).status.conditions}
            out.append(conds["NetworkReady"])
        return out

    not_ready, ready = run(tmp_path, body)
    assert (not_ready.status, not_ready.reason) == (False, "NetworkPluginNotReady")
    assert "node has no podCIDR yet" in not_ready.message
    assert (ready.status, ready.reason) == (True, "recorder")


def test_without_the_plugin_run_pod_sandbox_fails_and_status_says_why(tmp_path: Path) -> None:
    iso = root_isolation()

    async def main() -> Any:
        rt = ProcessRuntime(
            str(tmp_path / "root"), isolation=iso, network=PodNetwork(str(tmp_path / "no.sock"))
        )
        try:
            await rt.start_network(wait=0.5)  # logged, not fatal
            conds = {c.type: c for c in (await rt.status(pb.StatusRequest())).status.conditions}
            with pytest.raises(NetworkSetupError) as err:
                await run_sandbox(rt, sandbox(tmp_path))
            return conds["NetworkReady"], err.value, dict(rt.sandboxes)
        finally:
            await rt.shutdown()

    cond, err, sandboxes = asyncio.run(main())
    assert cond.status is False and "not answering" in cond.message
    assert "network plugin not available" in str(err)
    assert sandboxes == {}
