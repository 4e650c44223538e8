"""The CNI shim executable: its pure parts by table, and the real executable run the way a runtime
runs a CNI plugin (``execproto.run_conflist`` over a bin dir holding the launcher script), in front of
a served fake plugin."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest

from netplugins.cni import shim
from netplugins.cni.execproto import run_conflist
from netplugins.cni.plugin import NetworkPlugin, PluginContext
from netplugins.cni.server import serve
from netplugins.cni.types import (
    Attachment,
    IncompatibleVersion,
    Interface,
    IPConfig,
    NetRequest,
    Result,
    Route,
    UnknownContainer,
)

RESULT_1_1 = {
    "cniVersion": "1.1.0",
    "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "mtu": 1450, "sandbox": "/x"}],
    "ips": [
        {"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0},
        {"address": "fd00::5/64", "interface": 0},
    ],
    "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1", "priority": 5}],
}


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        pytest.param("1.1.0", {**RESULT_1_1}, id="1.1.0-unchanged"),
        pytest.param(
            "1.0.0",
            {
                **RESULT_1_1,
                "cniVersion": "1.0.0",
                "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/x"}],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            },
            id="1.0.0-drops-1.1-fields",
        ),
        pytest.param(
            "0.4.0",
            {
                **RESULT_1_1,
                "cniVersion": "0.4.0",
                "interfaces": [{"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff", "sandbox": "/x"}],
                "ips": [
                    {"address": "10.244.1.5/24", "gateway": "10.244.1.1", "interface": 0, "version": "4"},
                    {"address": "fd00::5/64", "interface": 0, "version": "6"},
                ],
                "routes": [{"dst": "0.0.0.0/0", "gw": "10.244.1.1"}],
            },
            id="0.4.0-ip-versions",
        ),
    ],
)
def test_convert_result(version: str, expected: dict[str, Any]) -> None:
    assert shim.convert_result(RESULT_1_1, version) == expected


def test_convert_result_refuses_an_unknown_version() -> None:
    with pytest.raises(IncompatibleVersion):
        shim.convert_result(RESULT_1_1, "0.3.1")


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        pytest.param({}, [], id="absent"),
        pytest.param(
            {"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b"}]},
            [Attachment("a", "eth0"), Attachment("b", "eth0")],
            id="valid-attachments",
        ),
        pytest.param(
            {"cni.dev/attachments": [{"containerID": "c", "ifname": "net1"}]},
            [Attachment("c", "net1")],
            id="libcni-alias",
        ),
    ],
)
def test_valid_attachments(conf: dict[str, Any], expected: list[Attachment]) -> None:
    assert shim.valid_attachments(conf) == expected


@pytest.mark.parametrize(
    ("env", "stdin", "expected"),
    [
        pytest.param(
            {"CNI_COMMAND": "VERSION"},
            b'{"cniVersion": "1.0.0"}',
            {"cniVersion": "1.1.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]},
            id="version-answered-locally",
        ),
        pytest.param({"CNI_COMMAND": "STATUS"}, b'{"cniVersion": "1.1.0", "name": "n"}', 7, id="no-socket"),
        pytest.param({"CNI_COMMAND": "ADD"}, b"{}", 4, id="add-without-environment"),
        pytest.param({"CNI_COMMAND": "FROB"}, b"{}", 4, id="unknown-command"),
        pytest.param({"CNI_COMMAND": "VERSION"}, b"{not json", 6, id="bad-json"),
    ],
)
def test_run_without_a_plugin(env: dict[str, str], stdin: bytes, expected: dict[str, Any] | int) -> None:
    """A result and exit 0, or the error object (with cniVersion, code, msg) and exit 1."""
    code, out = shim.run(env, stdin)
    if isinstance(expected, dict):
        assert (code, out) == (0, expected)
    else:
        assert out is not None
        assert (code, out["code"], out["cniVersion"], bool(out["msg"])) == (1, expected, "1.1.0", True)


class Fake(NetworkPlugin):
    """Records what reaches the plugin; hands out one fixed result."""

    NAME: ClassVar[str] = "fake"
    RESULT = Result(
        interfaces=(Interface("eth0", mac="02:00:00:00:00:01", mtu=1400, sandbox="/var/run/netns/x"),),
        ips=(IPConfig("10.9.0.2/24", "10.9.0.1", 0),),
        routes=(Route("0.0.0.0/0", "10.9.0.1"),),
    )

    def __init__(self, ctx: PluginContext) -> None:
        super().__init__(ctx)
        self.calls: list[tuple[str, Any]] = []
        self.attached: set[Attachment] = set()

    async def add(self, req: NetRequest) -> Result:
        self.calls.append(("add", req))
        self.attached.add(req.attachment)
        return self.RESULT

    async def delete(self, req: NetRequest) -> None:
        self.calls.append(("del", req))
        self.attached.discard(req.attachment)

    async def check(self, req: NetRequest) -> None:
        self.calls.append(("check", req))
        if req.attachment not in self.attached:
            raise UnknownContainer(f"no attachment {req.container_id}")

    async def status(self) -> None:
        self.calls.append(("status", None))

    async def gc(self, valid: list[Attachment]) -> None:
        self.calls.append(("gc", valid))


def _bin_dir(tmp: Path) -> str:
    d = tmp / "bin"
    d.mkdir()
    (d / "raykube-cni").write_text(shim.launcher_script())
    (d / "raykube-cni").chmod(0o755)
    return str(d)


def test_shim_forwards_a_runtime_s_commands(tmp_path: Path) -> None:
    async def body() -> None:
        plugin = Fake(PluginContext("n", str(tmp_path)))
        server = await serve(plugin, str(tmp_path / "cni.sock"))
        try:
            conflist = {
                "cniVersion": "1.0.0",
                "name": "rk-shim-test",
                "plugins": [
                    {
                        "type": "raykube-cni",
                        "socket": server.socket_path,
                        "capabilities": {"portMappings": True},
                    }
                ],
            }
            ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
            req = NetRequest(
                "c1",
                "/var/run/netns/x",
                args={"IgnoreUnknown": "1", "K8S_POD_NAME": "p"},
                runtime_config={"portMappings": ports, "bandwidth": {"x": 1}},
            )
            bins = _bin_dir(tmp_path)
            result = await run_conflist(conflist, "ADD", req, cni_path=bins)
            # 1.0.0 asked for: the interface's mtu (a 1.1 field) is dropped.
            assert result == Result(
                cni_version="1.0.0",
                interfaces=(Interface("eth0", mac="02:00:00:00:00:01", sandbox="/var/run/netns/x"),),
                ips=Fake.RESULT.ips,
                routes=Fake.RESULT.routes,
            )
            kind, got = plugin.calls[-1]
            assert (kind, got.container_id, got.netns, got.ifname) == (
                "add",
                "c1",
                "/var/run/netns/x",
                "eth0",
            )
            assert got.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "p"}
            assert got.runtime_config == {"portMappings": ports}  # only the declared capability
            await run_conflist(
                conflist, "CHECK", NetRequest("c1", "/var/run/netns/x", prev_result=result), bins
            )
            await run_conflist(conflist, "DEL", NetRequest("c1", "", prev_result=result), bins)
            assert plugin.calls[-1][1].prev_result == result
            with pytest.raises(UnknownContainer):
                await run_conflist(
                    conflist, "CHECK", NetRequest("c1", "/var/run/netns/x", prev_result=result), bins
                )
        finally:
            await server.stop()

    asyncio.run(body())


def _exec(tmp: Path, env: dict[str, str], conf: dict[str, Any]) -> tuple[int, Any]:
    bins = tmp / "bin"
    if not bins.exists():
        _bin_dir(tmp)
    p = subprocess.run(
        [str(bins / "raykube-cni")],
        input=json.dumps(conf).encode(),
        env={"PATH": os.environ.get("PATH", ""), "CNI_PATH": str(bins), **env},
        capture_output=True,
        check=False,
    )
    return p.returncode, json.loads(p.stdout) if p.stdout.strip() else None


def test_status_gc_and_errors_through_the_executable(tmp_path: Path) -> None:
    async def body() -> None:
        plugin = Fake(PluginContext("n", str(tmp_path)))
        server = await serve(plugin, str(tmp_path / "cni.sock"))
        try:
            conf = {"cniVersion": "1.1.0", "name": "rk", "type": "raykube-cni", "socket": server.socket_path}
            assert await asyncio.to_thread(_exec, tmp_path, {"CNI_COMMAND": "STATUS"}, conf) == (0, None)
            gc_conf = {**conf, "cni.dev/valid-attachments": [{"containerID": "k", "ifname": "eth0"}]}
            assert await asyncio.to_thread(_exec, tmp_path, {"CNI_COMMAND": "GC"}, gc_conf) == (0, None)
            assert plugin.calls[-2:] == [("status", None), ("gc", [Attachment("k", "eth0")])]
            env = {"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "nope", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"}
            code, out = await asyncio.to_thread(_exec, tmp_path, env, conf)
            assert (code, out["code"], out["cniVersion"]) == (1, 3, "1.1.0")
        finally:
            await server.stop()
        # The plugin is gone: "not available" (50), not a hang or a traceback.
        code, out = await asyncio.to_thread(_exec, tmp_path, {"CNI_COMMAND": "STATUS"}, conf)
        assert (code, out["code"]) == (1, 50)

    asyncio.run(body())


def test_version_does_not_import_grpc() -> None:
    code = (
        "import sys; from netplugins.cni import shim; shim.run({'CNI_COMMAND': 'VERSION'}, b'{}'); "
        "print('grpc' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
