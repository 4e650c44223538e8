"""The ``host`` plugin behind its gRPC socket (real server, real CNIClient), and its entry point."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from netplugins.cni.client import CNIClient
from netplugins.cni.plugin import PluginContext, load_plugin
from netplugins.cni.server import serve
from netplugins.cni.types import (
    Attachment,
    CNIError,
    DecodingFailure,
    InvalidNetworkConfig,
    NetRequest,
    PluginNotAvailable,
    UnknownContainer,
)
from netplugins.host.plugin import LEDGER_FILE, PORT_IN_USE, HostNetwork


def request(cid: str, pod: str, *ports: int, protocol: str = "tcp") -> NetRequest:
    ns, name = pod.split("/")
    mappings = [{"hostPort": p, "containerPort": 80, "protocol": protocol, "hostIP": ""} for p in ports]
    return NetRequest(
        container_id=cid,
        netns="",
        args={"K8S_POD_NAMESPACE": ns, "K8S_POD_NAME": name, "IgnoreUnknown": "1"},
        runtime_config={"portMappings": mappings} if mappings else {},
    )


def run(
    tmp: Path, body: Callable[[CNIClient], Awaitable[Any]], node_ips: tuple[str, ...] = ("192.0.2.7",)
) -> Any:
    async def main() -> Any:
        ctx = PluginContext("node-a", str(tmp / "state"), node_ips)
        server = await serve(HostNetwork(ctx), str(tmp / "cni.sock"))
        try:
            async with CNIClient(str(tmp / "cni.sock"), timeout=10) as cni:
                return await body(cni)
        finally:
            await server.stop()

    return asyncio.run(main())


def test_builtin_name_loads_it() -> None:
    assert load_plugin("host") is HostNetwork


def test_add_reports_the_node_address_and_version_says_node_network(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        version = await cni.version()
        result = await cni.add(request("c1", "default/a"))
        await cni.status()
        return version, result

    version, result = run(tmp_path, body)
    assert (version.plugin, version.node_network) == ("host", True)
    assert [c.address for c in result.ips] == ["192.0.2.7/32"]
    assert result.pod_ips() == ["192.0.2.7"]


def test_ipv6_node_address_is_a_128(tmp_path: Path) -> None:
    result = run(tmp_path, lambda cni: cni.add(request("c1", "default/a")), node_ips=("2001:db8::5",))
    assert [c.address for c in result.ips] == ["2001:db8::5/128"]


def test_second_pod_with_the_same_host_port_gets_a_clear_error(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        await cni.add(request("c1", "default/a", 8080))
        with pytest.raises(CNIError) as err:
            await cni.add(request("c2", "default/b", 8080))
        await cni.add(request("c3", "default/c", 8080, protocol="udp"))  # another protocol is free
        await cni.delete(request("c1", "default/a", 8080))
        await cni.add(request("c2", "default/b", 8080))  # released by DEL
        return err.value

    err = run(tmp_path, body)
    assert err.code == PORT_IN_USE >= 100
    assert err.msg == "hostPort 8080/TCP is already used by pod default/a"


def test_delete_is_idempotent_and_check_verifies_the_entry(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        await cni.delete(request("never", "default/x"))
        await cni.add(request("c1", "default/a", 8080))
        await cni.check(request("c1", "default/a", 8080))
        with pytest.raises(InvalidNetworkConfig):
            await cni.check(request("c1", "default/a", 9090))
        await cni.delete(request("c1", "default/a"))
        await cni.delete(request("c1", "default/a"))
        with pytest.raises(UnknownContainer):
            await cni.check(request("c1", "default/a", 8080))

    run(tmp_path, body)


def test_gc_releases_ports_of_attachments_not_valid(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        await cni.add(request("keep", "default/a", 8080))
        await cni.add(request("gone", "default/b", 9090))
        await cni.gc([Attachment("keep", "eth0")])
        await cni.add(request("new", "default/c", 9090))  # freed by GC
        with pytest.raises(CNIError) as err:
            await cni.add(request("new2", "default/d", 8080))  # still held
        return err.value

    assert run(tmp_path, body).msg == "hostPort 8080/TCP is already used by pod default/a"


def test_ledger_survives_a_restart(tmp_path: Path) -> None:
    run(tmp_path, lambda cni: cni.add(request("c1", "default/a", 8080)))
    ledger = json.loads((tmp_path / "state" / LEDGER_FILE).read_text())
    assert ledger["c1/eth0"]["pod"] == "default/a"
    assert (tmp_path / "state" / LEDGER_FILE).stat().st_mode & 0o777 == 0o600

    async def body(cni: CNIClient) -> Any:
        with pytest.raises(CNIError) as err:
            await cni.add(request("c2", "default/b", 8080))
        return err.value

    assert run(tmp_path, body).code == PORT_IN_USE


def test_bad_port_mapping_is_a_decoding_failure(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        with pytest.raises(DecodingFailure):
            await cni.add(request("c1", "default/a", 70000))

    run(tmp_path, body)


def test_without_a_node_address_it_is_not_ready(tmp_path: Path) -> None:
    async def body(cni: CNIClient) -> Any:
        with pytest.raises(PluginNotAvailable):
            await cni.status()
        with pytest.raises(PluginNotAvailable):
            await cni.add(request("c1", "default/a"))

    run(tmp_path, body, node_ips=())


def test_entry_point_prints_ready_and_serves(tmp_path: Path) -> None:
    sock = tmp_path / "h.sock"
    argv = [sys.executable, "-m", "netplugins.host", "--socket", str(sock), "--root", str(tmp_path / "d")]
    argv += ["--node", "n1", "--node-ip", "192.0.2.9"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, cwd=Path(__file__).parents[3], text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"ready {sock}"

        async def ask() -> Any:
            async with CNIClient(str(sock), timeout=10) as cni:
                return (await cni.add(request("c1", "default/a"))).pod_ips()

        assert asyncio.run(ask()) == ["192.0.2.9"]
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert not sock.exists()
