"""Containerd pods and process pods on one node reach each other through the same network plugin.

One ``bridge`` network plugin is served on a socket (private bridge name and a free /28 podCIDR);
a real containerd is started with ``network_socket=`` (its conflist is the ``raykube-cni`` shim entry,
its bin dir the shim launcher and ``loopback``), and a ``process`` runtime gets the same socket. A
containerd pod serves HTTP; a process sandbox fetches from it through its own ``eth0``; the
containerd pod fetches from a server in the process sandbox's namespace. Both pods' IPs come from
the plugin's podCIDR. Stopping the containerd pod DELs through the shim (the plugin no longer knows
the attachment), and after everything is stopped and the plugin purged nothing of ours is left.

Needs root and Debian's containerd, runc, containernetworking-plugins and busybox-static; run under
``flock /tmp/raykube-heavy.lock`` on shared machines.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from netplugins.cni.client import CNIClient
from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import NetworkServer, serve
from netplugins.cni.types import CNIError, NetRequest
from nodeagent.cri import api_pb2, api_pb2_grpc
from nodeagent.images import BUSYBOX_IMAGE
from nodeagent.runtimes.containerd import ContainerdRuntime, missing_prerequisites
from nodeagent.runtimes.process.isolation import probe
from nodeagent.runtimes.process.network import PodNetwork
from nodeagent.runtimes.process.runtime import ProcessRuntime
from tests import hostnet
from tests.capabilities import needs, require
from tests.netplugins.cni_kit.support import LoopThread, free_subnet, node_ip

_MISSING = missing_prerequisites()
pytestmark = needs("containerd", ("containerd unavailable: " + "; ".join(_MISSING)) if _MISSING else None)


@dataclass
class Node:
    lt: LoopThread
    pod_cidr: str
    socket: str
    server: NetworkServer
    containerd: ContainerdRuntime
    cri: api_pb2_grpc.RuntimeServiceStub
    process: ProcessRuntime


def _start(tmp: Path, pod_cidr: str, bridge: str) -> Node:
    lt = LoopThread()
    options = {"bridge": bridge, "pod_cidr": pod_cidr, "cluster_cidr": pod_cidr, "backend": "host-gw"}
    plugin = load_plugin("bridge")(PluginContext("rk-node", str(tmp / "net"), (node_ip(),), options))
    server = lt.run(serve(plugin, str(tmp / "network.sock")))
    iso = probe("root")
    require("isolation", None if iso.mode == "root" else f"root namespaces unavailable: {iso.reason}")

    async def start_process() -> ProcessRuntime:
        rt = ProcessRuntime(str(tmp / "process"), isolation=iso, network=PodNetwork(server.socket_path))
        await rt.start_network(wait=10)  # GCs with no valid attachment: before any pod exists
        return rt

    process = lt.run(start_process())
    ctd = ContainerdRuntime(
        str(tmp / "ctd"), bridge=f"rk-n{secrets.token_hex(3)}", network_socket=server.socket_path
    )
    lt.run(ctd.start())
    channel = grpc.insecure_channel(ctd.endpoint)
    return Node(
        lt, pod_cidr, server.socket_path, server, ctd, api_pb2_grpc.RuntimeServiceStub(channel), process
    )


def _stop(node: Node) -> None:
    for step in (node.containerd.stop(), node.process.shutdown(), node.server.stop(purge=True)):
        node.lt.run(step)
    node.lt.close()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Node, list[str]]]:
    """The node, and the strings naming what it makes (for the leftovers diff)."""
    pod_cidr, bridge = free_subnet(), f"rkc{secrets.token_hex(4)}"
    tokens = [bridge, str(ipaddress.ip_network(pod_cidr).network_address).rsplit(".", 1)[0] + "."]
    before = hostnet.snapshot()
    n = _start(tmp_path, pod_cidr, bridge)
    try:
        yield n, tokens
    finally:
        _stop(n)
    assert hostnet.diff(before, hostnet.snapshot(), only=tokens) == []


def _sandbox_config(log_dir: str, name: str) -> api_pb2.PodSandboxConfig:
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uuid.uuid4().hex, namespace="default"),
        hostname=name,
        log_directory=log_dir,
    )


def _container(cri: Any, sid: str, config: api_pb2.PodSandboxConfig, name: str, command: list[str]) -> str:
    cc = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=BUSYBOX_IMAGE),
        command=command,
        log_path=f"{name}.log",
    )
    cid = cri.CreateContainer(
        api_pb2.CreateContainerRequest(pod_sandbox_id=sid, config=cc, sandbox_config=config)
    ).container_id
    cri.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    return cid


def _wait_exited(cri: Any, cid: str, timeout: float = 60.0) -> api_pb2.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = cri.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        if st.state == api_pb2.CONTAINER_EXITED or time.monotonic() > deadline:
            return st
        time.sleep(0.1)


# busybox-static's `wget -T` segfaults (docs/runtime-stack.md), so each try is bounded with `timeout`.
def _fetch_loop(url: str) -> str:
    return f"for i in $(seq 100); do timeout 3 wget -qO- {url} && exit 0; sleep 0.2; done; exit 1"


def test_containerd_and_process_pods_reach_each_other(node: tuple[Node, list[str]], tmp_path: Path) -> None:
    n, _ = node
    net = ipaddress.ip_network(n.pod_cidr)

    # A containerd pod serving HTTP on 8080.
    config = _sandbox_config(str(tmp_path), "ctd-web")
    csid = n.cri.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
    ctd_ip = n.cri.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=csid)).status.network.ip
    web = "mkdir -p /www && echo from-containerd > /www/index.html && exec httpd -f -p 8080 -h /www"
    _container(n.cri, csid, config, "web", ["sh", "-c", web])

    # A process sandbox from the same plugin, with a server of its own in its namespace.
    pconfig = _sandbox_config(str(tmp_path / "plogs"), "proc-web")
    psid = n.lt.run(n.process.run_pod_sandbox(api_pb2.RunPodSandboxRequest(config=pconfig))).pod_sandbox_id
    proc_ip = n.process.pod_sandbox_status(
        api_pb2.PodSandboxStatusRequest(pod_sandbox_id=psid)
    ).status.network.ip
    proc_netns = f"/proc/{n.process.sandboxes[psid].pid}/ns/net"
    assert ipaddress.ip_address(ctd_ip) in net and ipaddress.ip_address(proc_ip) in net and ctd_ip != proc_ip

    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("from-process\n")
    nsenter = ["nsenter", f"--net={proc_netns}"]
    server = subprocess.Popen([*nsenter, "busybox", "httpd", "-f", "-p", "8081", "-h", str(www)])
    try:
        # process pod -> containerd pod
        got = subprocess.run(
            [*nsenter, "sh", "-c", _fetch_loop(f"http://{ctd_ip}:8080/").replace("wget", "busybox wget")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (got.returncode, got.stdout.strip()) == (0, "from-containerd"), got.stderr
        # containerd pod -> process pod
        cid = _container(n.cri, csid, config, "client", ["sh", "-c", _fetch_loop(f"http://{proc_ip}:8081/")])
        st = _wait_exited(n.cri, cid)
        log = (tmp_path / "client.log").read_text()
        assert st.exit_code == 0, log
        assert "from-process" in log
    finally:
        server.kill()
        server.wait()

    # Stopping the containerd pod DELs through the shim: the plugin no longer has its attachment.
    n.cri.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=csid))
    n.cri.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=csid))

    async def check_gone() -> CNIError | None:
        async with CNIClient(n.socket) as cni:
            try:
                await cni.check(NetRequest(csid, "", "eth0"))
            except CNIError as e:
                return e
        return None

    assert n.lt.run(check_gone()) is not None
    n.lt.run(n.process.stop_pod_sandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=psid)))


def test_containerd_is_network_ready_with_the_shim_conflist(node: tuple[Node, list[str]]) -> None:
    """containerd's own CRI Status: NetworkReady with the shim conflist loaded."""
    n, _ = node
    conditions = {c.type: c.status for c in n.cri.Status(api_pb2.StatusRequest()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}
    assert os.path.islink(os.path.join(n.containerd.paths.cni_bin_dir, "loopback"))
